"""Pictures for the QA report: slices of the fixed image rendered to PNG (with SimpleITK,
no Qt) and embedded as data URIs, plus the deformation grid as SVG over them.

Every slice is a display plane of the FIXED image (`slicing.planes_for`) at its
middle depth; the moving image is sampled there through the fixed → moving transform,
so "after" pictures show the moving image as the registration puts it.
"""

from __future__ import annotations

import base64
import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.composite import checkerboard
from regviewer.core.imaging.grid import warped_grid_lines
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import PlaneGeometry, planes_for, reslice

CHECKER_SQUARE_MM = 20.0
GRID_SPACING_MM = 8.0


@dataclass(frozen=True)
class SlicePicture:
    """One picture of a plane: a PNG data URI and the size it should be shown at."""

    title: str
    data_uri: str
    width_px: int
    height_px: int
    overlay_svg: str = ""  # SVG elements drawn over the picture in plane-pixel units
    cols: int = 0
    rows: int = 0

    def html(self) -> str:
        svg = ""
        if self.overlay_svg:
            svg = (
                f'<svg class="over" viewBox="0 0 {self.cols} {self.rows}" preserveAspectRatio="none" '
                f'width="{self.width_px}" height="{self.height_px}">{self.overlay_svg}</svg>'
            )
        return (
            f'<figure><div class="pic" style="width:{self.width_px}px;height:{self.height_px}px">'
            f'<img src="{self.data_uri}" width="{self.width_px}" height="{self.height_px}" alt="{html.escape(self.title)}">'
            f"{svg}</div><figcaption>{html.escape(self.title)}</figcaption></figure>"
        )


def png_data_uri(rgb_or_grey: np.ndarray) -> str:
    """A (rows, cols) or (rows, cols, 3|4) uint8 array as a base64 PNG data URI."""
    arr = np.ascontiguousarray(rgb_or_grey, dtype=np.uint8)
    img = sitk.GetImageFromArray(arr, isVector=arr.ndim == 3)
    with tempfile.TemporaryDirectory(prefix="regviewer-png-") as tmp:
        f = Path(tmp) / "slice.png"
        sitk.WriteImage(img, str(f))
        data = f.read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def middle_planes(fixed: Volume) -> list[tuple[str, PlaneGeometry, float]]:
    """(name, plane, depth) for each display plane, at the middle of the image."""
    out = []
    for name, plane in planes_for(fixed).items():
        lo, hi = plane.depth_range
        out.append((name, plane, (lo + hi) / 2.0))
    return out


def _display_size(plane: PlaneGeometry, target_width: int) -> tuple[int, int]:
    rows, cols = plane.shape
    width_mm, height_mm = cols * plane.spacing[0], rows * plane.spacing[1]
    scale = target_width / max(width_mm, height_mm)
    return max(1, int(round(width_mm * scale))), max(1, int(round(height_mm * scale)))


def _to_display(values: np.ndarray, volume: Volume) -> np.ndarray:
    from regviewer.core.imaging.composite import window_level

    window, level = volume.default_window_level()
    return window_level(values, window, level)


def _rgb(display: np.ndarray) -> np.ndarray:
    from regviewer.core.imaging.composite import to_rgb

    return to_rgb(display)


def checkerboard_pictures(
    fixed: Volume, moving: Volume, transform: sitk.Transform, width: int = 300
) -> list[tuple[SlicePicture, SlicePicture]]:
    """(before, after) checkerboards for every plane: before = identity, after = `transform`."""
    out = []
    for name, plane, depth in middle_planes(fixed):
        f = _rgb(_to_display(reslice(fixed.sitk, plane, depth), fixed))
        pair = []
        for label, tx in (("before", None), ("after", transform)):
            m = _rgb(_to_display(reslice(moving.sitk, plane, depth, transform=tx), moving))
            board = _checkerboard(f, m, plane)
            w, h = _display_size(plane, width)
            pair.append(SlicePicture(f"{name} — {label}", png_data_uri(board), w, h, cols=plane.shape[1], rows=plane.shape[0]))
        out.append((pair[0], pair[1]))
    return out


def _checkerboard(fixed_rgb: np.ndarray, moving_rgb: np.ndarray, plane: PlaneGeometry) -> np.ndarray:
    square = (
        max(1, int(round(CHECKER_SQUARE_MM / plane.spacing[1]))),
        max(1, int(round(CHECKER_SQUARE_MM / plane.spacing[0]))),
    )
    return checkerboard(fixed_rgb, moving_rgb, square)


def grid_pictures(fixed: Volume, transform: sitk.Transform, width: int = 300) -> list[SlicePicture]:
    """The fixed slice with the deformation grid (a regular fixed-plane grid moved by T)."""
    out = []
    for name, plane, depth in middle_planes(fixed):
        f = _rgb(_to_display(reslice(fixed.sitk, plane, depth), fixed))
        dimmed = (f.astype(np.float32) * 0.6).astype(np.uint8)
        w, h = _display_size(plane, width)
        lines = _grid_lines(transform, plane, depth)
        svg = "".join(
            '<polyline fill="none" stroke="#ffd400" stroke-width="1.2" vector-effect="non-scaling-stroke" points="'
            + " ".join(f"{c + 0.5:.2f},{r + 0.5:.2f}" for c, r in line)
            + '"/>'
            for line in lines
        )
        out.append(SlicePicture(f"{name} — deformation grid", png_data_uri(dimmed), w, h, svg, plane.shape[1], plane.shape[0]))
    return out


def _grid_lines(transform: sitk.Transform, plane: PlaneGeometry, depth: float) -> list[np.ndarray]:
    return warped_grid_lines(transform, plane, depth, spacing_mm=GRID_SPACING_MM)


def jacobian_pictures(
    fixed: Volume, jacobian: sitk.Image, log2_range: float = 2.0, width: int = 300, opacity: float = 0.9
) -> list[SlicePicture]:
    """The Jacobian determinant in colour (see `qa.jacobian_rgba`) over the fixed slice."""
    from regviewer.core.qa.jacobian_colours import jacobian_rgba

    out = []
    for name, plane, depth in middle_planes(fixed):
        f = _rgb(_to_display(reslice(fixed.sitk, plane, depth), fixed)).astype(np.float32)
        jac = reslice(jacobian, plane, depth, interpolator="nearest", default_value=1.0)
        rgba = jacobian_rgba(jac, log2_range).astype(np.float32)
        a = rgba[..., 3:] / 255.0 * opacity
        mixed = np.rint(f * (1 - a) + rgba[..., :3] * a).astype(np.uint8)
        w, h = _display_size(plane, width)
        out.append(SlicePicture(f"{name} — Jacobian determinant", png_data_uri(mixed), w, h, cols=plane.shape[1], rows=plane.shape[0]))
    return out
