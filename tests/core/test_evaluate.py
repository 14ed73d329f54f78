"""Registration quality measures against analytic values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from regviewer.core.errors import IncompatibleImagesError
from regviewer.core.qa.labels import dice_per_label, hausdorff95_per_label, label_volumes_ml, warp_labels
from regviewer.core.qa.measures import (
    displacement_magnitude,
    inverse_consistency_error,
    jacobian_determinant,
    jacobian_stats,
    json_ready,
    similarity,
)


def _grid(size=(20, 22, 18), spacing=(2.0, 1.5, 1.0), direction=None, origin=(10.0, 5.0, -3.0)):
    img = sitk.Image(list(size), sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _affine(m, t=(3.0, 2.0, 1.0), c=(1.0, 2.0, 3.0)):
    a = sitk.AffineTransform(3)
    a.SetMatrix(tuple(np.asarray(m, float).ravel()))
    a.SetTranslation(t)
    a.SetCenter(c)
    return a


M = np.array([[1.1, 0.2, 0.0], [0.05, 0.9, 0.1], [0.0, 0.3, 1.2]])


@pytest.mark.parametrize(
    "direction",
    [None, (-1, 0, 0, 0, -1, 0, 0, 0, 1), tuple(np.array([[0.0, -1, 0], [0.6, 0, 0.8], [-0.8, 0, 0.6]]).ravel())],
    ids=["identity", "LPS-flip", "oblique"],
)
def test_jacobian_of_affine_is_its_determinant_everywhere(direction):
    ref = _grid(direction=direction)
    jac = jacobian_determinant(_affine(M), ref)
    values = sitk.GetArrayFromImage(jac)
    np.testing.assert_allclose(values, np.linalg.det(M), rtol=1e-5)
    assert jac.GetSize() == ref.GetSize() and jac.GetDirection() == ref.GetDirection()
    stats = jacobian_stats(jac)
    assert stats["folding_percent"] == 0.0
    assert stats["min"] == pytest.approx(np.linalg.det(M), rel=1e-5)


def test_jacobian_2d_scale():
    ref = sitk.Image([30, 20], sitk.sitkFloat32)
    ref.SetSpacing((0.5, 2.0))
    tx = sitk.ScaleTransform(2, (2.0, 0.5))  # area preserved
    np.testing.assert_allclose(sitk.GetArrayFromImage(jacobian_determinant(tx, ref)), 1.0, atol=1e-6)


def _planted_fold(shape=(24, 24, 24), strength=3.0, sigma=3.0):
    """u_x = -strength * (x - c) * exp(-r^2 / 2 sigma^2): d u_x / dx = -strength at the centre,
    so det = 1 - strength < 0 there (the transform folds), and ~1 far away."""
    z, y, x = np.indices(shape, dtype=float)
    c = (np.array(shape) - 1) / 2.0
    r2 = (x - c[2]) ** 2 + (y - c[1]) ** 2 + (z - c[0]) ** 2
    g = np.exp(-r2 / (2 * sigma**2))
    field = np.zeros(shape + (3,))
    field[..., 0] = -strength * (x - c[2]) * g
    # analytic Jacobian determinant (only u_x varies): 1 + d u_x / dx
    analytic = 1 + (-strength * g * (1 - (x - c[2]) ** 2 / sigma**2))
    img = sitk.GetImageFromArray(field, isVector=True)
    return sitk.DisplacementFieldTransform(img), img, analytic


def test_planted_folding_is_detected_and_counted():
    tx, field_img, analytic = _planted_fold()
    ref = _grid(size=(24, 24, 24), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    jac = jacobian_determinant(tx, ref)
    values = sitk.GetArrayFromImage(jac)
    c = (11, 11, 11)  # the voxel nearest the fold centre (11.5)
    assert values[c] < 0
    stats = jacobian_stats(jac)
    expected = np.count_nonzero(analytic <= 0)
    assert expected > 0
    # finite differences vs the analytic derivative: counts agree to within the fold's rim
    assert abs(stats["folding_voxels"] - expected) <= 0.35 * expected
    assert stats["folding_percent"] == pytest.approx(100 * stats["folding_voxels"] / values.size)
    assert stats["min"] < 0 < stats["max"]
    # a mask away from the fold sees no folding
    mask = np.zeros((24, 24, 24), np.uint8)
    mask[:4] = 1
    mask_img = sitk.GetImageFromArray(mask)
    mask_img.CopyInformation(ref)
    assert jacobian_stats(jac, mask_img)["folding_percent"] == 0.0


def test_displacement_magnitude_of_translation():
    ref = _grid()
    mag = displacement_magnitude(sitk.TranslationTransform(3, (3.0, 4.0, 0.0)), ref)
    np.testing.assert_allclose(sitk.GetArrayFromImage(mag), 5.0, rtol=1e-6)


def _labels_cube(size=40, start=(10, 10, 10), side=12, spacing=(1.0, 1.0, 1.0), label=1):
    a = np.zeros((size, size, size), np.uint8)
    x0, y0, z0 = start
    a[z0:z0 + side, y0:y0 + side, x0:x0 + side] = label
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(spacing)
    return img


def test_dice_identical_is_one():
    img = _labels_cube()
    assert dice_per_label(img, img) == {1: 1.0}
    assert hausdorff95_per_label(img, img) == {1: 0.0}


@pytest.mark.parametrize("shift", [1, 3, 6])
def test_dice_of_shifted_cube_matches_analytic(shift):
    side = 12
    a = _labels_cube(side=side)
    b = _labels_cube(side=side, start=(10 + shift, 10, 10))
    assert dice_per_label(a, b)[1] == pytest.approx((side - shift) / side)
    hd = hausdorff95_per_label(a, b)[1]
    assert 0 < hd <= shift + 1e-9  # no surface point is farther than the shift


def test_hausdorff95_of_concentric_spheres_uses_mm():
    z, y, x = np.indices((40, 60, 60), dtype=float)
    spacing = (0.5, 0.5, 1.0)  # x, y, z
    r = np.sqrt(((x - 30) * 0.5) ** 2 + ((y - 30) * 0.5) ** 2 + ((z - 20) * 1.0) ** 2)
    small = sitk.GetImageFromArray((r <= 8).astype(np.uint8) * 3)
    big = sitk.GetImageFromArray((r <= 12).astype(np.uint8) * 3)
    for img in (small, big):
        img.SetSpacing(spacing)
    hd = hausdorff95_per_label(small, big)[3]
    assert hd == pytest.approx(4.0, abs=1.0)


def test_missing_label_scores_zero_and_inf():
    a = _labels_cube(label=1)
    b = _labels_cube(label=2)
    assert dice_per_label(a, b) == {1: 0.0, 2: 0.0}
    assert hausdorff95_per_label(a, b) == {1: math.inf, 2: math.inf}
    assert json_ready({"hd": hausdorff95_per_label(a, b)}) == {"hd": {"1": None, "2": None}}


def test_warp_labels_nearest_neighbour_with_translation():
    a = _labels_cube(label=5)
    # fixed->moving by +3 mm in x: the warped moving labels appear 3 mm to the LEFT (-x)
    warped = warp_labels(a, sitk.TranslationTransform(3, (3.0, 0.0, 0.0)), a)
    arr = sitk.GetArrayFromImage(warped)
    assert set(np.unique(arr)) == {0, 5}
    assert np.argwhere(arr == 5)[:, 2].min() == 7
    assert dice_per_label(a, warped)[5] == pytest.approx(9 / 12)


def test_label_grid_mismatch_is_an_error():
    with pytest.raises(IncompatibleImagesError, match="different grids"):
        dice_per_label(_labels_cube(size=40), _labels_cube(size=30))


def test_label_volumes():
    img = _labels_cube(side=10, spacing=(2.0, 1.0, 1.0))
    assert label_volumes_ml(img) == {1: pytest.approx(2.0)}


def test_inverse_consistency():
    ref = _grid()
    fwd = _affine(M)
    ice = inverse_consistency_error(fwd, fwd.GetInverse(), ref)
    assert ice["max"] < 1e-6
    shift = inverse_consistency_error(sitk.TranslationTransform(3, (1.0, 0, 0)), sitk.TranslationTransform(3, (0.5, 0, 0)), ref)
    assert shift["mean"] == pytest.approx(1.5) and shift["p95"] == pytest.approx(1.5)


def test_similarity_before_and_after():
    rng = np.random.default_rng(0)
    base = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random((30, 40, 40)).astype(np.float32)), 2.0)
    moved = sitk.Resample(base, base, sitk.TranslationTransform(3, (-3.0, 0.0, 0.0)), sitk.sitkLinear, 0.0)
    # moved(x) = base(x - 3): the fixed->moving transform that realigns is x -> x + 3
    before = similarity(base, moved, None)
    after = similarity(base, moved, sitk.TranslationTransform(3, (3.0, 0.0, 0.0)))
    assert after["correlation"] == pytest.approx(1.0, abs=1e-5)
    assert after["mutual_information"] > before["mutual_information"]
    assert after["correlation"] > before["correlation"]
    assert 80 < after["overlap_percent"] <= 100
    # T2-like inversion: MI still high, correlation negative
    inverted = sitk.Cast(1.0 - base, sitk.sitkFloat32)
    inv = similarity(base, inverted, None)
    assert inv["correlation"] == pytest.approx(-1.0, abs=1e-5)
    assert inv["mutual_information"] == pytest.approx(similarity(base, base, None)["mutual_information"], rel=0.05)


def test_deformation_maps_agree_with_separate_calls():
    from regviewer.core.qa.measures import deformation_maps

    ref = _grid(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    tx = sitk.CompositeTransform([_affine(M), sitk.TranslationTransform(3, (1.0, 2.0, 0.0))])
    jac, mag = deformation_maps(tx, ref)
    np.testing.assert_allclose(sitk.GetArrayFromImage(mag), sitk.GetArrayFromImage(displacement_magnitude(tx, ref)), rtol=1e-5)
    np.testing.assert_allclose(sitk.GetArrayFromImage(jac), np.linalg.det(M), rtol=1e-5)
    assert mag.GetOrigin() == ref.GetOrigin() and mag.GetSize() == ref.GetSize()


def test_similarity_subsamples_large_images_without_interpolation():
    from regviewer.core.qa.measures import subsample_grid

    img = _grid(size=(40, 40, 40))
    small = subsample_grid(img, 10_000)
    assert small.GetSize() == (20, 20, 20) and small.GetSpacing() == (4.0, 3.0, 2.0)  # every 2nd voxel
    assert small.GetOrigin() == img.GetOrigin()
    assert subsample_grid(img, 10**9) is img


def test_bspline_support_ending_at_the_image_border_gives_no_false_folding():
    """ITK's B-spline is zero outside its grid's support; the Jacobian must not sample there."""
    img = sitk.Image([50, 40], sitk.sitkFloat32)
    bs = sitk.BSplineTransformInitializer(img, [3, 3])
    bs.SetParameters([5.0] * (len(bs.GetParameters()) // 2) + [0.0] * (len(bs.GetParameters()) // 2))
    jac = sitk.GetArrayFromImage(jacobian_determinant(bs, img))
    np.testing.assert_allclose(jac, 1.0, atol=1e-6)  # a uniform shift everywhere, borders included


@pytest.mark.parametrize("dimension", [2, 3])
@pytest.mark.parametrize("slab_voxels", [1, 2 * 20 * 22, 7 * 20 * 22])
def test_deformation_maps_in_slabs_equal_the_whole_field_at_once(dimension, slab_voxels):
    """The slabs (one-voxel halo, extrapolation only at the image's borders) must give the
    numbers of the whole field at once, for a B-spline under an oblique-ish direction."""
    from regviewer.core.qa.measures import deformation_maps

    if dimension == 3:
        ref = _grid(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
        linear = _affine(M)
    else:
        ref = sitk.Image([20, 22], sitk.sitkFloat32)
        ref.SetSpacing((1.5, 2.0))
        ref.SetDirection((0.0, -1.0, 1.0, 0.0))
        linear = sitk.AffineTransform(2)
        linear.SetMatrix((1.1, 0.2, 0.05, 0.9))
    bs = sitk.BSplineTransformInitializer(ref, [3] * dimension)
    bs.SetParameters(np.random.default_rng(1).normal(0, 2.0, bs.GetNumberOfParameters()).tolist())
    tx = sitk.CompositeTransform([linear, bs])
    whole_jac, whole_mag = deformation_maps(tx, ref, slab_voxels=10**9)
    jac, mag = deformation_maps(tx, ref, slab_voxels=slab_voxels)
    np.testing.assert_allclose(sitk.GetArrayFromImage(jac), sitk.GetArrayFromImage(whole_jac), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(mag), sitk.GetArrayFromImage(whole_mag), rtol=1e-6, atol=1e-6)
    assert jac.GetOrigin() == ref.GetOrigin() and jac.GetSize() == ref.GetSize()
    assert jac.GetDirection() == ref.GetDirection() and mag.GetSpacing() == ref.GetSpacing()
    assert np.ptp(sitk.GetArrayFromImage(jac)) > 0.05  # a real deformation, not a constant


def test_chunked_mutual_information_and_correlation_equal_numpys_in_one_pass():
    from regviewer.core.qa.measures import CHUNK, MI_BINS, mutual_information, pearson

    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 2 * CHUNK + 17).astype(np.float32)
    b = (0.6 * a + rng.normal(0, 1, a.size)).astype(np.float32)
    joint, _, _ = np.histogram2d(a, b, bins=MI_BINS)
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    assert mutual_information(a, b) == float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))
    assert pearson(a, b) == pytest.approx(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1], abs=1e-12)
    assert mutual_information(np.ones(10, np.float32), np.arange(10, dtype=np.float32)) == pytest.approx(0.0, abs=1e-12)


def test_similarity_of_a_uint8_moving_image_equals_that_of_its_float32_cast():
    """The moving image is resampled as it is (no float32 copy of it): same numbers."""
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 255, (18, 22, 20)).astype(np.uint8)
    fixed = sitk.GetImageFromArray(ndimage.gaussian_filter(arr.astype(np.float32), 1.0))
    moving = sitk.GetImageFromArray(arr)
    tx = sitk.TranslationTransform(3, (0.7, -0.4, 0.3))
    assert similarity(fixed, moving, tx) == similarity(fixed, sitk.Cast(moving, sitk.sitkFloat32), tx)


def test_summarise_equals_numpys_statistics_and_leaves_its_input_alone():
    """It orders its own copy in place (memory on a 1 mm map): numbers as numpy gives them."""
    from regviewer.core.qa.tre import summarise

    rng = np.random.default_rng(5)
    values = rng.gamma(2.0, 1.0, 100_001)
    values[7] = np.nan
    kept = values.copy()
    s = summarise(values)
    np.testing.assert_array_equal(values, kept)
    f = kept[np.isfinite(kept)]
    assert (s.n, s.mean_mm, s.median_mm, s.p95_mm, s.max_mm) == (
        f.size, float(f.mean()), float(np.median(f)), float(np.percentile(f, 95)), float(f.max()))
    assert s.rms_mm == pytest.approx(float(np.sqrt(np.mean(f * f))), rel=1e-12)  # summed in another order
