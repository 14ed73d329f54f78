"""Keep a pyramid level's best position when its optimiser wanders off from it.

ITK returns where its optimiser stopped, not the best position it passed. A regular-step run
on a full-resolution photograph under `photo-2d` went from correlation -0.9999 to -0.26 and
stayed there for 300 iterations; the stage was then undone as a whole and the result was 17 px
off, though the level before had it right. `BestPosition` follows one ImageRegistrationMethod
run: the best (lowest) metric and the position it belongs to, whether the run has drifted from
it, and when it has gone so far for so long that it should stop. Within one level the metric is
comparable from iteration to iteration (the same sample points), so "best" means best for the
level's own objective. It looks only at metric values and positions: a run repeats bit for bit.
"""

from __future__ import annotations

import math

# Optimisers whose iteration event pairs the metric of the position before the step with the
# position after it (they evaluate, step, then report).
LAGGING_OPTIMIZERS = ("regular_step", "gradient_descent_line_search", "conjugate_gradient_line_search")
# A run that ends this much worse than its best (relative to the metric's size) keeps its best
# position. Ordinary runs end within about 1e-5 of their best, and keep their end.
DRIFT_TOLERANCE = 0.01
# A run this far gone (half the metric's size) for this many iterations in a row stops there (the
# photograph: 54 iterations, not 300). Only that far: a rigid run on a low-contrast photograph
# wandered 30 % below its best for over 50 iterations at its coarsest level, then found a far
# better optimum.
DRIFT_STOP = 0.5
DRIFT_ITERATIONS = 50
# ITK reports its largest value when no sample point overlaps the moving image: not a metric.
_NO_OVERLAP = 1e30


class BestPosition:
    """Fed every iteration's metric and optimiser position (`start`: the position before the first
    step, for an optimiser whose reported metric lags its position by one step)."""

    def __init__(self, start: tuple[float, ...] | None, lags: bool) -> None:
        self.lags = lags
        self._before = start
        self.best: tuple[int, tuple[float, ...]] | None = None  # (level, position)
        self.best_metric = math.inf
        self._scale = 0.0
        self._worse = 0

    def new_level(self) -> None:
        """A further level inside the same run: its metric is a different function."""
        self.best, self.best_metric, self._scale, self._worse = None, math.inf, 0.0, 0

    def update(self, level: int, metric: float, position: tuple[float, ...]) -> bool:
        """Record one iteration; True when the run has been far worse than its best for too long."""
        measured = self._before if self.lags else position
        self._before = position
        if math.isfinite(metric) and abs(metric) < _NO_OVERLAP:
            if measured is not None and metric < self.best_metric:
                self.best_metric, self.best = metric, (level, measured)
            self._scale = max(self._scale, abs(metric))
        self._worse = self._worse + 1 if self.worse_than_best(metric, DRIFT_STOP) else 0
        return self._worse >= DRIFT_ITERATIONS

    def worse_than_best(self, metric: float, tolerance: float = DRIFT_TOLERANCE) -> bool:
        """Worse than the best by more than `tolerance` of the metric's own size (the largest
        magnitude seen: a mean-squares run converging towards 0 is not judged against 0)."""
        return self.best is not None and metric > self.best_metric + tolerance * self._scale


__all__ = ["BestPosition", "DRIFT_ITERATIONS", "DRIFT_STOP", "DRIFT_TOLERANCE", "LAGGING_OPTIMIZERS"]
