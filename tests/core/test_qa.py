"""evaluate_registration end to end on small synthetic images (and once on the demo pair)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import IncompatibleImagesError, TransformReadError
from regviewer.core.qa.evaluation import analysis_grid, evaluate_registration
from regviewer.core.qa.jacobian_colours import jacobian_log2_range, jacobian_rgba


def _blob_image(shift_mm=(0.0, 0.0, 0.0), size=(32, 36, 28)):
    """A smooth random volume, optionally shifted: image(x) = base(x - shift)."""
    rng = np.random.default_rng(1)
    base = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random(size[::-1]).astype(np.float32)), 2.0)
    base.SetSpacing((1.5, 1.5, 1.5))
    if any(shift_mm):
        base = sitk.Resample(base, base, sitk.TranslationTransform(3, tuple(-s for s in shift_mm)), sitk.sitkLinear, 0.0)
    return base


def _labels(image, threshold):
    lab = sitk.Cast(image > threshold, sitk.sitkUInt8) + sitk.Cast(image > threshold + 0.02, sitk.sitkUInt8)
    return lab


@dataclass
class _Pair:
    name: str
    fixed: tuple
    moving: tuple
    enabled: bool = True


@dataclass
class _Set:
    pairs: list


def test_evaluate_registration_summary_is_json_and_right():
    fixed = _blob_image()
    moving = _blob_image(shift_mm=(3.0, 0.0, 0.0))  # moving(x) = fixed(x - 3): T(x) = x + 3 realigns
    good = sitk.TranslationTransform(3, (3.0, 0.0, 0.0))
    landmarks = _Set([_Pair("a", (10.0, 10.0, 10.0), (13.0, 10.0, 10.0)), _Pair("b", (20.0, 20.0, 20.0), (23.0, 21.0, 20.0)),
                      _Pair("c", (5.0, 5.0, 5.0), (0.0, 0.0, 0.0), enabled=False)])
    box = np.zeros(fixed.GetSize()[::-1], np.uint8)
    box[4:-4, 4:-4, 4:-4] = 1  # away from the borders: all of it maps inside the moving image
    mask = sitk.GetImageFromArray(box)
    mask.CopyInformation(fixed)
    e = evaluate_registration(
        fixed, moving, good,
        labels_fixed=_labels(fixed, 0.5), labels_moving=_labels(moving, 0.5),
        landmarks=landmarks, mask=mask, backward=good.GetInverse(),
        history=[{"stage": 0, "stage_name": "affine", "level": 0, "iteration": i, "metric": -0.1 * i, "elapsed": i} for i in range(5)],
        params={"preset": "test"},
    )
    s = e.summary()
    json.dumps(s)  # must not raise (no NaN/inf, str keys)
    assert s["jacobian"]["folding_percent"] == 0.0
    assert s["jacobian"]["min"] == pytest.approx(1.0, abs=1e-5)
    assert s["displacement_mm"]["mean"] == pytest.approx(3.0, abs=1e-4)
    assert s["similarity_after"]["correlation"] > 0.99 > s["similarity_before"]["correlation"]
    assert s["similarity_after"]["mutual_information"] > s["similarity_before"]["mutual_information"]
    assert min(e.dice.values()) > 0.95
    assert s["landmarks"]["count"] == 2 and s["landmarks"]["max_mm"] == pytest.approx(1.0)
    assert [p["error_mm"] for p in s["landmarks"]["pairs"]][:2] == pytest.approx([0.0, 1.0])
    assert s["inverse_consistency_mm"]["max"] < 1e-6
    assert s["final_metric"] == pytest.approx(-0.4) and s["iterations"] == 5
    assert "Labels" in e.tables and "Landmarks (TRE)" in e.tables and "Inverse consistency" in e.tables
    assert [r[0] for r in e.tables["Landmarks (TRE)"][1]] == ["a", "b", "c (disabled)"]
    assert s["flags"] == []


def test_flags_name_folding_and_worse_similarity():
    fixed = _blob_image()
    moving = _blob_image(shift_mm=(3.0, 0.0, 0.0))
    arr = np.zeros(fixed.GetSize()[::-1] + (3,))
    z, y, x = np.indices(fixed.GetSize()[::-1], dtype=float)
    c = (np.array(fixed.GetSize()) - 1) / 2
    g = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 18.0)
    arr[..., 0] = -4.5 * (x - c[0]) * g  # in mm with 1.5 mm voxels: d u/dx = -3 at the centre
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.CopyInformation(fixed)
    folding = sitk.DisplacementFieldTransform(field)
    e = evaluate_registration(fixed, moving, folding)
    assert e.jacobian_stats["folding_voxels"] > 0
    assert any("folds" in f for f in e.flags)
    assert any("LOWER" in f for f in e.flags) or e.similarity_after["mutual_information"] >= e.similarity_before["mutual_information"]


def test_errors_are_plain(tmp_path):
    fixed = _blob_image()
    with pytest.raises(IncompatibleImagesError, match="2D"):
        evaluate_registration(fixed, sitk.Image([8, 8], sitk.sitkFloat32), sitk.TranslationTransform(3))
    with pytest.raises(IncompatibleImagesError, match="transform is 2D"):
        evaluate_registration(fixed, fixed, sitk.TranslationTransform(2))
    with pytest.raises(TransformReadError, match="does not exist"):
        evaluate_registration(fixed, fixed, tmp_path / "missing.tfm")
    with pytest.raises(IncompatibleImagesError, match="both label maps"):
        evaluate_registration(fixed, fixed, sitk.TranslationTransform(3), labels_fixed=_labels(fixed, 0.5))


def test_analysis_grid_keeps_extent():
    ref = sitk.Image([200, 100, 50], sitk.sitkUInt8)
    ref.SetSpacing((1.0, 2.0, 3.0))
    grid = analysis_grid(ref, max_voxels=100_000)
    assert np.prod(grid.GetSize()) <= 100_000
    for axis in range(3):
        extent = ref.GetSize()[axis] * ref.GetSpacing()[axis]
        assert grid.GetSize()[axis] * grid.GetSpacing()[axis] == pytest.approx(extent)
        lo_ref = ref.GetOrigin()[axis] - ref.GetSpacing()[axis] / 2
        lo_grid = grid.GetOrigin()[axis] - grid.GetSpacing()[axis] / 2
        assert lo_grid == pytest.approx(lo_ref)
    assert analysis_grid(ref) is ref


def test_jacobian_colours():
    rgba = jacobian_rgba(np.array([0.25, 1.0, 4.0, 0.0, -1.0]))
    assert tuple(rgba[1]) == (255, 255, 255, 0)  # volume kept: white and transparent
    assert rgba[0, 2] > rgba[0, 0] and rgba[0, 3] == 255  # compression: blue
    assert rgba[2, 0] > rgba[2, 2] and rgba[2, 3] == 255  # expansion: red
    assert tuple(rgba[3, :3]) == tuple(rgba[4, :3]) == (255, 230, 0)  # folding: yellow
    assert jacobian_log2_range(np.array([0.9, 1.0, 1.1])) == pytest.approx(np.log2(1 / 0.9), rel=0.05)
    assert jacobian_log2_range(np.ones(10)) == pytest.approx(np.log2(1.05))


def test_demo_pair_true_transform(demo_data):
    if not (demo_data / "brain_true_fixed_to_moving.h5").exists():
        pytest.skip("demo data not generated")
    e = evaluate_registration(
        demo_data / "brain_t1_fixed.nii.gz", demo_data / "brain_t2like_moving.nii.gz",
        demo_data / "brain_true_fixed_to_moving.h5", mask=demo_data / "brain_mask_fixed.nii.gz", max_map_voxels=300_000,
    )
    s = e.summary()
    assert s["jacobian"]["folding_voxels"] == 0
    assert s["similarity_after"]["mutual_information"] > 5 * s["similarity_before"]["mutual_information"]
    assert s["flags"] == []


def test_overlap_flag_names_the_mask():
    fixed = _blob_image()
    far = sitk.TranslationTransform(3, (30.0, 0.0, 0.0))  # the image is 48 mm wide: 37 % overlap
    assert any("of the fixed image maps inside" in f for f in evaluate_registration(fixed, fixed, far).flags)
    mask = sitk.Cast(fixed > -1, sitk.sitkUInt8)
    assert any("of the mask maps inside" in f for f in evaluate_registration(fixed, fixed, far, mask=mask).flags)
