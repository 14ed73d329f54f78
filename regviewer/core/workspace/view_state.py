"""What the viewer shows, as plain data, and how one slice of it is drawn.

`render_slice` is everything a slice view needs from the numerics: reslice the fixed
image and the moving image (under the fixed→moving transform) through one display
plane, window/level both and composite them. It resamples only that one plane, so a
view can redraw at interactive rates without ever touching the whole volume.
`ViewState` is the part of a session that restores what the user was looking at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.composite import OverlaySettings, composite, window_level
from regviewer.core.errors import ParameterError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import PlaneGeometry, reslice
from regviewer.core.imaging.window_presets import WINDOW_PRESETS, full_range_window, preset_window  # noqa: F401

LAYOUTS = ("1x3+3d", "single", "side_by_side")
ROLES = ("overlay", "fixed", "moving")

def adjust_window(window: float, level: float, dx_px: float, dy_px: float, scale: float) -> tuple[float, float]:
    """Mouse-drag window/level as in ITK-SNAP: right widens the window (less contrast), down
    raises the level (the image gets darker). `scale` is intensity units per screen pixel
    (e.g. the default window / 256)."""
    return max(window + dx_px * scale, 1e-6), level + dy_px * scale


def slice_pair(
    fixed: Volume,
    moving: Volume | None,
    plane: PlaneGeometry,
    depth: float,
    transform_fixed_to_moving: sitk.Transform | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw fixed and moving intensities on one plane (moving under the transform)."""
    f = reslice(fixed.sitk, plane, depth)
    m = None if moving is None else reslice(moving.sitk, plane, depth, transform_fixed_to_moving)
    return f, m


def render_slice(
    role: str,
    fixed_raw: np.ndarray | None,
    moving_raw: np.ndarray | None,
    fixed_wl: tuple[float, float],
    moving_wl: tuple[float, float],
    settings: OverlaySettings,
    pixel_spacing_mm: tuple[float, float],
    flicker_shows: str = "fixed",
) -> np.ndarray:
    """uint8 display image for a view of `role` ("overlay", "fixed", "moving"): grey
    (rows, cols) when no colour is needed, else RGB (rows, cols, 3) (`composite.to_rgb`
    makes either RGB)."""
    if role not in ROLES:
        raise ParameterError(f"Unknown view role '{role}'")
    f8 = None if fixed_raw is None else window_level(fixed_raw, *fixed_wl)
    m8 = None if moving_raw is None else window_level(moving_raw, *moving_wl)
    if role == "fixed" or (role == "overlay" and m8 is None):
        return f8 if f8 is not None else np.zeros((1, 1), np.uint8)
    if role == "moving" or f8 is None:
        return m8
    return composite(f8, m8, settings, pixel_spacing_mm, flicker_shows, grey_ok=True)


def preview_plane(plane: PlaneGeometry, factor: int) -> PlaneGeometry:
    """The same plane sampled `factor` times more coarsely, for a cheap preview while
    the user drags: coarse pixel (c, r) is centred on the block of full pixels
    [c·f, c·f + f) × [r·f, r·f + f), so `expand_preview` lines it up again."""
    if factor <= 1:
        return plane
    rows, cols = plane.shape
    su, sv = plane.spacing
    shift = (factor - 1) / 2.0
    origin = np.asarray(plane.origin) + shift * su * np.asarray(plane.u) + shift * sv * np.asarray(plane.v)
    return replace(plane, origin=tuple(float(x) for x in origin), spacing=(su * factor, sv * factor),
                   shape=(-(-rows // factor), -(-cols // factor)))


def expand_preview(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Blow a `preview_plane` slice back up to the full plane's (rows, cols) by repetition."""
    if factor <= 1:
        return coarse
    big = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    return big[: shape[0], : shape[1]]


@dataclass(frozen=True)
class ViewState:
    """What the user was looking at; round-trips to JSON for sessions."""

    layout: str = "1x3+3d"
    overlay: OverlaySettings = field(default_factory=OverlaySettings)
    fixed_window: tuple[float, float] | None = None  # (window, level); None = automatic
    moving_window: tuple[float, float] | None = None
    cursor: tuple[float, ...] | None = None  # the linked crosshair, fixed physical LPS mm
    zoom: float = 1.0
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ParameterError(f"Unknown layout '{self.layout}'; choose one of {', '.join(LAYOUTS)}")

    def to_json(self) -> dict:
        data = asdict(self)
        data["overlay"] = self.overlay.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "ViewState":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if isinstance(known.get("overlay"), dict):
            known["overlay"] = OverlaySettings.from_json(known["overlay"])
        for key in ("fixed_window", "moving_window", "cursor"):
            if known.get(key) is not None:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)
