"""Deformation-grid geometry: straight under identity, moved by T (fixed → moving), bent by B-splines."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.grid import (
    bspline_control_points,
    flatten_transform,
    points_near_plane,
    warped_grid_lines,
    warped_grid_lines_3d,
)
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import planes_for


def _volume_3d(size=(40, 30, 20), spacing=(2.0, 2.0, 3.0), direction=None) -> Volume:
    img = sitk.Image(list(size), sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 5.0, 2.0))
    if direction is not None:
        img.SetDirection(direction)
    return Volume(img)


def _volume_2d(size=(60, 40)) -> Volume:
    img = sitk.Image(list(size), sitk.sitkFloat32)
    img.SetSpacing((0.5, 0.5))
    return Volume(img)


def test_identity_gives_straight_evenly_spaced_lines_2d():
    vol = _volume_2d()
    plane = planes_for(vol)["axial"]
    lines = warped_grid_lines(None, plane, 0.0, spacing_mm=5.0)
    extent_u, extent_v = (60 - 1) * 0.5, (40 - 1) * 0.5
    n_u, n_v = int(extent_u // 5) + 1, int(extent_v // 5) + 1
    assert len(lines) == n_u + n_v
    horizontal = [ln for ln in lines if np.ptp(ln[:, 1]) < 1e-9]
    vertical = [ln for ln in lines if np.ptp(ln[:, 0]) < 1e-9]
    assert len(horizontal) == n_v and len(vertical) == n_u
    rows = sorted(ln[0, 1] for ln in horizontal)
    assert np.allclose(np.diff(rows), 5.0 / 0.5)  # 5 mm apart = 10 pixels
    # centred: equal margins top and bottom
    assert rows[0] == pytest.approx((40 - 1) - rows[-1])
    for ln in lines:
        assert ln.shape[1] == 2 and len(ln) >= 2


def test_translation_moves_grid_by_T_not_inverse():
    vol = _volume_3d()
    plane = planes_for(vol)["axial"]
    depth = plane.depth_of(vol.center_physical())
    straight = warped_grid_lines(None, plane, depth)
    moved = warped_grid_lines(sitk.TranslationTransform(3, (4.0, -6.0, 9.0)), plane, depth)
    assert len(straight) == len(moved)
    # axial u = +x (spacing 2), v = +y (spacing 2): +4 mm x = +2 cols, -6 mm y = -3 rows
    for a, b in zip(straight, moved):
        assert np.allclose(b - a, [2.0, -3.0])
    lines3d = warped_grid_lines_3d(sitk.TranslationTransform(3, (4.0, -6.0, 9.0)), plane, depth)
    base3d = warped_grid_lines_3d(None, plane, depth)
    for a, b in zip(base3d, lines3d):
        assert np.allclose(b - a, [4.0, -6.0, 9.0])
        assert np.allclose(a[:, 2], depth)


def test_grid_matches_transform_point_on_oblique_image_and_rotation():
    direction = sitk.VersorTransform((0.2, 0.1, 1.0), 0.3).GetMatrix()
    vol = _volume_3d(direction=direction)
    rot = sitk.Euler3DTransform(vol.center_physical(), 0.1, -0.2, 0.3, (1.0, 2.0, 3.0))
    for name, plane in planes_for(vol).items():
        depth = plane.depth_of(vol.center_physical())
        base = warped_grid_lines_3d(None, plane, depth, spacing_mm=8.0)
        warped = warped_grid_lines_3d(rot, plane, depth, spacing_mm=8.0)
        for a, b in zip(base, warped):
            expected = np.array([rot.TransformPoint(tuple(p)) for p in a[::3]])
            assert np.allclose(b[::3], expected, atol=1e-6), name
        projected = warped_grid_lines(rot, plane, depth, spacing_mm=8.0)
        for b3, b2 in zip(warped, projected):
            cr = np.array([plane.to_plane(p)[:2] for p in b3[::4]])
            assert np.allclose(b2[::4], cr, atol=1e-6)


def test_bspline_bends_lines_and_control_points():
    vol = _volume_2d()
    plane = planes_for(vol)["axial"]
    spline = sitk.BSplineTransformInitializer(vol.sitk, [4, 4])
    params = np.zeros(spline.GetNumberOfParameters())
    params[len(params) // 4] = 3.0  # one x coefficient
    spline.SetParameters(params.tolist())
    composite = sitk.CompositeTransform([sitk.TranslationTransform(2, (1.0, 0.0)), spline])
    lines = warped_grid_lines(composite, plane, 0.0, spacing_mm=4.0)
    vertical = [ln for ln in warped_grid_lines(None, plane, 0.0, spacing_mm=4.0) if np.ptp(ln[:, 0]) < 1e-9]
    bent = [ln for ln in lines[len(lines) - len(vertical):] if np.ptp(ln[:, 0]) > 0.1]
    assert bent, "a non-zero B-spline coefficient must bend some lines"

    assert bspline_control_points(sitk.Euler2DTransform()) is None
    assert bspline_control_points(None) is None
    nodes = bspline_control_points(composite, displaced=False)
    moved = bspline_control_points(sitk.Transform(composite))
    assert nodes.shape == (7 * 7, 2)
    diff = moved - nodes
    assert np.count_nonzero(np.abs(diff).sum(axis=1)) == 1
    assert np.abs(diff).max() == pytest.approx(3.0)
    # control lattice spans the image
    lo, hi = nodes.min(axis=0), nodes.max(axis=0)
    assert lo[0] < 0 and hi[0] > (60 - 1) * 0.5


def test_flatten_nested_composite():
    inner = sitk.CompositeTransform([sitk.TranslationTransform(3), sitk.AffineTransform(3)])
    outer = sitk.CompositeTransform([sitk.Transform(inner), sitk.Euler3DTransform()])
    names = [t.GetName() for t in flatten_transform(sitk.Transform(outer))]
    assert len(names) == 3


def test_points_near_plane_and_errors():
    vol = _volume_3d()
    plane = planes_for(vol)["axial"]
    pts = np.array([[0.0, 10.0, 5.0], [0.0, 10.0, 50.0]])
    near = points_near_plane(pts, plane, 5.0, tolerance_mm=1.0)
    assert near.shape == (1, 2)
    assert points_near_plane(None, plane, 0, 1).shape == (0, 2)
    with pytest.raises(ParameterError):
        warped_grid_lines(None, plane, 0.0, spacing_mm=0)
    with pytest.raises(ParameterError):
        warped_grid_lines(sitk.Euler2DTransform(), plane, 0.0)


def test_huge_plane_widens_spacing():
    vol = _volume_2d(size=(5000, 10))
    plane = planes_for(vol)["axial"]
    lines = warped_grid_lines(None, plane, 0.0, spacing_mm=0.1)
    assert len(lines) <= 2 * 200 + 2


def test_pack_polylines_breaks_between_lines():
    from regviewer.core.imaging.grid import pack_polylines

    x, y, connect = pack_polylines([np.array([[0, 0], [1, 1]]), np.array([[5, 5], [6, 6], [7, 7]])])
    assert list(x) == [0, 1, 5, 6, 7] and list(connect) == [1, 0, 1, 1, 0]
    assert len(pack_polylines([])[0]) == 0
