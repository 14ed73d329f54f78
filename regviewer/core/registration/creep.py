"""Notice a regular-step optimiser creeping, so its level can start again with a longer step.

ITK's regular-step gradient descent halves its step at every reversal of the gradient and
never lengthens it again. Early on a coarse level the metric is rough, a few reversals come
quickly, and the optimiser then walks the rest of the way to the optimum at a sixteenth or a
thirty-second of its step: on the 1 mm brain the coarsest level took 146 iterations for 8 mm,
0.05-0.1 mm each. `CreepWatch` sees that from the optimiser's positions (each step of this optimiser
has the length learning rate x relaxation, in parameter space) and says when the level
should be restarted from where it stands with a longer step. It looks only at positions
and metric values, so a run repeats bit for bit. ITK reports at each iteration the metric of
the position before its step, so in a plain stage the "improving" test lags one step (the
newest step is not judged); the landmark-guided loop passes the value after the step.
"""

from __future__ import annotations

import math

import numpy as np

from regviewer.core.registration.params import LINEAR_TRANSFORMS, Stage

# Creeping: this many times in a row, a step at most CREEP_RELAXATION of the learning rate the
# optimiser started with, as long as the step before it, at an acute angle to it, and the metric
# improving (so CREEP_STEPS + 1 equal small steps).
CREEP_STEPS = 6
CREEP_RELAXATION = 0.25
# The restarted level's learning rate is the creeping step times this, but never more than the
# learning rate the creeping run started with; a level restarts at most MAX_RESTARTS times.
REGROWTH = 8.0
MAX_RESTARTS = 8


class CreepWatch:
    """Fed every iteration's optimiser position and metric; `creeping` once the optimiser is."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = float(learning_rate)
        self.creeping = False
        self.step_length = 0.0
        self._previous: np.ndarray | None = None
        self._previous_step: np.ndarray | None = None
        self._previous_metric = math.inf
        self._run = 0

    def begin(self, position) -> None:
        """The position the optimiser starts from."""
        self._previous = np.asarray(position, dtype=float)

    def update(self, position, metric: float) -> bool:
        """True (and `creeping`) when the last CREEP_STEPS steps crept (see the module docstring)."""
        here = np.asarray(position, dtype=float)
        step = here - (self._previous if self._previous is not None else here)
        length = float(np.linalg.norm(step))
        small = 0.0 < length <= CREEP_RELAXATION * self.learning_rate * (1 + 1e-9)
        onward = self._previous_step is not None and float(np.dot(step, self._previous_step)) > 0.0
        same = self.step_length > 0.0 and abs(length - self.step_length) <= 1e-6 * self.step_length
        improving = metric < self._previous_metric
        self._run = self._run + 1 if small and onward and same and improving else 0
        self._previous, self._previous_step, self._previous_metric = here, step, float(metric)
        self.step_length = length
        self.creeping = self._run >= CREEP_STEPS
        return self.creeping

    def regrown_rate(self) -> float:
        """The learning rate to restart the level with."""
        return min(self.learning_rate, REGROWTH * self.step_length)


def regrows(stage: Stage) -> bool:
    """Whether a level of `stage` is restarted when its optimiser creeps."""
    o = stage.optimizer
    return o.regrow_step and o.kind == "regular_step" and stage.transform.kind in LINEAR_TRANSFORMS


__all__ = ["CreepWatch", "MAX_RESTARTS", "regrows"]
