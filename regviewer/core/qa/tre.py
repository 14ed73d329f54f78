"""One summary of point errors (target registration error, landmark residuals, displacement).

Every place that reports "mean / p95 / max" of distances in mm (landmark tables, the run
history, the QA report, the benchmarks) calls `summarise`, so the numbers agree and a
change of definition (NaN handling, the percentile) happens once. A leaf module: it
imports nothing of ours, so landmarks, workspace and qa can all use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class ErrorSummary:
    """Count, mean, median, 95th percentile, max and RMS of distances in mm (NaN when n == 0)."""

    n: int
    mean_mm: float
    median_mm: float
    p95_mm: float
    max_mm: float
    rms_mm: float

    def as_dict(self, *, none_for_nan: bool = False) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {"n": self.n, "mean_mm": self.mean_mm, "median_mm": self.median_mm,
                                              "p95_mm": self.p95_mm, "max_mm": self.max_mm, "rms_mm": self.rms_mm}
        if none_for_nan:
            out = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
        return out


def summarise(errors_mm: Iterable[float] | np.ndarray) -> ErrorSummary:
    """Summary of the finite values of `errors_mm` (non-finite ones are left out)."""
    # Our own float64 copy, ordered in place by the median and percentile below (a 1 mm
    # displacement map has millions of values: no further copies of it).
    e = np.array(list(errors_mm) if not isinstance(errors_mm, np.ndarray) else errors_mm, dtype=float).ravel()
    finite = np.isfinite(e)
    if not finite.all():
        e = e[finite]
    del finite
    if e.size == 0:
        nan = math.nan
        return ErrorSummary(0, nan, nan, nan, nan, nan)
    # Before reordering. The rms from a dot product: mean(e * e) held a second float64 copy
    # (+30 MB at the peak of a 1 mm QA evaluation); the two differ in the last bits only.
    mean, largest, rms = float(e.mean()), float(e.max()), math.sqrt(float(np.dot(e, e)) / e.size)
    median = float(np.median(e, overwrite_input=True))
    return ErrorSummary(int(e.size), mean, median, float(np.percentile(e, 95, overwrite_input=True)), largest, rms)


def point_errors(transform: sitk.Transform, fixed_points: Sequence[Sequence[float]] | np.ndarray,
                 expected_moving: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """|T(fixed_i) - expected_i| in mm for each point (T maps fixed -> moving)."""
    fixed = np.asarray(fixed_points, dtype=float)
    mapped = np.array([transform.TransformPoint([float(v) for v in p]) for p in fixed]).reshape(fixed.shape)
    return np.linalg.norm(mapped - np.asarray(expected_moving, dtype=float), axis=1)


__all__ = ["ErrorSummary", "summarise", "point_errors"]
