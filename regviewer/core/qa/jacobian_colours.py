"""Colours for Jacobian determinant maps, one scale for the report and the window's overlay:
blue compression, red expansion, symmetric in log2 about det = 1, folding in yellow."""

from __future__ import annotations

import math

import numpy as np

FOLDING_RGB = (255, 230, 0)  # bright yellow: not on the blue-white-red scale
MIN_LOG2_RANGE = math.log2(1.05)  # never stretch the scale below +-5 % volume change


def jacobian_log2_range(jacobian: np.ndarray, inside: np.ndarray | None = None) -> float:
    """A colour-scale half-width in log2 units fitted to the data: the 99th percentile of
    |log2 det| (positive dets, inside the mask), between log2(1.05) and 2 (x0.25 .. x4)."""
    v = np.asarray(jacobian, dtype=np.float32)
    if inside is not None:
        v = v[inside]
    v = v[v > 0]  # a copy: the steps below work in it, in place (one volume of float32 in all)
    if v.size == 0:
        return 2.0
    np.log2(v, out=v)
    np.abs(v, out=v)
    r = float(np.percentile(v, 99, overwrite_input=True))
    return float(np.clip(r, MIN_LOG2_RANGE, 2.0))


def jacobian_rgba(values: np.ndarray, log2_range: float = 2.0, max_alpha: int = 255) -> np.ndarray:
    """Diverging colours centred at det = 1, symmetric in log2: blue = compression,
    red = expansion, reaching full colour at 2**-log2_range and 2**log2_range; folding
    (det <= 0) in opaque yellow. Alpha grows with the deviation from 1, so regions that
    keep their volume stay transparent over the image. Returns (..., 4) uint8."""
    v = np.asarray(values, dtype=np.float32)
    folding = ~(v > 0)
    t = np.clip(np.log2(np.where(folding, 1.0, v)) / max(float(log2_range), 1e-6), -1.0, 1.0)
    rgba = np.empty(v.shape + (4,), np.uint8)
    up = np.clip(t, 0, 1)
    down = np.clip(-t, 0, 1)
    rgba[..., 0] = np.rint(255 * (1 - down * 0.85))
    rgba[..., 1] = np.rint(255 * (1 - np.maximum(up, down) * 0.85))
    rgba[..., 2] = np.rint(255 * (1 - up * 0.85))
    rgba[..., 3] = np.rint(max_alpha * np.minimum(1.0, np.abs(t) * 1.25))
    rgba[folding, :3] = FOLDING_RGB
    rgba[folding, 3] = 255
    return rgba


__all__ = ["jacobian_rgba", "jacobian_log2_range", "FOLDING_RGB", "MIN_LOG2_RANGE"]
