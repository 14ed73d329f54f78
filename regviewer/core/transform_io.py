"""Transform files: ITK/SimpleITK (.tfm/.txt/.h5) read and write.

Every transform in regviewer maps points of the *fixed* image to the *moving* image
(ITK's resampling direction). Saved ITK text files say so in a comment line.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from .atomic import atomic_output
from .errors import ImageWriteError, TransformReadError

DIRECTION_NOTE = "# regviewer: this transform maps FIXED image points to MOVING image points (LPS mm)"
TRANSFORM_EXTENSIONS = (".tfm", ".txt", ".h5", ".hdf5", ".mat")


def read_transform(path: str | Path) -> sitk.Transform:
    """Read an ITK transform file; the result maps fixed → moving points."""
    p = Path(path)
    if not p.exists():
        raise TransformReadError(p, "the file does not exist")
    if p.stat().st_size == 0:
        raise TransformReadError(p, "the file is empty")
    try:
        return sitk.ReadTransform(str(p))
    except RuntimeError:
        raise TransformReadError(p, "it is not a transform file regviewer can read") from None


def write_transform(transform: sitk.Transform, path: str | Path) -> None:
    """Write atomically; .tfm/.txt get a comment line stating the direction."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
        raise ImageWriteError(p, f"'{suffix}' is not a transform format; use .tfm, .txt or .h5")
    try:
        with atomic_output(p) as tmp:
            sitk.WriteTransform(transform, str(tmp))
            if suffix in (".tfm", ".txt"):
                text = tmp.read_text()
                lines = text.splitlines(keepends=True)
                tmp.write_text("".join(lines[:1] + [DIRECTION_NOTE + "\n"] + lines[1:]))
    except RuntimeError as exc:
        raise ImageWriteError(p, str(exc).strip().splitlines()[-1][:200]) from None
