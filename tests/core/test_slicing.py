"""Views show planes of physical space: oblique images are resliced, not shown in voxel order."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import orientation_letter, planes_for, reslice


def _physical_x_image(direction: np.ndarray) -> sitk.Image:
    """An image whose every voxel holds its own physical L coordinate (x in LPS)."""
    img = sitk.Image(30, 30, 20, sitk.sitkFloat32)
    img.SetSpacing((1.0, 1.0, 1.5))
    img.SetOrigin((-15.0, -15.0, -15.0))
    img.SetDirection(tuple(direction.ravel()))
    field = sitk.PhysicalPointSource(sitk.sitkVectorFloat32, img.GetSize(), img.GetOrigin(), img.GetSpacing(), img.GetDirection())
    x = sitk.VectorIndexSelectionCast(field, 0)
    x.CopyInformation(img)
    return x


def _rotation_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


@pytest.mark.parametrize("orientation", ["axial", "coronal"])
def test_oblique_image_is_resliced_in_physical_space(orientation):
    vol = Volume(_physical_x_image(_rotation_z(30)))
    plane = planes_for(vol)[orientation]
    centre = vol.center_physical()
    values = reslice(vol.sitk, plane, plane.depth_of(centre), default_value=np.nan)
    rows, cols = np.nonzero(np.isfinite(values))
    assert len(rows) > 100
    checked = 0
    for r, c in zip(rows, cols):
        p = plane.to_physical(c, r, plane.depth_of(centre))
        index = vol.physical_to_index(p)
        if all(0 <= i <= s - 1 for i, s in zip(index, vol.size)):  # inside the voxel-centre hull
            assert values[r, c] == pytest.approx(p[0], abs=1e-3)
            checked += 1
    assert checked > 100
    # screen-right is patient-left (+x) on axial and coronal views
    assert np.nanmean(np.diff(values, axis=1)) > 0


def test_lps_brain_orientation_letters(test_data):
    from regviewer.core.imaging.io import read_image

    vol = read_image(test_data / "mni152_2009a_t1_4mm.nii.gz")
    planes = planes_for(vol)
    assert planes["axial"].edge_letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert planes["coronal"].edge_letters() == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert planes["sagittal"].edge_letters() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert planes["axial"].shape == (58, 49)


def test_plane_round_trip_between_pixels_and_physical_points():
    vol = Volume(_physical_x_image(_rotation_z(10)))
    for plane in planes_for(vol).values():
        p = plane.to_physical(12.5, 7.25, 3.0)
        col, row, depth = plane.to_plane(p)
        assert (col, row, depth) == pytest.approx((12.5, 7.25, 3.0))


def test_reslice_applies_the_fixed_to_moving_transform():
    vol = Volume(_physical_x_image(np.eye(3)))
    plane = planes_for(vol)["axial"]
    shift = sitk.TranslationTransform(3, (5.0, 0.0, 0.0))  # fixed point p samples moving at p + 5 mm
    plain = reslice(vol.sitk, plane, 0.0)
    moved = reslice(vol.sitk, plane, 0.0, transform=shift)
    inside = (slice(2, -2), slice(2, -8))
    np.testing.assert_allclose(moved[inside], plain[inside] + 5.0, atol=1e-4)


def test_2d_image_has_one_upright_plane():
    img = sitk.GetImageFromArray(np.arange(12, dtype=np.float32).reshape(3, 4))
    planes = planes_for(Volume(img))
    assert list(planes) == ["axial"]
    np.testing.assert_array_equal(reslice(img, planes["axial"]), sitk.GetArrayFromImage(img))


def test_rgb_reslice_keeps_channels():
    arr = np.zeros((5, 6, 3), np.uint8)
    arr[..., 2] = 200
    img = sitk.GetImageFromArray(arr, isVector=True)
    out = reslice(img, planes_for(Volume(img))["axial"])
    assert out.shape == (5, 6, 3) and out[..., 2].min() == 200


def test_orientation_letters():
    assert orientation_letter((1, 0, 0)) == "L"
    assert orientation_letter((0, -1, 0)) == "A"
    assert orientation_letter((0, 0.2, -0.9)) == "I"


def test_volume_index_physical_round_trip():
    vol = Volume(_physical_x_image(_rotation_z(25)))
    idx = (3.5, 7.25, 2.0)
    assert vol.physical_to_index(vol.index_to_physical(idx)) == pytest.approx(idx)
    assert vol.contains(vol.center_physical())
    assert vol.value_at(vol.index_to_physical((4, 5, 6))) == pytest.approx(vol.index_to_physical((4, 5, 6))[0], abs=1e-4)


def test_reslice_on_one_thread_gives_the_same_slice():
    rng = np.random.default_rng(2)
    image = sitk.GetImageFromArray(rng.random((12, 14, 16)).astype(np.float32))
    image.SetSpacing((1.5, 1.0, 2.0))
    bs = sitk.BSplineTransformInitializer(image, [2, 2, 2])
    bs.SetParameters(rng.normal(0, 1.0, bs.GetNumberOfParameters()).tolist())
    for plane in planes_for(Volume(image)).values():
        np.testing.assert_array_equal(reslice(image, plane, 4.0, bs, threads=1), reslice(image, plane, 4.0, bs))
