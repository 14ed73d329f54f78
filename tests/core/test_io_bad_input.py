"""Bad input raises a typed error whose message names the file and the problem."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import (
    ImageReadError,
    ImageWriteError,
    IncompatibleImagesError,
    MultipleTimePointsError,
    RegviewerError,
    UnsupportedImageError,
)
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import check_compatible, read_image, write_image


def _small(dim=3):
    shape = (4, 5, 6)[-dim:]
    return sitk.GetImageFromArray(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))


def test_every_error_is_a_regviewer_error():
    for cls in (ImageReadError, UnsupportedImageError, MultipleTimePointsError, IncompatibleImagesError, ImageWriteError):
        assert issubclass(cls, RegviewerError)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="does not exist") as err:
        read_image(tmp_path / "nope.nii.gz")
    assert "nope.nii.gz" in str(err.value)


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(tmp_path / "empty.nii.gz")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.nii.gz").write_text("these are my notes, not an image\n" * 10)
    with pytest.raises(ImageReadError, match="not an image") as err:
        read_image(tmp_path / "notes.nii.gz")
    assert "notes.nii.gz" in str(err.value)
    assert "itk::" not in str(err.value).lower()


def test_truncated_file(tmp_path):
    write_image(_small(), tmp_path / "whole.nii")
    data = (tmp_path / "whole.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: 352 + 40])
    with pytest.raises(ImageReadError, match="truncated") as err:
        read_image(tmp_path / "cut.nii")
    assert "cut.nii" in str(err.value)


def test_truncated_gzip(tmp_path):
    write_image(_small(), tmp_path / "whole.nii.gz")
    data = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.nii.gz")


def test_complex_pixels_are_unsupported(tmp_path):
    arr = (np.ones((3, 4, 5)) + 1j).astype(np.complex64)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "complex.mha"))
    with pytest.raises(UnsupportedImageError, match="complex"):
        read_image(tmp_path / "complex.mha")


def test_displacement_field_is_not_opened_as_an_image(tmp_path):
    field = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.float32), isVector=True)
    sitk.WriteImage(field, str(tmp_path / "field.nii.gz"))
    with pytest.raises(UnsupportedImageError, match="vector image"):
        read_image(tmp_path / "field.nii.gz")


def test_4d_image_asks_for_a_time_point(tmp_path):
    series = sitk.JoinSeries([_small(), _small() * 2, _small() * 3])
    sitk.WriteImage(series, str(tmp_path / "fmri.nii.gz"))
    with pytest.raises(MultipleTimePointsError, match="3 time points") as err:
        read_image(tmp_path / "fmri.nii.gz")
    assert err.value.n_time_points == 3
    vol = read_image(tmp_path / "fmri.nii.gz", time_point=2)
    assert vol.dimension == 3
    np.testing.assert_allclose(vol.array(), sitk.GetArrayFromImage(_small()) * 3)
    with pytest.raises(ImageReadError, match="time point 5"):
        read_image(tmp_path / "fmri.nii.gz", time_point=5)


def test_fixed_and_moving_of_different_dimension():
    with pytest.raises(IncompatibleImagesError, match="2D"):
        check_compatible(Volume(_small(3), path="fixed.nii"), Volume(_small(2), path="moving.png"))


def _metaimage_with_spacing(tmp_path, spacing: str):
    raw = np.zeros((2, 3, 4), np.uint8)
    (tmp_path / "s.raw").write_bytes(raw.tobytes())
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_UCHAR\n"
        f"ElementSpacing = {spacing}\nElementDataFile = s.raw\n"
    )
    (tmp_path / "s.mhd").write_text(header)
    return tmp_path / "s.mhd"


@pytest.mark.parametrize("spacing", ["0 1 1", "1 -2 1"])
def test_zero_or_negative_spacing(tmp_path, spacing):
    with pytest.raises(UnsupportedImageError, match="spacing") as err:
        read_image(_metaimage_with_spacing(tmp_path, spacing))
    assert "s.mhd" in str(err.value)


def test_truncated_metaimage(tmp_path):
    write_image(_small(), tmp_path / "whole.mha", compress=False)
    data = (tmp_path / "whole.mha").read_bytes()
    (tmp_path / "cut.mha").write_bytes(data[:-100])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.mha")


def _nifti_with_bad_sform(path, use_qform: bool) -> None:
    """A NIfTI whose sform has skewed (non-orthonormal) axes, as some converters write."""
    write_image(_small(), path.with_suffix(".tmp.nii"))
    data = bytearray(path.with_suffix(".tmp.nii").read_bytes())
    path.with_suffix(".tmp.nii").unlink()
    struct.pack_into("<h", data, 252, 1 if use_qform else 0)  # qform_code
    struct.pack_into("<h", data, 254, 1)  # sform_code
    # qform: identity rotation, offset (5, 6, 7) RAS
    struct.pack_into("<3f", data, 256, 0.0, 0.0, 0.0)
    struct.pack_into("<3f", data, 268, 5.0, 6.0, 7.0)
    struct.pack_into("<f", data, 76, 1.0)  # pixdim[0] = qfac
    srow = [[1.0, 0.3, 0.0, 5.0], [0.0, 1.0, 0.0, 6.0], [0.0, 0.0, 1.0, 7.0]]
    for r, row in enumerate(srow):
        struct.pack_into("<4f", data, 280 + 16 * r, *row)
    path.write_bytes(gzip.compress(bytes(data)))


def test_non_orthonormal_sform_falls_back_to_qform(tmp_path):
    path = tmp_path / "skewed.nii.gz"
    _nifti_with_bad_sform(path, use_qform=True)
    with pytest.warns(UserWarning, match="qform"):
        vol = read_image(path)
    assert vol.warnings and "qform" in vol.warnings[0]
    np.testing.assert_allclose(vol.origin, (-5.0, -6.0, 7.0), atol=1e-5)  # RAS → LPS
    d = vol.direction
    np.testing.assert_allclose(d @ d.T, np.eye(3), atol=1e-6)


def test_non_orthonormal_sform_without_qform_is_orthonormalised(tmp_path):
    path = tmp_path / "skewed_noq.nii.gz"
    _nifti_with_bad_sform(path, use_qform=False)
    with pytest.warns(UserWarning, match="orthonormal"):
        vol = read_image(path)
    d = vol.direction
    np.testing.assert_allclose(d @ d.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(vol.origin, (-5.0, -6.0, 7.0), atol=1e-5)


def test_unwritable_format_is_refused(tmp_path):
    with pytest.raises(ImageWriteError, match="not a format"):
        write_image(_small(), tmp_path / "out.xyz")
    with pytest.raises(ImageWriteError, match="2D images only"):
        write_image(_small(), tmp_path / "out.png")


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "keep.nii.gz"
    target.write_bytes(b"precious")
    with pytest.raises(ImageWriteError):
        write_image(_small(), tmp_path / "keep.png")  # 3D → png fails before touching anything
    assert target.read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".regviewer-tmp")]
