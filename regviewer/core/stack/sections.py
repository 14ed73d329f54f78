"""Reading a stack of 2D sections, in the order they were cut.

A stack arrives as a folder of 2D images, a list of paths, one multi-page TIFF or one
3D image. Folders are sorted in *natural* order (``s2`` before ``s10``), since slide
scanners number files without leading zeros. A section that cannot be read keeps its
place (its z position matters) with `error` set, so the rest of the stack goes on.

Geometry: each section is a 2D float32 image in its own physical frame. Images that
carry no geometry (PNG, JPEG, plain TIFF) are in pixel units (origin 0, spacing 1)
unless `spacing` is given. A pyramidal TIFF larger than `max_side` px is read at its
first pyramid level at most `max_side` px per side, with the spacing scaled so the
physical frame is still that of the full-resolution page (see `slide.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, RegviewerError
from regviewer.core.imaging.image import to_scalar_float32

_NO_GEOMETRY = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SECTION_SUFFIXES = (*_NO_GEOMETRY, ".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".dcm")


@dataclass
class Section:
    """One section: `image` is a 2D float32 scalar SimpleITK image (None when unreadable).

    `slide` is set for a pyramidal TIFF read at a reduced level: it knows how to read
    any region of the full-resolution page (output is written from it tile by tile).
    """

    name: str
    source: str
    image: sitk.Image | None = None
    error: str | None = None
    slide: object | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.image is not None


def natural_key(name: str) -> list:
    """Sort key treating digit runs as numbers: 's2' < 's10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def list_section_files(folder: str | Path) -> list[Path]:
    """Image files in `folder`, natural order; hidden files and non-images are skipped."""
    p = Path(folder)
    files = [f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and _suffix(f) in _SECTION_SUFFIXES]
    if not files:
        raise ImageReadError(p, "the folder holds no section images (.png .jpg .tif .nii.gz .nrrd .mha ...)")
    return sorted(files, key=lambda f: natural_key(f.name))


def section_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_sections(source, spacing: Sequence[float] | None = None, max_side: int = 2048) -> list[Section]:
    """The sections of `source` in cutting order (see the module docstring).

    source: a folder, a list of paths, a multi-page TIFF path, a 3D image path, or a 3D
    SimpleITK image. spacing: (x, y) in mm (a third value, the section thickness, is
    ignored here) given to sections without geometry. Raises `ImageReadError` when the
    source itself is unusable (missing folder, no images); a bad section only sets its
    `error`.
    """
    if isinstance(source, sitk.Image):
        return _planes_of(source, "volume", spacing)
    if isinstance(source, (list, tuple)):
        return [_read_one(Path(p), spacing, max_side) for p in source]
    p = Path(source)
    if p.is_dir():
        return [_read_one(f, spacing, max_side) for f in list_section_files(p)]
    if not p.exists():
        raise ImageReadError(p, "no such file or folder")
    if _suffix(p) in (".tif", ".tiff"):
        pages = _tiff_pages(p)
        if pages is not None:
            return pages if spacing is None else [_with_spacing(s, spacing) for s in pages]
    from regviewer.core.imaging.io import read_image

    vol = read_image(p)
    if vol.dimension == 3:
        return _planes_of(vol.scalar(), section_name(p), spacing)
    raise ImageReadError(p, "it is a single 2D image; give a folder, a list of sections, a multi-page TIFF or a 3D image")


def _planes_of(image: sitk.Image, name: str, spacing) -> list[Section]:
    if image.GetDimension() != 3:
        raise ImageReadError(name, f"a stack given as one image must be 3D, this one is {image.GetDimension()}D")
    image = to_scalar_float32(image)
    out = []
    for z in range(image.GetSize()[2]):
        plane = image[:, :, z]
        out.append(_with_spacing(Section(f"{name}_z{z:04d}", f"{name}[z={z}]", plane), spacing))
    return out


def _with_spacing(section: Section, spacing) -> Section:
    if spacing is not None and section.image is not None:
        section.image.SetSpacing([float(spacing[0]), float(spacing[1])])
        section.image.SetOrigin((0.0, 0.0))
    return section


def _tiff_pages(path: Path) -> list[Section] | None:
    """A multi-page (not pyramidal) TIFF as sections, one per page; None for a single page."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.levels) > 1 or series.ndim == 2 or (series.ndim == 3 and series.shape[-1] in (3, 4)):
                return None
            data = series.asarray()
    except Exception as exc:  # noqa: BLE001 -- tifffile raises many types for a damaged file
        raise ImageReadError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    stem = section_name(path)
    if data.ndim == 4 and data.shape[-1] in (3, 4):
        data = data[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = []
    for i, page in enumerate(data.reshape(-1, *data.shape[-2:])):
        out.append(Section(f"{stem}_p{i:04d}", f"{path}[page {i}]", sitk.GetImageFromArray(page.astype(np.float32))))
    return out


def _read_one(path: Path, spacing, max_side: int) -> Section:
    """One section file; never raises for a bad file (the error is kept on the Section)."""
    name = section_name(path)
    try:
        if not path.is_file():
            raise ImageReadError(path, "no such file")
        if _suffix(path) in (".tif", ".tiff"):
            from regviewer.core.stack.slide import open_slide

            slide = open_slide(path)
            if slide is not None and max(slide.size) > max_side:
                if spacing is not None:
                    slide.set_spacing(spacing[0], spacing[1])
                return Section(name, str(path), slide.read_level_for(max_side), slide=slide)
        from regviewer.core.imaging.io import read_image

        vol = read_image(path)
        if vol.dimension != 2:
            raise ImageReadError(path, f"a section must be a 2D image; this one is {vol.dimension}D {vol.size}")
        image = sitk.Image(vol.scalar())
        arr = sitk.GetArrayViewFromImage(image)
        if arr.size == 0 or float(arr.max()) == float(arr.min()):
            raise ImageReadError(path, "the section is blank (every pixel has the same value)")
        sec = Section(name, str(path), image)
        if spacing is not None or _suffix(path) in _NO_GEOMETRY:
            _with_spacing(sec, spacing or (1.0, 1.0))
        # Direction cosines of a 2D photograph carry no meaning across sections: drop them.
        sec.image.SetDirection((1.0, 0.0, 0.0, 1.0))
        return sec
    except RegviewerError as exc:
        return Section(name, str(path), None, error=str(exc))
    except (OSError, RuntimeError, ValueError) as exc:
        return Section(name, str(path), None, error=f"Cannot open image '{path}': {exc}")


__all__ = ["Section", "read_sections", "natural_key", "list_section_files", "section_name"]
