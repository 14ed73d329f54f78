"""Shared state of one registration run: progress events, history, cancel, timing.

Kept apart from `engine.py` so stage runners (`engine_stages.py`, `demons.py`) can
import it without a cycle. Nothing here knows about threads or Qt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import SimpleITK as sitk


def level_label(level: int) -> str:
    """How a pyramid level is named everywhere (window, plot, report): L1 is the coarsest."""
    return f"L{int(level) + 1}"


def stage_label(stage: int, name: str | None = None) -> str:
    """A stage's name, or "stage N" counted from 1 as the window counts them."""
    return name or f"stage {int(stage) + 1}"


@dataclass(frozen=True)
class Progress:
    """One optimiser iteration, as seen by a progress callback.

    `transform` is an independent copy of the FULL current fixed -> moving transform
    (initial + finished stages + the stage being optimised); safe to keep or use
    from another thread.
    """

    stage: int
    stage_name: str
    level: int
    n_levels: int
    iteration: int
    metric: float
    transform: sitk.Transform
    elapsed: float


class CancelToken:
    """Thread-safe flag: `cancel()` from any thread; the engine stops within ~1 s and
    returns the transform reached so far with ``result.cancelled == True``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class HistoryEntry:
    stage: int
    stage_name: str
    level: int
    iteration: int
    metric: float
    elapsed: float


class RunState:
    """Progress plumbing for one `register()` call (one direction of a symmetric run)."""

    def __init__(self, progress: Callable[[Progress], None] | None, cancel: CancelToken | None,
                 start: float | None = None, stage_offset: int = 0) -> None:
        self.progress = progress
        self.cancel = cancel
        self.start = time.perf_counter() if start is None else start
        self.history: list[HistoryEntry] = []
        self.stop_reasons: list[str] = []
        self.stage = 0
        self.stage_offset = stage_offset
        self.stage_name = ""

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.cancelled

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def begin_stage(self, index: int, name: str) -> None:
        self.stage, self.stage_name = index + self.stage_offset, name

    def record(self, level: int, n_levels: int, iteration: int, metric: float,
               snapshot: Callable[[], sitk.Transform] | None) -> None:
        """Append to the history; call the progress callback (building the snapshot
        only then, so runs without a callback pay nothing for it)."""
        elapsed = self.elapsed()
        self.history.append(HistoryEntry(self.stage, self.stage_name, level, iteration, float(metric), elapsed))
        if self.progress is not None and snapshot is not None:
            self.progress(Progress(self.stage, self.stage_name, level, n_levels, iteration, float(metric),
                                   snapshot(), elapsed))
