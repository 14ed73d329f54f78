"""Slide-scale sections: pyramidal (OME-)TIFF read by region, aligned output written by tile.

A whole-slide image of 20 000 x 20 000 px is 400 MB in 8 bits and several GB once it
becomes float; it must never be loaded whole. Registration runs on a pyramid level of
about 2 000 px (`read_level_for`), whose spacing is scaled so physical coordinates stay
those of the full-resolution page: a transform found there applies at full resolution
unchanged. The aligned output is then written tile by tile (`write_aligned_ome_tiff`):
each output tile's corners are mapped into the section, only the source tiles under
that box are decoded (`read_region`), and the tile is resampled and handed to tifffile,
so peak memory is a few tiles whatever the slide size.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, ImageWriteError

TILE = 512
TILE_CACHE = 64


class SlideSource:
    """A tiled, pyramidal single-channel (or RGB, read as luminance) TIFF page and its levels.

    Pixel (0, 0) of level 0 is at the origin; level l has spacing spacing0 * (W0 / Wl) and
    its pixel centres sit where the full-resolution pixels they average are centred."""

    def __init__(self, path: Path, shapes: list[tuple[int, int]], rgb: bool, dtype=np.uint8) -> None:
        self.path = path
        self.shapes = shapes  # (height, width) per level, level 0 first
        self.rgb = rgb
        self.dtype = np.dtype(dtype)  # of the stored samples (the aligned output keeps 16 bits)
        self.spacing0 = (1.0, 1.0)
        # Neighbouring output tiles need the same source tiles: keep the last few decoded
        # (native dtype; 64 tiles of 512 x 512 x 8 bit = 16 MB at most).
        self._tiles: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_tiles"] = OrderedDict()
        return state

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.shapes[0]
        return w, h

    def set_spacing(self, sx: float, sy: float) -> None:
        self.spacing0 = (float(sx), float(sy))

    def level_spacing(self, level: int) -> tuple[float, float]:
        h0, w0 = self.shapes[0]
        h, w = self.shapes[level]
        return self.spacing0[0] * w0 / w, self.spacing0[1] * h0 / h

    def level_for(self, max_side: int) -> int:
        """The finest level whose larger side is at most `max_side` (the coarsest if none is)."""
        for level, (h, w) in enumerate(self.shapes):
            if max(h, w) <= max_side:
                return level
        return len(self.shapes) - 1

    def read_level_for(self, max_side: int) -> sitk.Image:
        """The whole of a reduced level as a float32 image in the full-resolution frame."""
        level = self.level_for(max_side)
        h, w = self.shapes[level]
        img = sitk.GetImageFromArray(self.read_region(level, 0, 0, w, h))
        img.SetSpacing(self.level_spacing(level))
        img.SetOrigin(self.level_origin(level))
        return img

    def level_origin(self, level: int, x0: int = 0, y0: int = 0) -> tuple[float, float]:
        """Physical centre of pixel (x0, y0) of `level`: a reduced pixel covers f full-
        resolution pixels, so its centre lies (f - 1) / 2 of them in, not at their first."""
        sx, sy = self.level_spacing(level)
        return ((x0 + 0.5) * sx - 0.5 * self.spacing0[0], (y0 + 0.5) * sy - 0.5 * self.spacing0[1])

    def read_region(self, level: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Pixels [y0:y1, x0:x1] of `level` as float32, decoding only the tiles under them."""
        import tifffile

        h, w = self.shapes[level]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        out = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), np.float32)
        if out.size == 0:
            return out
        with tifffile.TiffFile(self.path) as tif:
            page = tif.series[0].levels[level].pages[0]
            if not page.is_tiled:  # a strip-organised level: small by construction (checked in open_slide)
                arr = _luminance(page.asarray())
                return arr[y0:y1, x0:x1].astype(np.float32)
            th, tw = page.tilelength, page.tilewidth
            per_row = math.ceil(w / tw)
            fh = tif.filehandle
            for ty in range(y0 // th, (y1 - 1) // th + 1):
                for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                    index = ty * per_row + tx
                    tile = self._tiles.get((level, index))
                    if tile is None:
                        fh.seek(page.dataoffsets[index])
                        data = fh.read(page.databytecounts[index])
                        tile = np.asarray(page.decode(data, index, jpegtables=page.jpegtables)[0])[0]
                        self._tiles[(level, index)] = tile
                        if len(self._tiles) > TILE_CACHE:
                            self._tiles.popitem(last=False)
                    else:
                        self._tiles.move_to_end((level, index))
                    tile = _luminance(tile)
                    gy0, gx0 = ty * th, tx * tw
                    sy0, sx0 = max(y0, gy0), max(x0, gx0)
                    sy1, sx1 = min(y1, gy0 + th), min(x1, gx0 + tw)
                    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = tile[sy0 - gy0:sy1 - gy0, sx0 - gx0:sx1 - gx0]
        return out

    def read_physical(self, lo: np.ndarray, hi: np.ndarray, spacing: float) -> sitk.Image:
        """The box [lo, hi] (physical, full-resolution frame) from the coarsest level still
        finer than `spacing`, as a float32 image with its physical geometry."""
        level = 0
        for candidate in range(len(self.shapes)):
            if max(self.level_spacing(candidate)) <= spacing * 1.01:
                level = candidate
        sx, sy = self.level_spacing(level)
        ox, oy = self.level_origin(level)
        x0, y0 = int(math.floor((lo[0] - ox) / sx)) - 2, int(math.floor((lo[1] - oy) / sy)) - 2
        x1, y1 = int(math.ceil((hi[0] - ox) / sx)) + 3, int(math.ceil((hi[1] - oy) / sy)) + 3
        h, w = self.shapes[level]
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            return None
        img = sitk.GetImageFromArray(self.read_region(level, x0, y0, x1, y1))
        img.SetSpacing((sx, sy))
        img.SetOrigin(self.level_origin(level, x0, y0))
        return img


def _luminance(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return arr.reshape(arr.shape[-3:-1] if arr.ndim == 3 else arr.shape).astype(np.float32)


def open_slide(path: str | Path) -> SlideSource | None:
    """A `SlideSource` for a pyramidal TIFF whose full-resolution level is tiled; None for
    an ordinary TIFF (read whole, as any image)."""
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            levels = series.levels
            if len(levels) < 2 or not levels[0].pages[0].is_tiled:
                return None
            rgb = levels[0].pages[0].samplesperpixel in (3, 4)
            shapes = [tuple(int(v) for v in lv.pages[0].shape[:2]) for lv in levels]
            dtype = np.dtype(levels[0].pages[0].dtype)
    except Exception as exc:  # noqa: BLE001 -- tifffile raises many types for a damaged file
        raise ImageReadError(p, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    return SlideSource(p, shapes, rgb, dtype)


def _full_grid(result) -> tuple[tuple[int, int], tuple[float, float], tuple[float, float]]:
    """(size, spacing, origin) of the output frame at the finest section resolution."""
    grid = result.output_grid
    finest = min((min(s.spacing0) for s in result.slides if s is not None), default=min(grid.GetSpacing()))
    extent = [n * sp for n, sp in zip(grid.GetSize(), grid.GetSpacing())]
    size = tuple(max(1, int(round(e / finest))) for e in extent)
    # Same corner as the output grid, with full-resolution pixel centres.
    origin = tuple(o - 0.5 * sp + 0.5 * finest for o, sp in zip(grid.GetOrigin(), grid.GetSpacing()))
    return size, (finest, finest), origin


def aligned_tiles(result, section_index: int, size, spacing, origin, tile: int = TILE, dtype=np.uint8):
    """Yield the aligned section's tiles (row-major, each tile x tile, zero-padded), full resolution."""
    sec = result.sections[section_index]
    slide = result.slides[section_index] if section_index < len(result.slides) else None
    w, h = size
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            out = np.zeros((tile, tile), dtype)
            if sec.transform is not None:
                grid = sitk.Image(tile, tile, sitk.sitkFloat32)
                grid.SetSpacing(spacing)
                grid.SetOrigin((origin[0] + tx * spacing[0], origin[1] + ty * spacing[1]))
                corners = np.array([grid.TransformContinuousIndexToPhysicalPoint((float(i), float(j)))
                                    for i in (-1, tile) for j in (-1, tile)])
                mapped = np.array([sec.transform.TransformPoint(c.tolist()) for c in corners])
                source = slide.read_physical(mapped.min(0), mapped.max(0), spacing[0]) if slide is not None else \
                    result.source_images[section_index] if hasattr(result, "source_images") else None
                if source is not None:
                    moved = sitk.Resample(source, grid, sec.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
                    info = np.iinfo(dtype)
                    out[:] = np.clip(np.rint(sitk.GetArrayViewFromImage(moved)), info.min, info.max)
            yield out


def output_dtype(result) -> np.dtype:
    """uint16 when any slide stores 16 bits or more per grey sample (fluorescence, many
    scanners), else uint8. Wider integers are clipped to 0..65535; RGB slides are aligned
    as luminance and written 8-bit."""
    wide = any(s is not None and not s.rgb and s.dtype.itemsize >= 2 for s in result.slides)
    return np.dtype(np.uint16 if wide else np.uint8)


def write_aligned_ome_tiff(result, path: str | Path, tile: int = TILE) -> None:
    """Write every aligned section as one plane of a tiled OME-TIFF at full resolution,
    tile by tile (memory: a few tiles, whatever the slide size); 16-bit when the slides
    are (`output_dtype`), else 8-bit."""
    import tifffile

    from regviewer.core.atomic import atomic_output

    size, spacing, origin = _full_grid(result)
    n = len(result.sections)
    dtype = output_dtype(result)

    def tiles():
        for i in range(n):
            yield from aligned_tiles(result, i, size, spacing, origin, tile, dtype)

    p = Path(path)
    try:
        with atomic_output(p) as tmp, tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tif:
            tif.write(tiles(), shape=(n, size[1], size[0]), dtype=dtype, tile=(tile, tile),
                      compression="zlib", photometric="minisblack",
                      metadata={"axes": "ZYX", "PhysicalSizeX": spacing[0], "PhysicalSizeY": spacing[1]})
    except OSError as exc:
        raise ImageWriteError(p, exc.strerror or str(exc)) from None


__all__ = ["SlideSource", "open_slide", "write_aligned_ome_tiff", "aligned_tiles", "output_dtype", "TILE"]
