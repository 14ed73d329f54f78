"""What ITK's NIfTI reader does silently, said out loud: a zero voxel size, NaN/Inf voxels,
a non-orthonormal sform (ITK prefers the qform, or refuses the file). Reads the raw
348-byte header and data, never the whole image at once."""

from __future__ import annotations

import gzip
import tempfile
import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, UnsupportedImageError, itk_message
from regviewer.core.imaging.image import non_finite_note


def _is_gz(p: Path) -> bool:
    return p.name.lower().endswith(".nii.gz")


def header_bytes(p: Path) -> bytes | None:
    try:
        opener = gzip.open if _is_gz(p) else open
        with opener(p, "rb") as fh:
            head = fh.read(348)
    except (OSError, EOFError):
        return None
    return head if len(head) == 348 else None


def check_spacing(p: Path) -> None:
    """ITK replaces a zero (or NaN) pixdim by 1 mm without a word; a scan with made-up
    voxel sizes must not be registered, so refuse it here."""
    head = header_bytes(p)
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


def non_finite_notes(p: Path) -> list[str]:
    """Count NaN/Inf voxels in a float NIfTI's raw data, read in chunks."""
    head = header_bytes(p)
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
        opener = gzip.open if _is_gz(p) else open
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


def sform_notes(p: Path) -> list[str]:
    """ITK silently prefers the qform when the sform is not orthonormal; say so."""
    head = header_bytes(p)
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


def read_non_orthonormal(p: Path) -> tuple[sitk.Image, list[str]]:
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
            raise ImageReadError(p, f"its orientation is invalid and could not be repaired ({itk_message(exc)})") from None
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


__all__ = ["header_bytes", "check_spacing", "non_finite_notes", "sform_notes", "read_non_orthonormal"]
