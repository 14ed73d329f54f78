"""Landmark fits: exact recovery, noise statistics, leave-one-out flags, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ImageWriteError, LandmarkFitError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import read_transform
from regviewer.core.landmarks.model import MODELS, LandmarkSet, fit, landmark_errors


def _true_transform(kind: str, dim: int, rng: np.random.Generator) -> sitk.Transform:
    """A known fixed→moving transform of each kind (centre away from the origin on purpose)."""
    if kind == "translation":
        return sitk.TranslationTransform(dim, tuple(rng.uniform(-10, 10, dim)))
    if dim == 2:
        if kind == "rigid":
            return sitk.Euler2DTransform((12.0, -7.0), 0.4, (3.0, -5.0))
        if kind == "similarity":
            return sitk.Similarity2DTransform(1.2, -0.3, (3.0, -5.0), (12.0, -7.0))
    else:
        versor = rng.normal(size=4)
        versor = tuple(versor / np.linalg.norm(versor))
        if kind == "rigid":
            return sitk.VersorRigid3DTransform(versor, (3.0, -5.0, 8.0), (12.0, -7.0, 4.0))
        if kind == "similarity":
            return sitk.Similarity3DTransform(0.85, versor, (3.0, -5.0, 8.0), (12.0, -7.0, 4.0))
    affine = sitk.AffineTransform(dim)
    affine.SetMatrix(tuple((np.eye(dim) + 0.15 * rng.normal(size=(dim, dim))).ravel()))
    affine.SetTranslation(tuple(rng.uniform(-10, 10, dim)))
    affine.SetCenter(tuple(rng.uniform(-5, 5, dim)))
    return affine


def _set_from(transform: sitk.Transform, fixed: np.ndarray) -> LandmarkSet:
    lm = LandmarkSet(fixed.shape[1])
    for p in fixed:
        lm.add_pair(tuple(p), transform.TransformPoint(tuple(float(v) for v in p)))
    return lm


def _max_difference(a: sitk.Transform, b: sitk.Transform, points: np.ndarray) -> float:
    return max(float(np.linalg.norm(np.subtract(a.TransformPoint(tuple(p)), b.TransformPoint(tuple(p))))) for p in points)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("model", MODELS)
def test_each_fit_recovers_a_known_transform_from_exact_points(model, dim):
    rng = np.random.default_rng(10 * dim + MODELS.index(model))
    kind = model if model in ("translation", "rigid", "similarity") else "affine"
    true = _true_transform(kind, dim, rng)
    lm = _set_from(true, rng.uniform(-60, 60, (10, dim)))
    result = fit(lm, model)
    # Everywhere inside the landmarks' region, not only at the landmarks.
    assert _max_difference(result.transform, true, rng.uniform(-60, 60, (100, dim))) < 1e-6
    assert result.rms_mm < 1e-6 and result.max_mm < 1e-6
    assert np.nanmax(result.loo_errors_mm) < 1e-6 and result.flagged == ()
    assert result.model == model and len(result.residuals_mm) == 10


@pytest.mark.parametrize("dim", [2, 3])
def test_bspline_recovers_a_known_affine_plus_bspline_warp(dim):
    rng = np.random.default_rng(dim)
    grid = sitk.Image([40] * dim, sitk.sitkUInt8)
    grid.SetSpacing([2.5] * dim)
    grid.SetOrigin([-50.0] * dim)
    warp = sitk.BSplineTransformInitializer(grid, [2] * dim, 3)
    warp.SetParameters(tuple(rng.normal(scale=2.0, size=len(warp.GetParameters()))))
    true = sitk.CompositeTransform([_true_transform("affine", dim, rng), warp])
    lm = _set_from(true, rng.uniform(-45, 45, (80 if dim == 2 else 200, dim)))
    result = fit(lm, "bspline", reference=Volume(grid), bspline_mesh_size=2, bspline_smoothing=0.0,
                 leave_one_out=False)
    assert _max_difference(result.transform, true, rng.uniform(-45, 45, (100, dim))) < 1e-6


def test_tps_interpolates_a_nonlinear_warp_and_honours_the_reference_grid():
    rng = np.random.default_rng(5)
    reference = sitk.Image([60, 50], sitk.sitkUInt8)
    reference.SetSpacing([2.0, 2.0])
    reference.SetOrigin([-60.0, -50.0])
    fixed = rng.uniform(-50, 50, (25, 2)) * [1, 0.8]
    moving = fixed + 3.0 * np.sin(fixed[:, ::-1] / 15.0)
    lm = LandmarkSet(2)
    for f, m in zip(fixed, moving):
        lm.add_pair(tuple(f), tuple(m))
    result = fit(lm, "tps", reference=reference)
    assert result.max_mm < 0.05  # exact spline; only the field grid's linear interpolation remains
    assert 0.05 < np.nanmedian(result.loo_errors_mm) < 3.0
    field = result.transform.GetNthTransform(1)
    assert isinstance(field, sitk.DisplacementFieldTransform)


@pytest.mark.parametrize("model,n_params", [("rigid", 6), ("affine", 12)])
def test_noise_gives_the_residual_theory_predicts(model, n_params):
    """With isotropic noise sigma on the moving points, E[sum |r|^2] = sigma^2 (3n - p)."""
    rng = np.random.default_rng(42)
    n, sigma = 300, 0.5
    true = _true_transform(model, 3, rng)
    fixed = rng.uniform(-80, 80, (n, 3))
    lm = LandmarkSet(3)
    for p in fixed:
        lm.add_pair(tuple(p), tuple(np.add(true.TransformPoint(tuple(p)), rng.normal(scale=sigma, size=3))))
    result = fit(lm, model)
    expected_rms = sigma * np.sqrt((3 * n - n_params) / n)
    assert result.rms_mm == pytest.approx(expected_rms, rel=0.08)
    # Leave-one-out error exceeds the residual: it estimates the error at unseen points.
    assert np.sqrt(np.mean(result.loo_errors_mm**2)) > result.rms_mm
    assert _max_difference(result.transform, true, rng.uniform(-60, 60, (50, 3))) < 0.3


@pytest.mark.parametrize("model", ["rigid", "affine", "tps", "bspline"])
def test_leave_one_out_flags_a_planted_outlier(model):
    rng = np.random.default_rng(7)
    true = _true_transform("rigid", 3, rng)
    lm = LandmarkSet(3)
    for p in rng.uniform(-60, 60, (20, 3)):
        lm.add_pair(tuple(p), tuple(np.add(true.TransformPoint(tuple(p)), rng.normal(scale=0.3, size=3))))
    clean = fit(lm, model)
    assert clean.flagged == ()
    lm.set_moving(6, tuple(np.add(lm[6].moving, (8.0, -6.0, 5.0))))
    lm.set_enabled(2, False)  # indices stay those of the set
    result = fit(lm, model)
    assert result.flagged == (6,)
    assert 2 not in result.pair_indices and result.residual_for(2) is None
    assert result.loo_error_for(6) == pytest.approx(float(np.max(result.loo_errors_mm)))


@pytest.mark.parametrize(
    "model,points,words",
    [
        ("rigid", [(0, 0, 0), (1, 1, 1)], "rigid needs at least 3 non-collinear landmark pairs in 3D; 2 are enabled"),
        ("rigid", [(0, 0, 0), (1, 1, 1), (2, 2, 2)], "lie on one line"),
        ("affine", [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (3, 2, 0)], "4 non-coplanar landmark pairs in 3D; the 5 enabled fixed points lie in one plane"),
        ("tps", [(0, 0, 0), (1, 0, 0), (0, 1, 0)], "4 non-coplanar"),
        ("translation", [], "translation needs at least 1 landmark pair; 0 are enabled"),
    ],
)
def test_too_few_or_degenerate_points_give_a_plain_message(model, points, words):
    lm = LandmarkSet(3)
    for p in points:
        lm.add_pair(p, p)
    with pytest.raises(LandmarkFitError) as info:
        fit(lm, model)
    assert words in str(info.value)


def test_half_made_and_disabled_pairs_are_left_out_and_mentioned():
    lm = LandmarkSet(2)
    lm.add_pair((0, 0), (1, 1))
    lm.add_pair((5, 0), None)
    lm.add_pair((0, 5), (1, 6), enabled=False)
    with pytest.raises(LandmarkFitError, match="1 is enabled.*1 more is missing a point"):
        fit(lm, "rigid")
    with pytest.raises(LandmarkFitError, match="unknown landmark model"):
        fit(lm, "elastic")
    result = fit(lm, "translation")
    assert result.pair_indices == (0,) and np.isnan(result.loo_errors_mm[0])


def test_landmark_errors_table_and_summary():
    lm = LandmarkSet(3)
    lm.add_pair((0, 0, 0), (1, 0, 0), name="a")
    lm.add_pair((5, 5, 5), (5, 8, 5), name="b")
    lm.add_pair((1, 1, 1), (9, 9, 9), name="off", enabled=False)
    lm.add_pair((2, 2, 2), None, name="half")
    errors = landmark_errors(sitk.Transform(3, sitk.sitkIdentity), lm)
    assert [r.name for r in errors.rows] == ["a", "b", "off"]
    assert errors.rows[1].error_mm == pytest.approx(3.0) and errors.rows[1].vector_mm == (0.0, -3.0, 0.0)
    assert errors.n == 2 and errors.max_mm == pytest.approx(3.0) and errors.mean_mm == pytest.approx(2.0)
    assert errors.rms_mm == pytest.approx(np.sqrt(5.0))
    assert errors.to_dict()["summary"]["n"] == 2


def test_weights_pull_the_fit_toward_trusted_pairs():
    lm = LandmarkSet(2)
    lm.add_pair((0, 0), (0, 0), weight=1.0)
    lm.add_pair((10, 0), (12, 0), weight=3.0)
    result = fit(lm, "translation")
    assert result.transform.GetOffset() == pytest.approx((1.5, 0.0))


def test_fit_transform_saves_and_reads_back(tmp_path):
    rng = np.random.default_rng(3)
    true = _true_transform("affine", 3, rng)
    lm = _set_from(true, rng.uniform(-30, 30, (8, 3)))
    affine = fit(lm, "affine")
    affine.save_transform(tmp_path / "affine.tfm")
    again = read_transform(tmp_path / "affine.tfm")
    assert _max_difference(again, true, rng.uniform(-30, 30, (20, 3))) < 1e-6
    tps = fit(lm, "tps", leave_one_out=False)
    with pytest.raises(ImageWriteError, match=r"\.h5"):
        tps.save_transform(tmp_path / "tps.tfm")
    tps.save_transform(tmp_path / "tps.h5")
    assert _max_difference(read_transform(tmp_path / "tps.h5"), true, rng.uniform(-30, 30, (20, 3))) < 1e-6
    assert affine.summary()["n_pairs"] == 8
