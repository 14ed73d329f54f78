"""Compositing two aligned images for display: pure functions over numpy arrays.

Every function takes the fixed and the moving image already sampled on the same
pixel grid (e.g. two `slicing.reslice` outputs of one plane, the moving one under the
current fixed→moving transform), so "same pixel" means "same fixed-space point".
Nothing here knows about Qt; the overlay controller in the GUI only picks a mode and
its parameters and shows the RGB uint8 result.

Display arrays are (rows, cols) grey or (rows, cols, 3) RGB. `window_level` turns
raw intensities into uint8 once, so the modes themselves work on display values
(what the eye compares), which also makes them fast enough to run on every redraw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np

from regviewer.core.errors import ParameterError

OVERLAY_MODES = ("blend", "checkerboard", "difference", "fusion", "flicker", "curtain")

# Magenta/green false colour (as MATLAB's imfuse): fixed drives red+blue, moving green,
# so aligned structures turn grey and misaligned ones show colour fringes.
_FUSION_FIXED = np.array([1.0, 0.0, 1.0], dtype=np.float32)
_FUSION_MOVING = np.array([0.0, 1.0, 0.0], dtype=np.float32)


# --- intensities → display -----------------------------------------------------------
def window_level(values: np.ndarray, window: float, level: float) -> np.ndarray:
    """Map intensities to uint8 with a linear ramp: level - window/2 → 0, level + window/2 → 255.

    RGB input ((rows, cols, 3|4) in 0..255) gets the same ramp on each channel, so window/level
    changes a photograph's contrast and brightness too; a colour image's default (255, 127.5)
    shows the colours as stored.
    """
    arr = np.asarray(values)
    if is_colour(arr):
        arr = arr[..., :3]
    window = max(float(window), 1e-12)
    lo = float(level) - window / 2.0
    scaled = (arr.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(255.0 / window)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def is_colour(arr: np.ndarray) -> bool:
    """True for a (rows, cols, 3|4) display array."""
    return arr.ndim == 3 and arr.shape[-1] in (3, 4)


def to_rgb(display: np.ndarray) -> np.ndarray:
    """Grey (rows, cols) uint8 → (rows, cols, 3) uint8; RGB passes through."""
    if is_colour(display):
        return np.ascontiguousarray(display[..., :3])
    return np.repeat(display[..., None], 3, axis=-1)


def to_grey(display: np.ndarray) -> np.ndarray:
    """RGB → luminance (BT.601), grey passes through; float32 0..255."""
    if is_colour(display):
        return display[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return display.astype(np.float32, copy=False)


def _check_pair(fixed: np.ndarray, moving: np.ndarray) -> None:
    if fixed.shape[:2] != moving.shape[:2]:
        raise ParameterError(
            f"The fixed and moving slices differ in size ({fixed.shape[:2]} vs {moving.shape[:2]}); "
            "resample the moving image onto the fixed grid first"
        )


# --- the overlay modes -------------------------------------------------------------------
def blend(fixed: np.ndarray, moving: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Alpha blend: (1 - alpha)·fixed + alpha·moving, as RGB uint8 (alpha 0 = fixed only)."""
    _check_pair(fixed, moving)
    a = float(np.clip(alpha, 0.0, 1.0))
    out = to_rgb(fixed).astype(np.float32) * (1.0 - a) + to_rgb(moving).astype(np.float32) * a
    return np.rint(out).astype(np.uint8)


def checkerboard_mask(shape: Sequence[int], square: int | Sequence[int]) -> np.ndarray:
    """Boolean mask over an n-D grid of `shape`: True where the MOVING image shows.

    `square` is the edge of a square in pixels (one int, or one per axis for
    anisotropic grids). Tile (0, 0, …) shows the fixed image. Works for 2D slices
    and 3D volumes alike.
    """
    shape = tuple(int(s) for s in shape)
    sizes = (square,) * len(shape) if np.isscalar(square) else tuple(square)
    if len(sizes) != len(shape) or any(int(s) < 1 for s in sizes):
        raise ParameterError(f"Checkerboard square size must be a positive number of pixels per axis, got {square!r}")
    parity = np.zeros(shape, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(shape, sizes)):
        idx = (np.arange(n) // int(s)).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        parity = parity + idx
    return (parity % 2).astype(bool)


def checkerboard(
    fixed: np.ndarray, moving: np.ndarray, square: int | Sequence[int] = 16, colour: bool | None = None
) -> np.ndarray:
    """Alternate squares of fixed and moving (same dtype as the inputs).

    Works on 2D slices, (rows, cols, 3) RGB slices and 3D volumes. `colour` says
    whether the last axis is colour; by default a trailing axis of 3 or 4 on a 3-D
    array is, so pass ``colour=False`` for a scalar volume with 3 or 4 slices.
    Edges that run straight across tile borders mean good alignment.
    """
    fixed = np.asarray(fixed)
    moving = np.asarray(moving)
    if colour is None:
        colour = is_colour(fixed)
    if fixed.shape != moving.shape:
        if is_colour(fixed) != is_colour(moving):
            fixed, moving = to_rgb(fixed), to_rgb(moving)
            colour = True
        _check_pair(fixed, moving)
    spatial = fixed.shape[:-1] if colour else fixed.shape
    mask = checkerboard_mask(spatial, square)
    if fixed.ndim > len(spatial):
        mask = mask[..., None]
    return np.where(mask, moving, fixed)


def difference(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Absolute difference of the two display images, grey uint8 (black = identical).

    Meaningful for same-modality pairs; across modalities it still shows edges that
    do not line up.
    """
    _check_pair(fixed, moving)
    diff = np.abs(to_grey(fixed) - to_grey(moving))
    return np.clip(np.rint(diff), 0, 255).astype(np.uint8)


def fusion(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Magenta/green false colour: fixed in magenta, moving in green; overlap is grey."""
    _check_pair(fixed, moving)
    f = to_grey(fixed)[..., None]
    m = to_grey(moving)[..., None]
    out = f * _FUSION_FIXED + m * _FUSION_MOVING
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def curtain(fixed: np.ndarray, moving: np.ndarray, position: float = 0.5, vertical: bool = True) -> np.ndarray:
    """Fixed on one side of a divider, moving on the other, as RGB uint8.

    `position` is the divider's place as a fraction (0..1) of the width (vertical
    divider: fixed left, moving right) or height (horizontal: fixed above).
    """
    _check_pair(fixed, moving)
    f, m = to_rgb(fixed), to_rgb(moving)
    out = f.copy()
    if vertical:
        cut = int(round(np.clip(position, 0.0, 1.0) * f.shape[1]))
        out[:, cut:] = m[:, cut:]
    else:
        cut = int(round(np.clip(position, 0.0, 1.0) * f.shape[0]))
        out[cut:, :] = m[cut:, :]
    return out


def flicker_frame(elapsed_s: float, rate_hz: float = 2.0) -> str:
    """Which image flicker shows after `elapsed_s` seconds: "fixed" or "moving".

    `rate_hz` is the number of switches per second (each image stays 1/rate s).
    """
    if rate_hz <= 0:
        raise ParameterError(f"Flicker rate must be positive, got {rate_hz} Hz")
    return "fixed" if int(np.floor(elapsed_s * rate_hz)) % 2 == 0 else "moving"


# --- one entry point for views --------------------------------------------------------------
@dataclass(frozen=True)
class OverlaySettings:
    """Everything an overlay needs besides the two images; round-trips to JSON (dict)."""

    mode: str = "blend"
    alpha: float = 0.5  # blend: weight of the moving image
    square_mm: float = 20.0  # checkerboard: square edge in millimetres (physical, so views agree)
    flicker_hz: float = 2.0  # flicker: switches per second
    curtain_position: float = 0.5  # curtain: divider as a fraction of the view width

    def __post_init__(self) -> None:
        if self.mode not in OVERLAY_MODES:
            raise ParameterError(f"Unknown overlay mode '{self.mode}'; choose one of {', '.join(OVERLAY_MODES)}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "OverlaySettings":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_(self, **changes) -> "OverlaySettings":
        return replace(self, **changes)


def composite(
    fixed: np.ndarray,
    moving: np.ndarray,
    settings: OverlaySettings,
    pixel_spacing_mm: Sequence[float] = (1.0, 1.0),
    flicker_shows: str = "fixed",
    grey_ok: bool = False,
) -> np.ndarray:
    """The uint8 image a view shows for `settings.mode`: RGB (rows, cols, 3), or with
    `grey_ok` a grey (rows, cols) image when both inputs are grey and the mode needs no
    colour (a third of the work and memory traffic on every redraw).

    `pixel_spacing_mm` (col, row) turns the checkerboard square from mm into pixels;
    `flicker_shows` is what `flicker_frame` said for the current time.
    """
    mode = settings.mode
    grey = grey_ok and not is_colour(fixed) and not is_colour(moving) and mode != "fusion"
    out_fixed = fixed if grey else to_rgb(fixed)
    out_moving = moving if grey else to_rgb(moving)
    if mode == "blend":
        if grey:
            _check_pair(fixed, moving)
            a = np.float32(np.clip(settings.alpha, 0.0, 1.0))
            mixed = fixed.astype(np.float32) * (np.float32(1.0) - a) + moving.astype(np.float32) * a
            return np.rint(mixed, out=mixed).astype(np.uint8)
        return blend(fixed, moving, settings.alpha)
    if mode == "checkerboard":
        sq = (max(1, int(round(settings.square_mm / pixel_spacing_mm[1]))), max(1, int(round(settings.square_mm / pixel_spacing_mm[0]))))
        return checkerboard(out_fixed, out_moving, sq, colour=not grey)
    if mode == "difference":
        diff = difference(fixed, moving)
        return diff if grey else to_rgb(diff)
    if mode == "fusion":
        return fusion(fixed, moving)
    if mode == "flicker":
        return out_moving if flicker_shows == "moving" else out_fixed
    if mode == "curtain":
        if grey:
            _check_pair(fixed, moving)
            out = fixed.copy()
            cut = int(round(np.clip(settings.curtain_position, 0.0, 1.0) * fixed.shape[1]))
            out[:, cut:] = moving[:, cut:]
            return out
        return curtain(fixed, moving, settings.curtain_position)
    raise ParameterError(f"Unknown overlay mode '{mode}'")
