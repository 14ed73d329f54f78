"""The `auto` preset: inspection of the pair, the coarse pose search, and auto being the default."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import regviewer
from regviewer.core.imaging.image import as_volume
from regviewer.core.registration.auto import build_pipeline, inspect_pair, is_auto
from regviewer.core.registration.presets import DEFAULT_PRESET, load_preset
from regviewer.core.registration.reproduce import RunSpec, as_command_line
from regviewer.core.registration.search import search_pose

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


@pytest.fixture(scope="module")
def small() -> sitk.Image:
    """The demo retina's green-ish luminance at 96 x 96 (a real photograph, small and fast)."""
    img = as_volume(str(DEMO / "retina_fixed.png")).scalar()
    return sitk.BinShrink(img, [5, 5])



def moved(image: sitk.Image, true: sitk.Transform) -> sitk.Image:
    """A moving image such that `true` (fixed -> moving) is the right answer."""
    return sitk.Resample(image, image, true.GetInverse(), sitk.sitkLinear, 0.0)


def mean_error(tx: sitk.Transform, true: sitk.Transform, image: sitk.Image) -> float:
    pts = [image.TransformContinuousIndexToPhysicalPoint((float(x), float(y)))
           for x in np.linspace(20, image.GetSize()[0] - 20, 6) for y in np.linspace(20, image.GetSize()[1] - 20, 6)]
    return float(np.mean([math.dist(tx.TransformPoint(p), true.TransformPoint(p)) for p in pts]))


def centre(image: sitk.Image) -> tuple:
    return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])


def test_the_pose_search_finds_a_half_turn_with_zoom(small):
    true = sitk.Similarity2DTransform(1.15, math.radians(180), (4.0, -3.0), centre(small))
    found = search_pose(small, moved(small, true), "similarity").transform("similarity")
    assert mean_error(found, true, small) < 3.0  # coarse: pixels of the 96-pixel image, before any stage


def test_inspection_tells_same_modality_from_inverted_contrast(small):
    true = sitk.Euler2DTransform(centre(small), math.radians(40), (3.0, 2.0))
    same = inspect_pair(as_volume(small), as_volume(moved(small, true)))
    inverted = inspect_pair(as_volume(small), as_volume(moved(255.0 - small, true)))
    assert same.same_modality and same.correlation > 0.5
    assert not inverted.same_modality and inverted.correlation < -0.5
    assert same.dimension == 2 and same.fixed_size == (96, 96) and same.float_pixels == (True, True)
    assert "inverted contrast" in inverted.describe()
    p_same, p_inv = build_pipeline(same), build_pipeline(inverted)
    assert [s.transform.kind for s in p_same.stages] == ["similarity", "affine"]
    assert p_same.stages[0].initializer == "search"
    assert p_same.stages[0].metric.kind == "correlation" and p_inv.stages[0].metric.kind == "mattes"
    assert p_same.stages[0].sampling.count == 5000  # a count: the cost of one iteration is bounded
    tiny = build_pipeline(dataclasses.replace(same, fixed_size=(60, 60)))
    assert tiny.stages[0].sampling.strategy == "none"  # a small image: every pixel
    assert build_pipeline(same, deformable=True).stages[-1].transform.kind in ("flow", "bspline")


def test_auto_is_the_default_and_recovers_a_large_rotation(small):
    true = sitk.Euler2DTransform(centre(small), math.radians(150), (5.0, -4.0))
    result = regviewer.register(small, moved(small, true))  # no preset: auto
    assert DEFAULT_PRESET == "auto"
    assert result.params.name == "auto" and not is_auto(result.params)  # resolved, not the template
    assert result.details["auto"].startswith("auto: 2D")
    assert mean_error(result.transform, true, small) < 1.0
    assert result.warnings == []


def test_the_command_line_reproduces_the_resolved_pipeline(small):
    resolved = build_pipeline(inspect_pair(as_volume(small), as_volume(small)))
    text = as_command_line(RunSpec("f.png", "m.png", resolved, preset="auto"))
    assert "--params" in text and "--preset" not in text and '"initializer": "search"' in text
    assert "--preset affine-mi" in as_command_line(RunSpec("f.png", "m.png", load_preset("affine-mi"), preset="affine-mi"))


def test_cli_batch_and_api_default_to_auto():
    import inspect

    from regviewer.cli.parser import _build_parser
    from regviewer.core.registration.batch import BatchSettings
    from regviewer.core.registration.engine import register

    assert BatchSettings().preset == "auto"
    assert inspect.signature(register).parameters["preset"].default == "auto"
    args = _build_parser().parse_args(["register", "f.nii", "m.nii", "--out", "o"])
    assert args.preset is None  # cmd_register then uses DEFAULT_PRESET


def test_the_flow_stage_follows_a_smooth_warp_and_is_not_worse_than_its_affine_start(small):
    """auto-deformable on a same-modality 2D pair ends with a dense optical flow (a displacement field)."""
    y, x = np.mgrid[0:96, 0:96].astype(float)
    d = np.stack([3.0 * np.sin(x / 15.0), 2.5 * np.cos(y / 12.0)], axis=-1)
    field = sitk.GetImageFromArray(d, isVector=True)
    field.CopyInformation(small)
    true = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    fixed = sitk.Resample(small, small, true, sitk.sitkLinear, 0.0)  # fixed(x) = moving(true(x))
    result = regviewer.register(fixed, small, preset="auto-deformable")
    assert [s.transform.kind for s in result.params.stages][-1] == "flow"
    checks = result.details["verification"]["stages"]
    assert checks[-1]["name"] == "flow" and checks[-1]["kept"] and checks[-1]["after"] >= checks[-1]["before"]
    inner = [fixed.TransformContinuousIndexToPhysicalPoint((float(i), float(j))) for i in range(15, 80, 8) for j in range(15, 80, 8)]
    errors = [math.dist(result.transform.TransformPoint(p), true.TransformPoint(p)) for p in inner]
    assert np.median(errors) < 1.0


def test_a_named_preset_stuck_in_a_wrong_optimum_says_so(small):
    """A half turn defeats a centres-of-mass start; the result must not come back silent.
    (`rigid` starts from centres of mass; `photo-2d` now starts from the pose search.)"""
    true = sitk.Euler2DTransform(centre(small), math.pi, (3.0, -2.0))
    result = regviewer.register(small, moved(small, true), preset="rigid")
    assert mean_error(result.transform, true, small) > 5  # it did fail...
    assert any("probably wrong" in w for w in result.warnings)  # ...and says so
    assert regviewer.register(small, moved(small, true)).warnings == []  # auto: found, no warning


def test_auto_restarts_a_creeping_linear_stage(small):
    """On an 8-megapixel photograph (`scripts/bench_photo_sizes.py`) auto's similarity stage crept into
    its iteration cap and ended 14 px off without `regrow_step`; every linear stage it builds has it."""
    pipe = build_pipeline(inspect_pair(as_volume(small), as_volume(small)))
    linear = [s for s in pipe.stages if s.transform.kind in ("rigid", "similarity", "affine")]
    assert linear and all(s.optimizer.regrow_step for s in linear)
