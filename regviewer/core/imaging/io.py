"""Reading and writing images (and, via `transform_io`, transforms).

Every failure becomes a typed `RegviewerError` whose message names the file and
the problem in plain words; a raw ITK exception never reaches the user. Writes are
atomic (see `atomic.py`). Geometry (origin, spacing, direction) is kept exactly.
"""

from __future__ import annotations

import os
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
    itk_message,
)
from regviewer.core.imaging import nifti_header
from regviewer.core.imaging.dicom import DicomSeries, list_dicom_series, read_dicom_folder
from regviewer.core.imaging.image import Volume, non_finite_note, without_non_finite

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
            return nifti_header.read_non_orthonormal(p)
        if "spacing" in text.lower():
            raise UnsupportedImageError(p, "its voxel spacing is zero or negative") from None
        raise ImageReadError(p, "it is not an image in a format regviewer can read (or it is damaged)") from None
    if reader.GetPixelID() in _COMPLEX_PIXEL_TYPES:
        raise UnsupportedImageError(p, "it holds complex numbers; only real-valued images are supported")
    if any(s <= 0 for s in reader.GetSpacing()):
        raise UnsupportedImageError(p, f"its voxel spacing {tuple(reader.GetSpacing())} has a zero or negative value")
    if suffix_of(p) in (".nii", ".nii.gz"):
        nifti_header.check_spacing(p)
    _check_not_truncated(p, reader)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        if "orthonormal" in str(exc).lower() and suffix_of(p) in (".nii", ".nii.gz"):
            return nifti_header.read_non_orthonormal(p)
        raise ImageReadError(p, f"the file is truncated or damaged ({itk_message(exc)})") from None
    notes = nifti_header.sform_notes(p) if suffix_of(p) in (".nii", ".nii.gz") else []
    if suffix_of(p) in (".nii", ".nii.gz") and reader.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        notes += nifti_header.non_finite_notes(p)  # ITK's NIfTI reader turns NaN and Inf into 0 silently
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
        raise ImageReadError(p, f"it could not be read as an image ({itk_message(exc)})") from None


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
        head = nifti_header.header_bytes(p)
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
        raise ImageWriteError(p, itk_message(exc)) from None
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
