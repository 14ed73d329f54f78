"""Hostile and unlucky image files (issue 16): NaN/Inf voxels, data shorter than the
header, zero spacing, permission problems, degenerate sizes, DICOM study folders."""

from __future__ import annotations

import builtins
import gzip
import struct
import time
import zlib

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, MultipleSeriesError, UnsupportedImageError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import list_dicom_series, read_image


def _blob(shape=(12, 14, 16)) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    c = np.array(shape) / 2
    return (100 * np.exp(-(((z - c[0]) / 3) ** 2 + ((y - c[1]) / 4) ** 2 + ((x - c[2]) / 5) ** 2))).astype(np.float32)


def _write(array: np.ndarray, path, compress=True):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing([2.0] * img.GetDimension())
    sitk.WriteImage(img, str(path), compress)
    return path


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_nan_and_inf_voxels_are_masked_and_reported(tmp_path, suffix):
    a = _blob()
    a[3, 3, 3], a[4, 4, 4], a[5, 5, 5] = np.nan, np.inf, -np.inf
    path = _write(a, tmp_path / f"nan{suffix}")
    with pytest.warns(UserWarning, match="3 voxel"):
        v = read_image(path)
    arr = v.array()
    assert np.isfinite(arr).all() and arr[3, 3, 3] == 0
    assert any("NaN or infinite" in w for w in v.warnings)


def test_nan_image_from_memory_never_reaches_the_engine():
    a = _blob()
    a[:, :, :3] = np.nan
    v = Volume(sitk.GetImageFromArray(a))
    assert np.isfinite(sitk.GetArrayViewFromImage(v.scalar())).all()


_NAN_REGISTER = """
import numpy as np, SimpleITK as sitk
from regviewer.core.imaging.image import Volume
from regviewer.core.registration.engine import register
z, y, x = np.mgrid[:12, :14, :16].astype(np.float32)
a = (100 * np.exp(-(((z - 6) / 3) ** 2 + ((y - 7) / 4) ** 2 + ((x - 8) / 5) ** 2))).astype(np.float32)
a[0, 0, :] = np.nan
a[1, 1, 1] = np.inf
r = register(Volume(sitk.GetImageFromArray(a)), Volume(sitk.GetImageFromArray(np.roll(a, 1, 2))), preset="affine-mi")
assert np.all(np.isfinite(r.transform.GetNthTransform(r.transform.GetNumberOfTransforms() - 1).GetParameters()))
print("finished")
"""


def test_register_with_nan_voxels_ends_in_seconds():
    """The centre-of-mass initialiser every 3D preset uses looped forever on NaN; run in a
    child process so a regression fails the test instead of hanging the suite."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _NAN_REGISTER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout


def _truncate(path, keep=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


@pytest.mark.parametrize("suffix, compress", [(".mha", True), (".nrrd", True), (".nrrd", False), (".mha", False)])
def test_data_shorter_than_header_is_refused(tmp_path, suffix, compress):
    path = _truncate(_write(_blob(), tmp_path / f"short{suffix}", compress))
    with pytest.raises(ImageReadError, match="truncated") as err:
        read_image(path)
    assert path.name in str(err.value) and "No such file" not in str(err.value)


def test_huge_claims_over_a_few_bytes_fail_fast(tmp_path):
    nrrd = tmp_path / "huge.nrrd"
    nrrd.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 1000 1000 1000\nspacings: 1 1 1\n"
                     b"encoding: raw\n\n" + b"x" * 29)
    mha = tmp_path / "huge.mha"
    mha.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 1000 1000 1000\nElementSpacing = 1 1 1\n"
                    b"ElementType = MET_FLOAT\nCompressedData = True\nElementDataFile = LOCAL\n"
                    + zlib.compress(b"\0" * 29))
    gz = tmp_path / "huge_gz.nrrd"
    gz.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 1000 1000 1000\nspacings: 1 1 1\n"
                   b"encoding: gzip\n\n" + gzip.compress(b"\0" * 29))
    for path in (nrrd, mha, gz):
        start = time.monotonic()
        with pytest.raises(ImageReadError) as err:
            read_image(path)
        assert time.monotonic() - start < 5, path
        assert path.name in str(err.value)


def test_valid_compressed_files_still_read(tmp_path):
    for suffix in (".mha", ".nrrd", ".nii.gz"):
        v = read_image(_write(_blob(), tmp_path / f"ok{suffix}"))
        assert v.size == (16, 14, 12)


def test_zero_spacing_in_nifti_is_refused(tmp_path):
    raw = bytearray(gzip.decompress(_write(_blob(), tmp_path / "a.nii.gz").read_bytes()))
    raw[80:84] = struct.pack("<f", 0.0)  # pixdim[1]
    path = tmp_path / "zero.nii"
    path.write_bytes(bytes(raw))
    with pytest.raises(UnsupportedImageError, match="spacing") as err:
        read_image(path)
    assert "zero.nii" in str(err.value)


def test_permission_denied_is_not_called_damaged(tmp_path, monkeypatch):
    path = _write(_blob(), tmp_path / "locked.nii.gz")
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(ImageReadError, match="permission denied") as err:
        read_image(path)
    assert "damaged" not in str(err.value)


def test_one_voxel_3d_image_is_not_called_2d(tmp_path):
    path = tmp_path / "one.nii.gz"
    sitk.WriteImage(sitk.Image([1, 1, 1], sitk.sitkFloat32), str(path))
    with pytest.raises(UnsupportedImageError, match="1 x 1 x 1") as err:
        read_image(path)
    assert "2D image" not in str(err.value)


def _dicom_series(folder, uid: str, description: str, n: int = 3):
    from regviewer.core.imaging.dicom import keep_locale

    with keep_locale():  # GDCM's writer leaves the process locale at "C"
        _write_dicom_series(folder, uid, description, n)


def _write_dicom_series(folder, uid: str, description: str, n: int):
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for i in range(n):
        img = sitk.GetImageFromArray((np.arange(64, dtype=np.int16).reshape(8, 8) + i))
        for tag, value in (("0020|000e", uid), ("0008|103e", description), ("0020|0013", str(i + 1)),
                           ("0020|0032", f"0\\0\\{i * 2}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0008|0060", "CT"), ("0020|000d", "1.2.3.4"), ("0008|0018", f"{uid}.{i + 1}")):
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{i:04d}.dcm"))
        writer.Execute(img)
        (folder / f"IM{i:04d}.dcm").rename(folder / f"IM{i:04d}")  # exports carry no extension


def test_dicom_study_folder_searches_sub_folders(tmp_path):
    study = tmp_path / "study"
    _dicom_series(study / "SE0001", "1.2.826.0.1.1", "T1 axial")
    _dicom_series(study / "SE0002" / "deeper", "1.2.826.0.1.2", "T2 axial")
    series = list_dicom_series(study)
    assert sorted(s.description for s in series) == ["T1 axial", "T2 axial"]
    with pytest.raises(MultipleSeriesError) as err:
        read_image(study)
    assert len(err.value.series) == 2
    import locale

    before = locale.setlocale(locale.LC_ALL)
    v = read_image(study, series_uid="1.2.826.0.1.2")
    assert v.dimension == 3 and v.size[2] == 3
    assert locale.setlocale(locale.LC_ALL) == before  # GDCM must not leave text files read as ASCII


def test_empty_folder_message_mentions_sub_folders(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ImageReadError, match="sub-folders"):
        read_image(tmp_path / "empty")


def test_dicomdir_records_point_at_series_folders(tmp_path):
    from regviewer.core.imaging.dicom import _dicomdir_folders

    study = tmp_path / "study"
    _dicom_series(study / "A" / "SE7", "1.2.826.0.1.7", "deep")
    file_id = b"A\\SE7\\IM0000"
    record = b"\x04\x00\x00\x15CS" + len(file_id).to_bytes(2, "little") + file_id
    (study / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"junk" * 10 + record + b"more")
    assert _dicomdir_folders(study) == [study / "A" / "SE7"]
    assert [s.description for s in list_dicom_series(study)] == ["deep"]


@pytest.mark.parametrize("header", [
    b"ObjectType = Image\nNDims = -1\nDimSize = 7 6 5\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
    b"0 = Image\nNDims = -1\nCompressedData = True\nDimSize = 7 6 5\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
    b"ObjectType = Image\nNDims = 3\nDimSize = 7 -6 5\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
    b"ObjectType = Image\nNDims = 3\nDimSize = 7 6\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
])
def test_metaimage_headers_that_crash_itk_are_refused_first(tmp_path, header):
    """Found by the fuzz test: ITK's MetaImage reader crashes the process (segmentation
    fault) on NDims = -1, which no exception handler can catch."""
    import subprocess
    import sys

    path = tmp_path / "bad.mha"
    path.write_bytes(header + zlib.compress(b"\0" * 840))
    code = ("import sys\nfrom regviewer.core.imaging.io import read_image\nfrom regviewer.core.errors import ImageReadError\n"
            "try:\n    read_image(sys.argv[1])\nexcept ImageReadError as e:\n    print('typed', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("typed"), (done.returncode, done.stderr[-500:])
    assert "bad.mha" in done.stdout


def test_nrrd_dimension_and_sizes_are_checked_first(tmp_path):
    for bad in (b"dimension: -1\nsizes: 7 6 5\n", b"dimension: 3\nsizes: 7 0 5\n", b"dimension: 3\nsizes: 7 6\n"):
        path = tmp_path / "bad.nrrd"
        path.write_bytes(b"NRRD0004\ntype: float\n" + bad + b"encoding: raw\n\n" + b"\0" * 840)
        with pytest.raises(ImageReadError, match="header says"):
            read_image(path)
