"""Reading and writing images (and, via `transform_io`, transforms).

Every failure becomes a typed `RegviewerError` whose message names the file and
the problem in plain words; a raw ITK exception never reaches the user. Writes are
atomic (see `atomic.py`). Geometry (origin, spacing, direction) is kept exactly.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.atomic import atomic_output
from regviewer.core.errors import (
    ImageReadError,
    ImageWriteError,
    IncompatibleImagesError,
    MultipleTimePointsError,
    UnsupportedImageError,
)
from regviewer.core.imaging.dicom import DicomSeries, list_dicom_series, read_dicom_folder
from regviewer.core.imaging.image import Volume, without_non_finite

IMAGE_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".dcm")
_EIGHT_BIT_ONLY = (".jpg", ".jpeg")
_INTEGER_ONLY = (".png", ".jpg", ".jpeg")
_COLOUR_PIXEL_TYPES = {sitk.sitkVectorUInt8, sitk.sitkVectorUInt16}
_COMPLEX_PIXEL_TYPES = {sitk.sitkComplexFloat32, sitk.sitkComplexFloat64}


def suffix_of(path: str | Path) -> str:
    """The file's format suffix, lower case, with `.nii.gz` as one suffix."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


# --- reading ------------------------------------------------------------------------
def read_image(path: str | Path, time_point: int | None = None, series_uid: str | None = None) -> Volume:
    """Read an image file or a DICOM folder into a `Volume`.

    A 4D file needs `time_point`; a folder with several DICOM series needs
    `series_uid` (see `list_dicom_series`). Raises `ImageReadError` subclasses.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(p, "the file does not exist")
    if p.is_dir():
        image = read_dicom_folder(p, series_uid)
        return _finish(image, p, time_point, [])
    if p.stat().st_size == 0:
        raise ImageReadError(p, "the file is empty")
    _check_readable(p)
    image, notes = _read_file(p)
    return _finish(image, p, time_point, notes)


def _check_readable(p: Path) -> None:
    """Permission problems are not damage: say which it is."""
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise ImageReadError(p, "permission denied (the file exists but this user may not read it)") from None
    except OSError as exc:
        raise ImageReadError(p, f"it cannot be read ({exc.strerror or exc})") from None


def _read_file(p: Path) -> tuple[sitk.Image, list[str]]:
    from regviewer.core.imaging.header_checks import check_header_fields

    check_header_fields(p, suffix_of(p))  # before ITK: some damaged headers crash it
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        text = str(exc)
        if "orthonormal" in text.lower() and suffix_of(p) in (".nii", ".nii.gz"):
            return _read_nifti_non_orthonormal(p)
        if "spacing" in text.lower():
            raise UnsupportedImageError(p, "its voxel spacing is zero or negative") from None
        raise ImageReadError(p, "it is not an image in a format regviewer can read (or it is damaged)") from None
    if reader.GetPixelID() in _COMPLEX_PIXEL_TYPES:
        raise UnsupportedImageError(p, "it holds complex numbers; only real-valued images are supported")
    if any(s <= 0 for s in reader.GetSpacing()):
        raise UnsupportedImageError(p, f"its voxel spacing {tuple(reader.GetSpacing())} has a zero or negative value")
    if suffix_of(p) in (".nii", ".nii.gz"):
        _check_nifti_spacing(p)
    _check_not_truncated(p, reader)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        if "orthonormal" in str(exc).lower() and suffix_of(p) in (".nii", ".nii.gz"):
            return _read_nifti_non_orthonormal(p)
        raise ImageReadError(p, f"the file is truncated or damaged ({_first_line(exc)})") from None
    notes = _nifti_sform_notes(p) if suffix_of(p) in (".nii", ".nii.gz") else []
    if suffix_of(p) in (".nii", ".nii.gz") and reader.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        notes += _nifti_non_finite_notes(p)  # ITK's NIfTI reader turns NaN and Inf into 0 silently
    for note in notes:
        warnings.warn(f"{p}: {note}", stacklevel=3)
    return image, notes


def read_vector_field(p: Path) -> sitk.Image:
    """A displacement-field file as ITK reads it, after the same readability and size
    checks as an image (a short compressed field must not read as zero displacement)."""
    if p.stat().st_size == 0:
        raise ImageReadError(p, "the file is empty")
    _check_readable(p)
    from regviewer.core.imaging.header_checks import check_header_fields

    check_header_fields(p, suffix_of(p))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    try:
        reader.ReadImageInformation()
        _check_not_truncated(p, reader)
        return reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(p, f"it could not be read as an image ({_first_line(exc)})") from None


def _expected_data_bytes(reader: sitk.ImageFileReader) -> int:
    pixel_bytes = {
        sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
        sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8, sitk.sitkFloat32: 4, sitk.sitkFloat64: 8,
        sitk.sitkVectorUInt8: 1, sitk.sitkVectorUInt16: 2, sitk.sitkVectorFloat32: 4, sitk.sitkVectorFloat64: 8,
        sitk.sitkVectorInt16: 2, sitk.sitkVectorInt8: 1, sitk.sitkVectorInt32: 4, sitk.sitkVectorUInt32: 4,
    }.get(reader.GetPixelID(), 0)
    return int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents() * pixel_bytes


def _check_not_truncated(p: Path, reader: sitk.ImageFileReader) -> None:
    """ITK zero-fills a NIfTI or MetaImage whose data stops short, silently; a clinician
    must not register against a half-missing scan, so compare sizes first."""
    suffix = suffix_of(p)
    expected = _expected_data_bytes(reader)
    if not expected:
        return
    short = False
    if suffix in (".nii", ".nii.gz"):
        head = _nifti_header_bytes(p)
        if head is None:
            return
        endian = "<" if int(np.frombuffer(head[:4], "<i4")[0]) == 348 else ">"
        vox_offset = int(np.frombuffer(head[108:112], endian + "f4")[0])
        needed = vox_offset + expected
        if suffix == ".nii":
            short = p.stat().st_size < needed
        else:
            with p.open("rb") as fh:  # gzip's trailer holds the uncompressed size mod 2**32
                fh.seek(-4, os.SEEK_END)
                isize = int(np.frombuffer(fh.read(4), "<u4")[0])
            short = isize != needed % 2**32
    elif suffix in (".mha", ".mhd", ".nrrd", ".nhdr"):
        from regviewer.core.imaging.header_checks import check_data_size

        check_data_size(p, suffix, expected)
    if short:
        raise ImageReadError(p, "the file is truncated (it holds less image data than its header describes)")


def _nifti_header_bytes(p: Path) -> bytes | None:
    try:
        opener = gzip.open if suffix_of(p) == ".nii.gz" else open
        with opener(p, "rb") as fh:
            head = fh.read(348)
    except (OSError, EOFError):
        return None
    return head if len(head) == 348 else None


def _check_nifti_spacing(p: Path) -> None:
    """ITK replaces a zero (or NaN) pixdim by 1 mm without a word; a scan with made-up
    voxel sizes must not be registered, so refuse it here."""
    head = _nifti_header_bytes(p)
    if head is None:
        return
    endian = "<" if int(np.frombuffer(head[:4], "<i4")[0]) == 348 else ">"
    ndim = int(np.frombuffer(head[40:42], endian + "i2")[0])
    pixdim = np.frombuffer(head[76:108], endian + "f4").astype(float)
    spatial = pixdim[1 : 1 + min(max(ndim, 1), 3)]
    if np.any(~np.isfinite(spatial)) or np.any(spatial == 0):
        shown = ", ".join(f"{v:g}" for v in spatial)
        raise UnsupportedImageError(p, f"its voxel spacing (pixdim {shown}) has a zero or missing value; "
                                       "fix the header (e.g. with nibabel or fslchpixdim) rather than guess 1 mm")


def _nifti_non_finite_notes(p: Path) -> list[str]:
    """Count NaN/Inf voxels in a float NIfTI's raw data, read in chunks."""
    head = _nifti_header_bytes(p)
    if head is None:
        return []
    endian = "<" if int(np.frombuffer(head[:4], "<i4")[0]) == 348 else ">"
    datatype = int(np.frombuffer(head[70:72], endian + "i2")[0])
    dtype = {16: np.dtype(endian + "f4"), 64: np.dtype(endian + "f8")}.get(datatype)
    if dtype is None:
        return []
    vox_offset = int(np.frombuffer(head[108:112], endian + "f4")[0])
    count = 0
    try:
        opener = gzip.open if suffix_of(p) == ".nii.gz" else open
        with opener(p, "rb") as fh:
            fh.read(vox_offset)
            rest = b""
            while True:
                chunk = fh.read(2**24)
                if not chunk:
                    break
                chunk = rest + chunk
                usable = len(chunk) - len(chunk) % dtype.itemsize
                count += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype))))
                rest = chunk[usable:]
    except (OSError, EOFError, ValueError):
        return []
    return [non_finite_note(count)] if count else []


def non_finite_note(count: int) -> str:
    return (f"{count} voxel(s) are NaN or infinite; they are set to 0 and left out of the intensity range "
            "(registration treats them as background)")


def _nifti_sform_notes(p: Path) -> list[str]:
    """ITK silently prefers the qform when the sform is not orthonormal; say so."""
    head = _nifti_header_bytes(p)
    if head is None:
        return []
    endian = "<" if int(np.frombuffer(head[:4], "<i4")[0]) == 348 else ">"
    qform_code, sform_code = (int(v) for v in np.frombuffer(head[252:256], endian + "i2"))
    if sform_code <= 0 or qform_code <= 0:
        return []
    axes = np.frombuffer(head[280:328], endian + "f4").reshape(3, 4)[:, :3].astype(float)
    norms = np.linalg.norm(axes, axis=0)
    if np.any(norms == 0):
        return []
    unit = axes / norms
    if np.allclose(unit.T @ unit, np.eye(3), atol=1e-4):
        return []
    return ["its sform orientation is not orthonormal; the qform orientation was used instead"]


def _read_nifti_non_orthonormal(p: Path) -> tuple[sitk.Image, list[str]]:
    """ITK refuses a NIfTI whose sform is not orthonormal. Fall back to the qform when
    it is set (always orthonormal by construction), otherwise orthonormalise the sform
    (nearest rotation, by SVD). The caller gets a warning either way."""
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    header = bytearray(raw[:348])
    endian = "<" if int(np.frombuffer(header[:4], "<i4")[0]) == 348 else ">"
    qform_code = int(np.frombuffer(header[252:254], endian + "i2")[0])
    srow = np.frombuffer(bytes(header[280:328]), endian + "f4").reshape(3, 4).astype(float)
    patched = bytearray(raw)
    patched[254:256] = np.array([0], endian + "i2").tobytes()  # sform_code = 0
    if qform_code == 0:
        patched[252:254] = np.array([0], endian + "i2").tobytes()
    with tempfile.TemporaryDirectory(prefix="regviewer-nifti-") as tmp:
        tmp_file = Path(tmp) / "image.nii"
        tmp_file.write_bytes(bytes(patched))
        try:
            image = sitk.ReadImage(str(tmp_file))
        except RuntimeError as exc:
            raise ImageReadError(p, f"its orientation is invalid and could not be repaired ({_first_line(exc)})") from None
    if qform_code > 0:
        note = "its sform orientation is not orthonormal; the qform orientation was used instead"
    else:
        ras_to_lps = np.diag([-1.0, -1.0, 1.0])
        affine = ras_to_lps @ srow[:, :3]
        spacing = np.linalg.norm(affine, axis=0)
        left, _, right = np.linalg.svd(affine / spacing)
        direction = left @ right
        image.SetDirection(tuple(direction.ravel()))
        image.SetOrigin(tuple(ras_to_lps @ srow[:, 3]))
        image.SetSpacing(tuple(float(s) for s in spacing))
        note = "its sform orientation is not orthonormal; the nearest orthonormal orientation was used"
    warnings.warn(f"{p}: {note}", stacklevel=3)
    return image, [note]


def _finish(image: sitk.Image, p: Path, time_point: int | None, notes: list[str]) -> Volume:
    dim = image.GetDimension()
    if dim == 4:
        n_t = image.GetSize()[3]
        if n_t > 1 and time_point is None:
            raise MultipleTimePointsError(p, n_t)
        t = 0 if time_point is None else time_point
        if not 0 <= t < n_t:
            raise ImageReadError(p, f"time point {t} does not exist (the image has {n_t}: 0 to {n_t - 1})")
        size = list(image.GetSize())
        image = sitk.Extract(image, size[:3] + [0], [0, 0, 0, t])
    elif time_point not in (None, 0):
        raise ImageReadError(p, f"time point {time_point} was asked for, but the image is {dim}D")
    as_read = " x ".join(str(n) for n in image.GetSize())
    if image.GetDimension() == 3 and image.GetSize()[2] == 1:
        image = image[:, :, 0]  # a single slice (one DICOM file, a flat TIFF) is a 2D image
    if image.GetDimension() not in (2, 3):
        raise UnsupportedImageError(p, f"it has {image.GetDimension()} dimensions; only 2D and 3D images are supported")
    n_comp = image.GetNumberOfComponentsPerPixel()
    if n_comp > 1 and not (n_comp in (3, 4) and image.GetPixelID() in _COLOUR_PIXEL_TYPES):
        raise UnsupportedImageError(
            p,
            f"it is a {n_comp}-component vector image (e.g. a displacement field), not a grey or colour image; "
            "open it as a transform instead",
        )
    if any(s <= 0 for s in image.GetSpacing()):
        raise UnsupportedImageError(p, f"its voxel spacing {tuple(image.GetSpacing())} has a zero or negative value")
    if min(image.GetSize()) < 2:
        raise UnsupportedImageError(p, f"it is {as_read} voxels: an axis only one voxel long leaves no image to "
                                       "register (at least 2 voxels along each axis of a 2D or 3D image)")
    image, count = without_non_finite(image)
    if count and not any("NaN or infinite" in n for n in notes):
        note = non_finite_note(count)
        warnings.warn(f"{p}: {note}", stacklevel=3)
        notes = [*notes, note]
    return Volume(image, path=str(p), warnings=list(notes))



def _first_line(exc: Exception) -> str:
    """The informative part of an ITK exception, without the C++ file and line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith("description:"):
            return ln.split(":", 1)[1].strip()
    useful = [ln for ln in lines if not ln.startswith(("/", "Exception thrown", "sitk::ERROR"))]
    return (useful or lines or ["unknown error"])[-1][:200]


# --- writing ------------------------------------------------------------------------
def write_image(image: Volume | sitk.Image, path: str | Path, compress: bool = True) -> None:
    """Write an image atomically; the format follows the suffix.

    Formats that store only integers (PNG, JPEG) get a clamped cast to 8 or 16 bits,
    since a resampled photograph is float32 in memory.
    """
    img = image.sitk if isinstance(image, Volume) else image
    p = Path(path)
    suffix = suffix_of(p)
    if suffix not in IMAGE_EXTENSIONS or suffix == ".dcm":
        raise ImageWriteError(p, f"'{suffix or p.name}' is not a format regviewer can write; use one of "
                              ".nii.gz, .nii, .nrrd, .mha, .mhd, .tif, .png, .jpg")
    if suffix in (".png", ".jpg", ".jpeg") and img.GetDimension() != 2:
        raise ImageWriteError(p, f"{suffix} holds 2D images only; this image is {img.GetDimension()}D (use .nii.gz)")
    if suffix in _INTEGER_ONLY:
        img = _to_integer_pixels(img, eight_bit=suffix in _EIGHT_BIT_ONLY)
    try:
        with atomic_output(p) as tmp:
            sitk.WriteImage(img, str(tmp), compress and suffix not in (".jpg", ".jpeg", ".png"))
    except RuntimeError as exc:
        raise ImageWriteError(p, _first_line(exc)) from None
    except OSError as exc:
        raise ImageWriteError(p, exc.strerror or str(exc)) from None


def _to_integer_pixels(img: sitk.Image, eight_bit: bool) -> sitk.Image:
    vector = img.GetNumberOfComponentsPerPixel() > 1
    if img.GetPixelID() in (sitk.sitkUInt8, sitk.sitkVectorUInt8):
        return img
    if not eight_bit and img.GetPixelID() in (sitk.sitkUInt16, sitk.sitkVectorUInt16):
        return img
    arr = sitk.GetArrayViewFromImage(img)
    top = 255 if eight_bit or float(arr.max()) <= 255 else 65535
    dtype = np.uint8 if top == 255 else np.uint16
    out = sitk.GetImageFromArray(np.clip(np.rint(arr), 0, top).astype(dtype), isVector=vector)
    out.CopyInformation(img)
    return out


def check_compatible(fixed: Volume, moving: Volume) -> None:
    """Raise `IncompatibleImagesError` when two images cannot be registered together."""
    if fixed.dimension != moving.dimension:
        raise IncompatibleImagesError(
            f"The fixed image '{fixed.name}' is {fixed.dimension}D but the moving image '{moving.name}' is "
            f"{moving.dimension}D; both must be 2D or both 3D"
        )


# --- transforms (kept in their own module; re-exported here as the public API) ----------
def read_transform(path: str | Path) -> sitk.Transform:
    """Read a transform file (ITK, ANTs, elastix, displacement field) mapping fixed→moving."""
    from regviewer.core.transforms.io import read_transform as _read

    return _read(path)


def write_transform(transform: sitk.Transform, path: str | Path) -> None:
    """Write a fixed→moving transform atomically (ITK .tfm/.txt/.h5)."""
    from regviewer.core.transforms.io import write_transform as _write

    _write(transform, path)


def image_files_in(paths: Sequence[str | Path]) -> list[Path]:
    """Paths that look like images or folders (for drag-and-drop filtering)."""
    return [Path(q) for q in paths if Path(q).is_dir() or suffix_of(q) in IMAGE_EXTENSIONS]


__all__ = [
    "DicomSeries",
    "read_image",
    "write_image",
    "list_dicom_series",
    "read_transform",
    "write_transform",
    "check_compatible",
    "suffix_of",
    "IMAGE_EXTENSIONS",
]
