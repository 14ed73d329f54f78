"""An oblique fixed image: the region's outline in a view is drawn where its mask is.

3D display planes are LPS-aligned (the oblique image is resliced), so the box is an LPS
box; a 2D image is shown on its own (possibly rotated) pixel grid, so its box follows
that grid: a drag on screen gives the rectangle on screen, and the mask fills it."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.roi import RegionOfInterest, outline_on_plane, rasterise
from regviewer.core.imaging.slicing import planes_for, reslice


def _rotation(axis, degrees) -> np.ndarray:
    t = sitk.VersorTransform(tuple(float(a) for a in axis), np.radians(degrees))
    return np.asarray(t.GetMatrix()).reshape(3, 3)


def _oblique_3d() -> sitk.Image:
    image = sitk.Image(40, 36, 30, sitk.sitkFloat32)
    image.SetSpacing((1.5, 1.5, 2.0))
    image.SetOrigin((-20.0, -30.0, -25.0))
    image.SetDirection(tuple((_rotation((0, 0, 1), 25) @ _rotation((1, 0, 0), 15)).ravel()))
    return image


def _inside_rect(shape, corners) -> np.ndarray:
    cols, rows = [c[0] for c in corners], [c[1] for c in corners]
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    return (cc >= min(cols)) & (cc <= max(cols)) & (rr >= min(rows)) & (rr <= max(rows))


def _distance_to_edge(shape, corners) -> np.ndarray:
    cols, rows = [c[0] for c in corners], [c[1] for c in corners]
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    return np.minimum.reduce([np.abs(cc - min(cols)), np.abs(cc - max(cols)), np.abs(rr - min(rows)),
                              np.abs(rr - max(rows))])


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_an_oblique_3d_box_outline_is_where_its_mask_is(orientation):
    image = _oblique_3d()
    roi = RegionOfInterest().with_box((-5, -10, -10), (15, 12, 15))
    mask = rasterise(roi, image)
    plane = planes_for(Volume(image))[orientation]
    depth = plane.depth_of((5, 1, 2))
    corners, _ = outline_on_plane(roi, plane, depth)
    assert len(corners) == 5
    shown = reslice(mask, plane, depth, interpolator="nearest", default_value=-1)
    inside = _inside_rect(shown.shape, corners)
    # Away from the outline by more than a voxel's diagonal (the staircase of an oblique grid).
    margin = np.linalg.norm(image.GetSpacing()) / min(plane.spacing)
    far = _distance_to_edge(shown.shape, corners) > margin
    in_image = shown >= 0
    assert np.all(shown[inside & far & in_image] == 1)
    assert np.all(shown[~inside & far & in_image] == 0)
    assert (inside & far & in_image).sum() > 50


@pytest.mark.parametrize("degrees", [20.0, 45.0])
def test_a_2d_box_on_a_rotated_grid_follows_the_drag_on_screen(degrees):
    image = sitk.Image(60, 50, sitk.sitkFloat32)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    image.SetDirection((c, -s, s, c))
    image.SetOrigin((10.0, -5.0))
    plane = planes_for(Volume(image))["axial"]
    a, b = plane.to_physical(9.5, 11.5), plane.to_physical(40.5, 30.5)  # between pixel centres
    corners_lps = Volume(image).corners_physical()
    roi = RegionOfInterest().with_box_in_plane(a, b, (plane.u, plane.v), (corners_lps.min(axis=0),
                                                                           corners_lps.max(axis=0)))
    corners, _ = outline_on_plane(roi, plane, 0.0)
    on_screen = sorted({(round(x, 6), round(y, 6)) for x, y in corners})
    assert on_screen == [(9.5, 11.5), (9.5, 30.5), (40.5, 11.5), (40.5, 30.5)]
    mask = sitk.GetArrayFromImage(rasterise(roi, image))
    expected = np.zeros_like(mask)
    expected[12:31, 10:41] = 1
    assert np.array_equal(mask, expected)
    assert RegionOfInterest.from_json(roi.to_json()) == roi


def test_box_axes_that_are_not_orthonormal_are_refused():
    from regviewer.core.errors import ParameterError

    with pytest.raises(ParameterError, match="orthonormal"):
        RegionOfInterest().with_box((0, 0), (5, 5), ((1, 0), (1, 1)))
    with pytest.raises(ParameterError, match="malformed|orthonormal"):
        RegionOfInterest.from_json({"box": [[0, 0], [5, 5]], "box_axes": [[1, 0, 0]]})
