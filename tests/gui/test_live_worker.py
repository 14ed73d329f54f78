"""The engine worker: throttled snapshots with every iteration, cancel without waiting, errors as signals."""

from __future__ import annotations

import threading
import time
import types

import pytest

from regviewer.core.errors import ParameterError, RegistrationFailed
from regviewer.gui.worker import RegistrationWorker


class _Token:
    def __init__(self):
        self._e = threading.Event()

    def cancel(self):
        self._e.set()

    @property
    def cancelled(self):
        return self._e.is_set()


def _fake_engine(n=400, delay=0.001, fail=None):
    def run(progress, cancel):
        t0 = time.perf_counter()
        done = 0
        for i in range(n):
            if cancel.cancelled:
                break
            if fail is not None and i == n // 2:
                raise fail
            progress(types.SimpleNamespace(stage=0, stage_name="affine", level=i // 100, n_levels=4, iteration=i % 100,
                                           metric=-i / n, transform=None, elapsed=time.perf_counter() - t0))
            done += 1
            time.sleep(delay)
        return types.SimpleNamespace(cancelled=cancel.cancelled, iterations=done)
    return run


def test_throttled_snapshots_carry_every_iteration(qtbot):
    prepared = []
    worker = RegistrationWorker(_fake_engine(), rate_hz=20, cancel_token=_Token(),
                                prepare=lambda p: prepared.append(threading.current_thread().name) or {"x": p.iteration})
    snaps = []
    worker.snapshot.connect(snaps.append)
    with qtbot.waitSignal(worker.finished, timeout=10000) as blocker:
        worker.start()
    result = blocker.args[0]
    assert not result.cancelled
    points = [p for s in snaps for p in s.points]
    assert len(points) == 400
    assert [p.level * 100 + p.iteration for p in points] == list(range(400))
    assert snaps[-1].final
    elapsed = points[-1].elapsed
    # throttled: far fewer deliveries than iterations, about rate_hz * time
    assert len(snaps) <= 20 * elapsed + 3
    assert "MainThread" not in set(prepared)  # never on the GUI thread
    assert all("x" in s.extras for s in snaps)


def test_cancel_returns_quickly_without_blocking(qtbot):
    worker = RegistrationWorker(_fake_engine(n=100000, delay=0.002), cancel_token=_Token())
    with qtbot.waitSignal(worker.snapshot, timeout=5000):
        worker.start()
    assert worker.is_running()
    t0 = time.perf_counter()
    worker.cancel()
    assert time.perf_counter() - t0 < 0.05  # cancel never waits
    with qtbot.waitSignal(worker.finished, timeout=1000) as blocker:
        pass
    assert blocker.args[0].cancelled
    assert worker.wait(1.0) and not worker.is_running()


@pytest.mark.parametrize("error, kind", [(ParameterError("stages[0].metric is 'x'"), ParameterError),
                                         (ZeroDivisionError("boom"), RegistrationFailed)])
def test_errors_arrive_as_signal(qtbot, error, kind):
    worker = RegistrationWorker(_fake_engine(n=20, fail=error), cancel_token=_Token())
    finished = []
    worker.finished.connect(finished.append)
    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.start()
    assert isinstance(blocker.args[0], kind)
    assert "stages[0]" in str(blocker.args[0]) or "ZeroDivisionError: boom" in str(blocker.args[0])
    assert not finished


def test_slow_gui_does_not_build_a_queue(qtbot):
    """The GUI handler takes 100 ms; the worker must not queue up snapshots behind it."""
    worker = RegistrationWorker(_fake_engine(n=300, delay=0.002), rate_hz=100, cancel_token=_Token())
    snaps = []

    def slow(s):
        snaps.append(s)
        time.sleep(0.1)

    worker.snapshot.connect(slow)
    with qtbot.waitSignal(worker.finished, timeout=20000):
        worker.start()
    assert sum(len(s.points) for s in snaps) == 300
    assert len(snaps) < 15


def test_slow_preview_never_holds_up_the_engine(qtbot):
    """`prepare` (grid polylines...) runs beside the engine: a 150 ms prepare must not slow it."""
    results = []
    for prepare in (None, lambda p: time.sleep(0.15) or {}):
        worker = RegistrationWorker(_fake_engine(n=200, delay=0.002), rate_hz=30, cancel_token=_Token(), prepare=prepare)
        snaps = []
        worker.snapshot.connect(snaps.append)
        with qtbot.waitSignal(worker.finished, timeout=20000):
            worker.start()
        results.append(max(p.elapsed for s in snaps for p in s.points))
        assert sum(len(s.points) for s in snaps) == 200
    plain, with_preview = results
    assert with_preview < plain * 1.5 + 0.1
