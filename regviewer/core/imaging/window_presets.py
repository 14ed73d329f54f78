"""Window/level presets that fit the image: CT windows only for CT-like intensities.

A CT window (brain 80/40, bone 2000/500 …) is in Hounsfield units; offered for an MR or a
photograph it shows a black or white screen. So the presets offered depend on the image:
CT-like scalar images (air near -1000, bone above +300) get the CT windows; other scalar
images get percentile windows (robust to a few very bright voxels); colour images get
"auto" (the colours as stored) and "full range".
"""

from __future__ import annotations

import numpy as np

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.image import Volume

CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain (CT)": (80.0, 40.0),
    "soft tissue (CT)": (400.0, 40.0),
    "bone (CT)": (2000.0, 500.0),
    "lung (CT)": (1500.0, -600.0),
}
PERCENTILE_PRESETS: dict[str, tuple[float, float]] = {
    "percentiles 1–99": (1.0, 99.0),
    "percentiles 5–95": (5.0, 95.0),
    "percentiles 0.1–99.9": (0.1, 99.9),
}
# every name any image may be offered, in menu order ("auto": the image's own robust range)
WINDOW_PRESETS: tuple[str, ...] = ("auto", *CT_PRESETS, *PERCENTILE_PRESETS, "full range")


def _sample(volume: Volume, limit: int = 1_000_000) -> np.ndarray:
    flat = np.asarray(volume.array()).reshape(-1)
    return flat[:: max(1, flat.size // limit)]


def looks_like_ct(volume: Volume) -> bool:
    """Scalar intensities that read as Hounsfield units: air (≤ -500) and bone (≥ +300) present."""
    if volume.is_rgb:
        return False
    sample = _sample(volume)
    lo, hi = np.percentile(sample, [0.1, 99.9])
    return bool(lo <= -500.0 and hi >= 300.0)


def window_presets_for(volume: Volume | None) -> tuple[str, ...]:
    """The preset names that make sense for `volume` (all of them when there is none)."""
    if volume is None:
        return WINDOW_PRESETS
    if volume.is_rgb:
        return ("auto", "full range")
    if looks_like_ct(volume):
        return ("auto", *CT_PRESETS, "full range")
    return ("auto", *PERCENTILE_PRESETS, "full range")


def full_range_window(volume: Volume) -> tuple[float, float]:
    """(window, level) spanning the image's whole intensity range."""
    arr = volume.array()
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        hi = lo + 1.0
    return hi - lo, (hi + lo) / 2.0


def preset_window(volume: Volume, name: str) -> tuple[float, float]:
    """The (window, level) a named preset gives for `volume`; a preset that does not fit the
    image (a CT window on an MR) is refused with a message."""
    if name not in WINDOW_PRESETS:
        raise ParameterError(f"Unknown window preset '{name}'; choose one of {', '.join(WINDOW_PRESETS)}")
    if name not in window_presets_for(volume):
        kind = "colour" if volume.is_rgb else "not CT-like (no air near -1000 and bone above +300)"
        raise ParameterError(f"The '{name}' window does not apply to this image: it is {kind}; "
                             f"choose one of {', '.join(window_presets_for(volume))}")
    if name == "auto":
        return volume.default_window_level()
    if name == "full range":
        return full_range_window(volume)
    if name in CT_PRESETS:
        return CT_PRESETS[name]
    lo, hi = (float(v) for v in np.percentile(_sample(volume), PERCENTILE_PRESETS[name]))
    if hi <= lo:
        hi = lo + 1.0
    return hi - lo, (hi + lo) / 2.0


__all__ = ["CT_PRESETS", "PERCENTILE_PRESETS", "WINDOW_PRESETS", "full_range_window", "looks_like_ct",
           "preset_window", "window_presets_for"]
