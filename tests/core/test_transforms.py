"""Transform helpers: composition order, inverses, matrices, points, fields, B-spline refinement."""

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.transforms import ops as T
from regviewer.core.registration.bspline_grid import refine_bspline
from regviewer.core.errors import ParameterError


def _affine3(seed=0):
    rng = np.random.default_rng(seed)
    a = np.eye(3) + rng.normal(0, 0.1, (3, 3))
    return T.from_matrix(a, rng.normal(0, 5, 3), center=(10, -5, 3))


def test_from_matrix_round_trip_and_homogeneous():
    tx = _affine3()
    a, t = T.matrix_offset(tx)
    back = T.from_matrix(a, t)
    pts = np.random.default_rng(1).normal(0, 50, (20, 3))
    assert np.allclose(T.transform_points(tx, pts), T.transform_points(back, pts))
    h = T.to_homogeneous(tx)
    assert np.allclose(T.transform_points(tx, pts), pts @ h[:3, :3].T + h[:3, 3])


def test_compose_applies_in_the_order_given():
    shift = sitk.TranslationTransform(2, (5.0, 0.0))
    rot = T.make_linear("rigid", 2)
    rot.SetAngle(np.pi / 2)
    p = np.array([1.0, 0.0])
    # shift first (-> (6, 0)), then rotate 90 degrees about the origin (-> (0, 6))
    assert np.allclose(T.transform_points(T.compose(shift, rot), p), [0.0, 6.0], atol=1e-9)
    assert T.is_linear(T.compose(shift, rot))
    assert isinstance(T.flatten(T.compose(shift, rot)), sitk.AffineTransform)


def test_invert_linear_and_deformable():
    tx = _affine3(2)
    pts = np.random.default_rng(3).normal(0, 20, (10, 3))
    assert np.allclose(T.transform_points(T.invert(tx), T.transform_points(tx, pts)), pts, atol=1e-9)
    ref = sitk.Image([40, 40], sitk.sitkFloat32)
    bs = sitk.BSplineTransformInitializer(ref, [3, 3], 3)
    bs.SetParameters((np.random.default_rng(4).normal(0, 1.0, len(bs.GetParameters()))).tolist())
    inv = T.invert(bs, reference=ref)
    q = np.random.default_rng(5).uniform(8, 32, (20, 2))
    assert np.abs(T.transform_points(inv, T.transform_points(bs, q)) - q).max() < 0.05
    with pytest.raises(ParameterError):
        T.invert(bs)


def test_make_linear_kinds_and_errors():
    for kind in ("translation", "rigid", "versor", "similarity", "affine"):
        for dim in (2, 3):
            tx = T.make_linear(kind, dim, center=[1.0] * dim)
            assert tx.GetDimension() == dim and T.is_linear(tx)
    with pytest.raises(ParameterError):
        T.make_linear("bspline", 3)


def test_displacement_field_matches_transform():
    ref = sitk.Image([10, 12, 8], sitk.sitkFloat32)
    ref.SetSpacing((2.0, 1.5, 3.0))
    tx = _affine3(6)
    field = T.to_displacement_field(tx, ref)
    idx = (3, 4, 5)
    p = np.array(ref.TransformIndexToPhysicalPoint(idx))
    assert np.allclose(np.array(field[idx]), T.transform_points(tx, p) - p)


def test_linear_log_average_is_symmetric():
    a, b = _affine3(7), _affine3(8)
    m = T.linear_log_average(a, b)
    m_swapped = T.linear_log_average(T.invert(b), T.invert(a))
    pts = np.random.default_rng(9).normal(0, 30, (10, 3))
    # swapping the roles gives exactly the inverse
    assert np.allclose(T.transform_points(m_swapped, T.transform_points(m, pts)), pts, atol=1e-8)
    # averaging a transform with itself gives it back
    assert np.allclose(T.transform_points(T.linear_log_average(a, a), pts), T.transform_points(a, pts), atol=1e-8)


def test_refine_bspline_is_exact():
    img = sitk.Image([30, 40, 20], sitk.sitkFloat32)
    img.SetSpacing([1.5, 1.0, 2.0])
    img.SetOrigin([3.0, -4.0, 5.0])
    img.SetDirection(sitk.Euler3DTransform([0, 0, 0], 0.2, 0.1, 0.3).GetMatrix())
    tx = sitk.BSplineTransformInitializer(img, [3, 2, 4], 3)
    tx.SetParameters(np.random.default_rng(0).normal(0, 2, len(tx.GetParameters())).tolist())
    fine = refine_bspline(tx, img)
    assert list(fine.GetTransformDomainMeshSize()) == [6, 4, 8]
    pts = [img.TransformContinuousIndexToPhysicalPoint(list(p))
           for p in np.random.default_rng(1).uniform([0, 0, 0], [29, 39, 19], (300, 3))]
    diff = max(np.linalg.norm(np.subtract(tx.TransformPoint(p), fine.TransformPoint(p))) for p in pts)
    assert diff < 1e-9
