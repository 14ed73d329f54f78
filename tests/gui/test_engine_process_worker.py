"""The window's worker with the engine in its own process: progress, result, cancel, a crash as an error."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import RegistrationFailed
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams,
                                                 SamplingParams, Stage, TransformParams)
from regviewer.core.registration import remote
from regviewer.gui.worker import RegistrationJob, RegistrationWorker


def _blobs(shift=(0.0, 0.0)) -> sitk.Image:
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    img = np.exp(-((x - 50 - shift[0]) ** 2 + (y - 40 - shift[1]) ** 2) / 200.0)
    img += 0.6 * np.exp(-((x - 85 - shift[0]) ** 2 + (y - 60 - shift[1]) ** 2) / 80.0)
    return sitk.GetImageFromArray(img.astype(np.float32))


def _job(endless=False) -> RegistrationJob:
    optimizer = (OptimizerParams("gradient_descent_line_search", iterations=10000, convergence_tolerance=0.0)
                 if endless else OptimizerParams(iterations=100, learning_rate=2.0))
    stage = Stage(name="translation", transform=TransformParams(kind="translation"),
                  metric=MetricParams(kind="mean_squares"), optimizer=optimizer,
                  pyramid=PyramidParams((2, 1), (1.0, 0.0)), sampling=SamplingParams("none"))
    return RegistrationJob(_blobs(), _blobs((4.0, -3.0)), params=Pipeline(stages=(stage,)))


def test_a_run_in_the_engine_process_delivers_snapshots_and_a_result(qtbot):
    worker = RegistrationWorker(_job(), rate_hz=20)
    snaps = []
    worker.snapshot.connect(snaps.append)
    with qtbot.waitSignal(worker.finished, timeout=60000) as blocker:
        worker.start()
    result = blocker.args[0]
    assert not result.cancelled
    assert snaps and snaps[-1].final and snaps[-1].progress.transform is not None
    assert len([p for s in snaps for p in s.points]) == len(result.history)
    np.testing.assert_allclose(result.transform.TransformPoint((50.0, 40.0)), (54.0, 37.0), atol=0.2)


def test_cancel_reaches_the_engine_process(qtbot):
    worker = RegistrationWorker(_job(endless=True), rate_hz=20)
    with qtbot.waitSignal(worker.snapshot, timeout=60000):
        worker.start()
    t0 = time.perf_counter()
    worker.cancel()
    with qtbot.waitSignal(worker.finished, timeout=5000) as blocker:
        pass
    assert blocker.args[0].cancelled
    assert time.perf_counter() - t0 < 1.5  # within a second, plus the signal's trip to this thread


def test_a_killed_engine_process_becomes_the_failed_signal(qtbot, monkeypatch):
    procs = []
    real = remote.run_in_process

    def run(job, progress, cancel, **kw):
        return real(job, progress, cancel, on_start=procs.append, **kw)

    monkeypatch.setattr(remote, "run_in_process", run)
    worker = RegistrationWorker(_job(endless=True), rate_hz=20)
    with qtbot.waitSignal(worker.snapshot, timeout=60000):
        worker.start()
    os.kill(procs[0].pid, signal.SIGKILL)
    with qtbot.waitSignal(worker.failed, timeout=10000) as blocker:
        pass
    assert isinstance(blocker.args[0], RegistrationFailed)
    assert "engine process stopped unexpectedly" in str(blocker.args[0])
    assert not worker.is_running()
