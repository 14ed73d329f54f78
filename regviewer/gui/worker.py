"""Runs the registration engine off the GUI thread and turns its callbacks into Qt signals.

This is the only module that knows about threads for the engine. The engine
(`regviewer.core.registration.engine.register`) runs in its own spawned process
(`core/registration/remote.py`, so drawing never competes with it for the GIL), driven
from a plain Python thread here; its `progress` callback, called on that thread for
every optimiser iteration, only appends the iteration to a list. At most `rate_hz` times a
second -- and only when the GUI has taken the previous one -- it packs the iterations
since the last delivery, the latest transform snapshot (an independent copy, FIXED →
MOVING) and whatever `prepare(progress)` precomputes (e.g. grid polylines, on a
second "preview" thread, so the engine never waits for it) into a `LiveSnapshot`
and posts it to the GUI thread. So a slow GUI
never builds a queue, the plot still sees every iteration, and no widget is touched
from the worker. Cancel only sets the engine's token: the GUI never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PyQt6 import QtCore

from regviewer.core.errors import RegistrationFailed, RegviewerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IterationPoint:
    """One optimiser iteration, as the metric plot needs it."""

    stage: int
    stage_name: str
    level: int
    n_levels: int
    iteration: int
    metric: float
    elapsed: float


@dataclass(frozen=True)
class LiveSnapshot:
    """What the GUI gets at ≤ rate_hz: the latest progress and every iteration since the last one."""

    sequence: int
    progress: Any  # regviewer.core.registration.engine.Progress (its .transform is a copy, fixed → moving)
    points: tuple[IterationPoint, ...]
    extras: dict = field(default_factory=dict)  # from `prepare`, computed on the worker thread
    final: bool = False


@dataclass(frozen=True)
class RegistrationJob:
    """The arguments of one `engine.register` call; images are Volumes, sitk images or paths."""

    fixed: Any
    moving: Any
    params: Any = None  # regviewer.core.registration.params.Pipeline; overrides preset
    preset: str | None = None
    initial_transform: Any = None  # sitk.Transform, fixed → moving
    fixed_mask: Any = None
    moving_mask: Any = None
    seed: int = 0
    landmarks: Any = None
    separate_process: bool = True  # the engine in its own process (core/registration/remote.py)

    def run(self, progress: Callable[[Any], None], cancel: Any, snapshot_hz: float = 20.0) -> Any:
        """`snapshot_hz`: how often the engine process builds and sends a transform snapshot
        (each costs the engine a copy of its transform, and this process an unpickling)."""
        kwargs: dict[str, Any] = dict(params=self.params, initial_transform=self.initial_transform,
                                      fixed_mask=self.fixed_mask, moving_mask=self.moving_mask, seed=self.seed)
        if self.preset is not None or self.params is None:
            kwargs["preset"] = self.preset
        if self.landmarks is not None:
            kwargs["landmarks"] = self.landmarks
        if self.separate_process:
            from regviewer.core.registration.remote import run_in_process

            return run_in_process(dict(kwargs, fixed=self.fixed, moving=self.moving), progress, cancel,
                                  snapshot_hz=snapshot_hz)
        # imported here: a window whose engine runs in its own process need not import the engine at all
        from regviewer.core.registration.engine import register

        return register(self.fixed, self.moving, progress=progress, cancel=cancel, **kwargs)


def _new_cancel_token() -> Any:
    from regviewer.core.registration.run_state import CancelToken  # not via the engine: 30 ms of imports at Run

    return CancelToken()


class RegistrationWorker(QtCore.QObject):
    """One run of the engine in a background thread.

    Signals (always delivered on the GUI thread):
      snapshot(LiveSnapshot)  -- throttled live progress;
      finished(result)        -- the engine's RegistrationResult (also after Cancel: result.cancelled);
      failed(error)           -- a RegviewerError (unexpected errors are wrapped in RegistrationFailed).
    """

    snapshot = QtCore.pyqtSignal(object)
    finished = QtCore.pyqtSignal(object)
    failed = QtCore.pyqtSignal(object)
    _deliver = QtCore.pyqtSignal(object, object)  # (kind, payload), worker thread → GUI thread

    def __init__(
        self,
        job: RegistrationJob | Callable[[Callable[[Any], None], Any], Any],
        rate_hz: float = 15.0,
        prepare: Callable[[Any], dict] | None = None,
        cancel_token: Any = None,
        parent: QtCore.QObject | None = None,
        prepare_final: bool = True,
    ) -> None:
        """`prepare_final=False`: the last snapshot (the iterations not yet delivered, sent just
        before the end signal) carries no extras: a GUI that draws the result when the run ends
        need not wait for a preview of the same moment (it is on the way to the result)."""
        super().__init__(parent)
        if isinstance(job, RegistrationJob):  # snapshots no faster than this worker hands them on
            self._run_job = lambda progress, cancel: job.run(progress, cancel, snapshot_hz=rate_hz)
        else:
            self._run_job = job
        self.interval_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.prepare = prepare
        self.prepare_final = prepare_final
        self.cancel_token = cancel_token if cancel_token is not None else _new_cancel_token()
        self._lock = threading.Lock()
        self._pending: list[IterationPoint] = []
        self._last_progress: Any = None
        self._last_emit = 0.0
        self._in_flight = False
        self._sequence = 0
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._mail = threading.Event()  # wakes the preview thread
        self._mailbox: Any = None  # the progress to preview next (latest only)
        self._engine_done = False
        self._ended = False  # the GUI thread has received "finished" or "failed"
        self.started_at: float | None = None
        self.delivered = 0  # snapshots handed to the GUI (for the redraw-rate figure)
        self._deliver.connect(self._on_deliver, QtCore.Qt.ConnectionType.QueuedConnection)

    # --- GUI-thread API ------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a RegistrationWorker runs once; make a new one")
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name="regviewer-registration", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the engine to stop (it returns its best transform so far); never blocks."""
        self.cancel_token.cancel()

    def is_running(self) -> bool:
        # `_ended` as well: the end signal can reach the GUI before the thread sets `_done`.
        return self._thread is not None and not self._done.is_set() and not self._ended

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the engine thread ends (tests and application exit only)."""
        return self._done.wait(timeout)

    # --- worker threads ----------------------------------------------------------------
    def _main(self) -> None:
        preview = threading.Thread(target=self._preview_loop, name="regviewer-preview", daemon=True)
        preview.start()
        try:
            result = self._run_job(self._on_progress, self.cancel_token)
        except RegviewerError as exc:
            outcome: tuple[str, Any] = ("failed", exc)
        except Exception as exc:  # noqa: BLE001 -- anything else still reaches the user as words
            log.exception("registration failed unexpectedly")
            outcome = ("failed", RegistrationFailed(
                f"The registration stopped with an unexpected error: {type(exc).__name__}: {exc}"))
        else:
            outcome = ("finished", result)
        finally:
            self._engine_done = True
            self._mail.set()
            preview.join()
        try:
            self._flush_final()
            self._deliver.emit(*outcome)
        finally:
            self._done.set()

    def _on_progress(self, progress: Any) -> None:
        """Engine thread, every iteration: record, and at most rate_hz hand the latest to the preview thread."""
        point = IterationPoint(progress.stage, progress.stage_name, progress.level, progress.n_levels,
                               progress.iteration, float(progress.metric), float(progress.elapsed))
        now = time.perf_counter()
        with self._lock:
            self._pending.append(point)
            self._last_progress = progress
            if self._in_flight or now - self._last_emit < self.interval_s:
                return
            self._in_flight = True
            self._last_emit = now
            self._mailbox = progress
        self._mail.set()

    def _preview_loop(self) -> None:
        """Preview thread: runs `prepare` (grid polylines, TRE) so the engine never waits for it."""
        while True:
            # A timeout, because the engine's last wake-up can land between wait() and
            # clear() and be lost; without it the run's end would never be reported.
            self._mail.wait(0.1)
            self._mail.clear()
            with self._lock:
                progress, self._mailbox = self._mailbox, None
            if progress is None:
                if self._engine_done:
                    return
                continue
            extras = self._prepare(progress)
            with self._lock:
                points, self._pending = tuple(self._pending), []
                self._sequence += 1
                snap = LiveSnapshot(self._sequence, progress, points, extras)
            self._deliver.emit("snapshot", snap)

    def _prepare(self, progress: Any) -> dict:
        if self.prepare is None:
            return {}
        try:
            return self.prepare(progress)
        except Exception:  # noqa: BLE001 -- a failed preview must not stop the registration
            log.exception("live preview preparation failed")
            return {}

    def _flush_final(self) -> None:
        """Hand over the iterations not yet delivered, with the last transform, before the end signal."""
        with self._lock:
            progress = self._last_progress
            points, self._pending = tuple(self._pending), []
            self._sequence += 1
            seq = self._sequence
        if progress is None:
            return
        extras = self._prepare(progress) if self.prepare_final else {}
        self._deliver.emit("snapshot", LiveSnapshot(seq, progress, points, extras, final=True))

    # --- GUI thread ----------------------------------------------------------------------
    def _on_deliver(self, kind: str, payload: Any) -> None:
        if kind == "snapshot":
            try:
                self.delivered += 1
                self.snapshot.emit(payload)
            finally:
                with self._lock:
                    self._in_flight = False
        elif kind == "finished":
            self._ended = True
            self.finished.emit(payload)
        else:
            self._ended = True
            self.failed.emit(payload)
