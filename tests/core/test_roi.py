"""Region of interest: the box and painted balls in LPS mm become the right voxels of the
fixed grid (oblique direction included), JSON round trip, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.roi import RegionOfInterest, rasterise, voxel_centres, write_mask


def _grid(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.Image(20, 16, 12, sitk.sitkFloat32)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((30.0, 20.0, -10.0))
    image.SetDirection(direction)
    return image


def test_voxel_centres_match_simpleitk():
    image = _grid()
    centres = voxel_centres(image)
    for ijk in [(0, 0, 0), (19, 15, 11), (3, 7, 5)]:
        assert np.allclose(centres[ijk[2], ijk[1], ijk[0]], image.TransformIndexToPhysicalPoint(ijk))


def test_box_holds_exactly_the_voxels_whose_centres_are_inside():
    image = _grid()
    roi = RegionOfInterest().with_box((10.0, 5.0, -4.0), (0.0, -3.0, 8.0))  # corners in any order
    mask = sitk.GetArrayFromImage(rasterise(roi, image))
    centres = voxel_centres(image)
    expected = ((centres[..., 0] >= 0) & (centres[..., 0] <= 10) & (centres[..., 1] >= -3) & (centres[..., 1] <= 5)
                & (centres[..., 2] >= -4) & (centres[..., 2] <= 8))
    assert mask.dtype == np.uint8 and np.array_equal(mask.astype(bool), expected)
    assert 0 < mask.sum() < mask.size
    assert rasterise(roi, image).GetOrigin() == image.GetOrigin()


def test_box_in_a_view_plane_keeps_the_third_axis_and_balls_add_to_it():
    image = _grid()
    full = ((-8.0, -10.0, -10.0), (30.0, 20.0, 23.0))
    axial = RegionOfInterest().with_box_in_plane((0, 0, 5), (10, 8, 5), [(1, 0, 0), (0, 1, 0)], full)
    assert axial.box == ((0.0, 0.0, -10.0), (10.0, 8.0, 23.0))  # z: the whole image
    coronal = axial.with_box_in_plane((2, 99, -1), (6, 99, 4), [(1, 0, 0), (0, 0, -1)], full)
    assert coronal.box == ((2.0, 0.0, -1.0), (6.0, 8.0, 4.0))  # x and z from the drag, y kept
    painted = coronal.with_ball((20.0, 10.0, 2.0), 4.0)
    before = sitk.GetArrayFromImage(rasterise(coronal, image)).sum()
    after = sitk.GetArrayFromImage(rasterise(painted, image))
    index = image.TransformPhysicalPointToIndex((20.0, 10.0, 2.0))
    assert after.sum() > before and after[index[2], index[1], index[0]] == 1
    assert RegionOfInterest.from_json(painted.to_json()) == painted


def test_bad_regions_say_what_is_wrong(tmp_path):
    image = _grid()
    with pytest.raises(ParameterError, match="empty"):
        rasterise(RegionOfInterest(), image)
    with pytest.raises(ParameterError, match="no voxel"):
        rasterise(RegionOfInterest().with_box((500, 500, 500), (600, 600, 600)), image)
    with pytest.raises(ParameterError, match="radius"):
        RegionOfInterest().with_ball((0, 0, 0), 0.0)
    with pytest.raises(ParameterError, match="malformed"):
        RegionOfInterest.from_json({"box": [[1, 2]]})
    path = write_mask(RegionOfInterest().with_box((0, 0, 0), (10, 10, 10)), image, tmp_path / "roi.nii.gz")
    assert sitk.ReadImage(str(path)).GetSize() == image.GetSize()


def test_outline_on_plane_follows_the_box_and_the_painted_balls():
    from regviewer.core.imaging.roi import outline_on_plane
    from regviewer.core.imaging.slicing import planes_for
    from regviewer.core.imaging.image import Volume

    image = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    plane = planes_for(Volume(image))["axial"]
    roi = RegionOfInterest().with_box((5, 5, 5), (15, 25, 10)).with_ball((20, 20, 8), 3.0)
    corners, cuts = outline_on_plane(roi, plane, plane.depth_of((0, 0, 8)))
    assert len(corners) == 5 and corners[0] == corners[-1]
    assert {round(abs(c[0] - corners[0][0])) for c in corners} == {0, 10}  # 10 mm wide at 1 mm pixels
    assert len(cuts) == 1 and abs(cuts[0][2] - 6.0) < 1e-6  # the ball cut through its centre
    corners, cuts = outline_on_plane(roi, plane, plane.depth_of((0, 0, 30)))
    assert corners == [] and cuts == []
