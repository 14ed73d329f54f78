"""The histogram of Jacobian determinants that the QA panel and the report both draw, so
the window and the filed report show the same bars."""

from __future__ import annotations

import numpy as np


def jacobian_histogram(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(bin centres, counts, bin width) of the finite determinants. The range always holds
    0.9–1.1 (no change) and is clipped to the 0.01–99.99 % percentiles beyond that, so a few
    extreme voxels do not squeeze the bulk into one bar; values outside land in the end bins."""
    v = np.asarray(values, dtype=np.float32).ravel()
    if not np.isfinite(v).all():
        v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(0), np.zeros(0), 1.0
    lo, hi = float(np.percentile(v, 0.01)), float(np.percentile(v, 99.99))
    lo, hi = min(lo, float(v.min()), 0.9), max(hi, 1.1)
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return (edges[:-1] + edges[1:]) / 2.0, counts.astype(float), float(edges[1] - edges[0])
