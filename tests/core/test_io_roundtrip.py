"""Every format keeps geometry (origin, spacing, direction) and pixels through a round trip."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging.io import list_dicom_series, read_image, write_image


def _oblique_volume(pixel_type=sitk.sitkInt16) -> sitk.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 1000, size=(7, 9, 11)).astype(np.int16)
    img = sitk.Cast(sitk.GetImageFromArray(arr), pixel_type)
    img.SetSpacing((0.75, 1.25, 2.5))
    img.SetOrigin((-12.5, 30.25, 7.0))
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    img.SetDirection(tuple(rot.ravel()))
    return img


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_3d_round_trip_keeps_geometry_and_pixels(tmp_path, suffix):
    img = _oblique_volume()
    path = tmp_path / f"vol{suffix}"
    write_image(img, path)
    back = read_image(path)
    assert back.size == img.GetSize()
    np.testing.assert_allclose(back.spacing, img.GetSpacing(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.origin, img.GetOrigin(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(back.direction.ravel(), img.GetDirection(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(back.array(), sitk.GetArrayViewFromImage(img))
    # nothing but the file (and a MetaImage's data file) is left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".regviewer-tmp")]


@pytest.mark.parametrize("suffix", [".png", ".tif", ".mha"])
def test_2d_rgb_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(20, 30, 3)).astype(np.uint8)
    img = sitk.GetImageFromArray(arr, isVector=True)
    write_image(img, tmp_path / f"rgb{suffix}")
    back = read_image(tmp_path / f"rgb{suffix}")
    assert back.dimension == 2 and back.is_rgb and back.size == (30, 20)
    np.testing.assert_array_equal(back.array(), arr)
    np.testing.assert_allclose(back.spacing, (1.0, 1.0))


def test_jpeg_is_lossy_but_keeps_size(tmp_path):
    arr = np.full((16, 24, 3), 120, np.uint8)
    write_image(sitk.GetImageFromArray(arr, isVector=True), tmp_path / "a.jpg")
    back = read_image(tmp_path / "a.jpg")
    assert back.size == (24, 16) and back.is_rgb
    assert np.abs(back.array().astype(int) - 120).max() <= 3


def test_float_image_written_as_png_is_cast_to_8_bit(tmp_path):
    img = sitk.GetImageFromArray(np.linspace(0, 255, 100, dtype=np.float32).reshape(10, 10))
    write_image(img, tmp_path / "f.png")
    back = read_image(tmp_path / "f.png")
    assert back.sitk.GetPixelID() == sitk.sitkUInt8


def test_rgb_luminance_for_metrics():
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[..., 1] = 100
    from regviewer.core.imaging.image import Volume

    vol = Volume(sitk.GetImageFromArray(arr, isVector=True))
    lum = sitk.GetArrayFromImage(vol.scalar())
    assert lum.dtype == np.float32
    np.testing.assert_allclose(lum, 58.7, rtol=1e-5)


def _write_dicom_series(folder, image: sitk.Image, series_uid: str, description: str) -> None:
    """Write `image` as a DICOM series the way SimpleITK's own example does."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    common = [
        ("0008|0031", "120000"),
        ("0008|0021", "20260101"),
        ("0008|0008", "DERIVED\\SECONDARY"),
        ("0020|000e", series_uid),
        ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
        ("0020|0037", "\\".join(map(str, (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])))),
        ("0008|103e", description),
        ("0008|0060", "MR"),
    ]
    for i in range(image.GetDepth()):
        sl = image[:, :, i]
        for tag, value in common:
            sl.SetMetaData(tag, value)
        sl.SetMetaData("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, i)))))
        sl.SetMetaData("0020|0013", str(i))
        sl.SetMetaData("0008|0018", f"{series_uid}.{i + 1}")
        sl.SetMetaData("0028|0030", "\\".join(map(str, image.GetSpacing()[:2])))
        sl.SetMetaData("0018|0050", str(image.GetSpacing()[2]))
        writer.SetFileName(str(folder / f"slice{i:03d}.dcm"))
        writer.Execute(sl)


def _axis_aligned_volume() -> sitk.Image:
    arr = (np.arange(5 * 6 * 7).reshape(5, 6, 7) % 251).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 2.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    return img


def test_dicom_series_folder_reads_with_geometry(tmp_path):
    img = _axis_aligned_volume()
    _write_dicom_series(tmp_path / "series", img, "1.2.826.0.1.3680043.2.1125.2", "T1 axial")
    series = list_dicom_series(tmp_path / "series")
    assert len(series) == 1 and series[0].n_files == 5 and series[0].description == "T1 axial"
    vol = read_image(tmp_path / "series")
    assert vol.size == img.GetSize()
    np.testing.assert_allclose(vol.spacing, img.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(vol.origin, img.GetOrigin(), atol=1e-4)
    np.testing.assert_array_equal(vol.array(), sitk.GetArrayViewFromImage(img))


def test_dicom_folder_with_two_series_asks_which(tmp_path):
    from regviewer.core.errors import MultipleSeriesError

    img = _axis_aligned_volume()
    _write_dicom_series(tmp_path / "mixed", img, "1.2.826.0.1.3680043.2.1125.3", "first")
    _write_dicom_series(tmp_path / "mixed2", img, "1.2.826.0.1.3680043.2.1125.4", "second")
    for f in (tmp_path / "mixed2").iterdir():
        f.rename(tmp_path / "mixed" / ("b_" + f.name))
    with pytest.raises(MultipleSeriesError) as err:
        read_image(tmp_path / "mixed")
    assert "2 DICOM series" in str(err.value) and "first" in str(err.value)
    vol = read_image(tmp_path / "mixed", series_uid="1.2.826.0.1.3680043.2.1125.4")
    assert vol.size == img.GetSize()


def test_single_dicom_file_reads_as_2d(tmp_path):
    img = _axis_aligned_volume()
    _write_dicom_series(tmp_path / "s", img, "1.2.826.0.1.3680043.2.1125.5", "one")
    vol = read_image(tmp_path / "s" / "slice002.dcm")
    assert vol.dimension == 2 and vol.size == (7, 6)


def test_real_brain_reads_with_its_direction(test_data):
    vol = read_image(test_data / "mni152_2009a_t1_4mm.nii.gz")
    assert vol.size == (49, 58, 47)
    np.testing.assert_allclose(vol.direction, np.diag([-1.0, -1.0, 1.0]))
    assert vol.sitk.GetPixelID() == sitk.sitkUInt8  # no needless float copy
    window, level = vol.default_window_level()
    assert 100 < window <= 255 and 50 < level < 200
