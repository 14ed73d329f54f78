"""The engine in its own process: progress and result come back, cancel is quick, a crash is an error."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError, RegistrationFailed
from regviewer.core.imaging.image import Volume
from regviewer.core.registration.engine import CancelToken, register
from regviewer.core.registration.params import OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage
from regviewer.core.registration.remote import run_in_process


def _blobs(shift=(0.0, 0.0)) -> sitk.Image:
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    img = np.exp(-((x - 50 - shift[0]) ** 2 + (y - 40 - shift[1]) ** 2) / 200.0)
    img += 0.6 * np.exp(-((x - 85 - shift[0]) ** 2 + (y - 60 - shift[1]) ** 2) / 80.0)
    return sitk.GetImageFromArray(img.astype(np.float32))


def _pipeline(endless=False) -> Pipeline:
    """A quick translation stage; `endless`: 2 x 10000 iterations that never converge early."""
    optimizer = (OptimizerParams("gradient_descent_line_search", iterations=10000, convergence_tolerance=0.0)
                 if endless else OptimizerParams(iterations=100, learning_rate=2.0))
    stage = Stage(name="translation", initializer="none",
                  transform=Stage().transform.__class__(kind="translation"),
                  metric=Stage().metric.__class__(kind="mean_squares"), optimizer=optimizer,
                  pyramid=PyramidParams((2, 1), (1.0, 0.0)), sampling=SamplingParams("none"))
    return Pipeline(stages=(stage,))


def test_a_run_in_a_process_delivers_progress_and_the_same_result():
    fixed, moving = Volume(_blobs()), _blobs((4.0, -3.0))
    seen = []
    result = run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline()), seen.append, CancelToken())
    here = register(fixed, moving, params=_pipeline())
    assert not result.cancelled
    assert result.transform.GetParameters() == here.transform.GetParameters()  # same engine, same numbers
    assert [h.metric for h in result.history] == [h.metric for h in here.history]
    assert len(seen) == len(here.history) and seen[-1].transform is not None
    np.testing.assert_allclose(result.transform.TransformPoint((50.0, 40.0)), (54.0, 37.0), atol=0.2)
    assert result.resampled.GetSize() == fixed.sitk.GetSize()


def test_cancel_returns_within_a_second_with_the_best_so_far():
    fixed, moving = _blobs(), _blobs((4.0, -3.0))
    token = CancelToken()
    state = {"t": None}

    def progress(p):
        if state["t"] is None and p.iteration >= 2:
            state["t"] = time.perf_counter()
            token.cancel()

    result = run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline(endless=True)),
                            progress, token)
    assert result.cancelled
    assert time.perf_counter() - state["t"] < 1.0
    assert result.transform is not None


def test_a_killed_engine_process_becomes_an_error_not_a_hang():
    fixed, moving = _blobs(), _blobs((4.0, -3.0))
    procs = []

    def progress(p):
        if procs and procs[0].is_alive():
            os.kill(procs[0].pid, signal.SIGKILL)

    t0 = time.perf_counter()
    with pytest.raises(RegistrationFailed, match="engine process stopped unexpectedly"):
        run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline(endless=True)),
                       progress, CancelToken(), on_start=procs.append)
    assert time.perf_counter() - t0 < 30


def test_engine_errors_come_back_typed():
    bad = Pipeline(stages=(Stage(initializer="landmarks"),))  # landmarks asked for, none given
    with pytest.raises(ParameterError, match="landmarks"):
        run_in_process(dict(fixed=_blobs(), moving=_blobs(), params=bad), None, CancelToken())


def test_landmarks_go_over_to_the_engine_process():
    """A LandmarkSet's undo history is not picklable: its pairs go over and the set is rebuilt."""
    from regviewer.core.landmarks.model import LandmarkSet

    fixed, moving = _blobs(), _blobs((4.0, -3.0))
    landmarks = LandmarkSet(dimension=2)
    for x, y in ((50.0, 40.0), (85.0, 60.0), (20.0, 70.0)):
        landmarks.add_pair(fixed=(x, y), moving=(x + 4.0, y - 3.0))
    pipe = _pipeline()
    pipe = Pipeline(stages=(Stage(**{**pipe.stages[0].__dict__, "initializer": "landmarks"}),))
    result = run_in_process(dict(fixed=fixed, moving=moving, params=pipe, landmarks=landmarks), None, CancelToken())
    here = register(fixed, moving, params=pipe, landmarks=landmarks)
    assert result.transform.GetParameters() == here.transform.GetParameters()


def test_the_verifications_warnings_come_back_from_the_engine_process():
    """The window reads `result.warnings` ("probably wrong", "made the alignment worse"): they
    must cross the process boundary, or a result worse than its start looks like a success."""
    fixed = _blobs()
    turned = sitk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(fixed)[::-1, ::-1]))
    here = register(fixed, turned, params=_pipeline())
    assert here.warnings  # a translation cannot undo a half turn, and the check says so
    there = run_in_process(dict(fixed=Volume(fixed), moving=turned, params=_pipeline()), None, CancelToken())
    assert there.warnings == here.warnings


def test_a_prewarmed_spare_process_serves_the_next_run_and_a_dead_one_is_replaced():
    from regviewer.core.registration import remote

    fixed, moving = Volume(_blobs()), _blobs((4.0, -3.0))
    remote.prewarm()
    spare = remote._Spare.process
    remote.prewarm()  # one spare at a time
    assert remote._Spare.process is spare
    procs = []
    result = run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline()), None, CancelToken(),
                            on_start=procs.append)
    assert procs == [spare] and remote._Spare.process is None  # the spare ran it, and serves once
    assert result.transform.GetParameters() == register(fixed, moving, params=_pipeline()).transform.GetParameters()
    remote.prewarm()
    os.kill(remote._Spare.process.pid, signal.SIGKILL)  # a spare that died meanwhile
    remote._Spare.process.join(5)
    procs.clear()
    result = run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline()), None, CancelToken(),
                            on_start=procs.append)
    assert procs[0].pid != spare.pid and not result.cancelled
    remote.prewarm()
    remote.discard_spare()
    assert remote._Spare.process is None


def test_images_handed_to_the_spare_early_are_not_sent_again_at_run(monkeypatch):
    """`prewarm(images)` sends the pair to the spare as soon as it opens; the run then sends
    only the job (same result), and an image that is not the staged one still goes over."""
    from regviewer.core.registration import remote

    remote.discard_spare()
    fixed, moving = Volume(_blobs()), Volume(_blobs((4.0, -3.0)))
    remote.prewarm({"fixed": fixed, "moving": moving})
    assert remote.spare_ready(60.0)
    packed = []
    real_pack = remote._pack_image
    monkeypatch.setattr(remote, "_pack_image", lambda image, buffers: packed.append(image) or real_pack(image, buffers))
    result = run_in_process(dict(fixed=fixed, moving=moving, params=_pipeline()), None, CancelToken())
    assert not any(isinstance(p, (Volume, sitk.Image)) for p in packed)  # neither image went over again
    assert result.transform.GetParameters() == register(fixed, moving, params=_pipeline()).transform.GetParameters()

    other = Volume(_blobs((2.0, 1.0)))  # the moving image changed after the spare got the pair
    remote.prewarm({"fixed": fixed, "moving": moving})
    assert remote.spare_ready(60.0)
    packed.clear()
    result = run_in_process(dict(fixed=fixed, moving=other, params=_pipeline()), None, CancelToken())
    assert [p for p in packed if isinstance(p, (Volume, sitk.Image))] == [other]
    assert result.transform.GetParameters() == register(fixed, other, params=_pipeline()).transform.GetParameters()
    remote.discard_spare()


def test_opening_another_moving_image_sends_only_that_one_to_the_spare(monkeypatch):
    """The spare keeps what it was sent: a new moving image goes over alone (a 1 mm fixed image is
    35 MB), and the run then sends neither image."""
    from regviewer.core.registration import remote

    remote.discard_spare()
    fixed, moving, other = Volume(_blobs()), Volume(_blobs((4.0, -3.0))), Volume(_blobs((2.0, 1.0)))
    remote.prewarm({"fixed": fixed, "moving": moving})
    packed = []
    real_pack = remote._pack_image
    monkeypatch.setattr(remote, "_pack_image", lambda image, buffers: packed.append(image) or real_pack(image, buffers))
    remote.prewarm({"fixed": fixed, "moving": other})
    assert packed == [other]
    assert remote.spare_ready(60.0)
    packed.clear()
    result = run_in_process(dict(fixed=fixed, moving=other, params=_pipeline()), None, CancelToken())
    assert not any(isinstance(p, (Volume, sitk.Image)) for p in packed)
    assert result.transform.GetParameters() == register(fixed, other, params=_pipeline()).transform.GetParameters()
    remote.discard_spare()


def test_a_spare_is_never_said_to_hold_an_image_whose_transfer_failed():
    """Stagers queue behind each other; one whose send failed must not be counted by the later ones,
    even those made before it failed (they would name an image the engine never got)."""
    from regviewer.core.registration import remote

    class Pipe:
        def __init__(self, fail_first: bool) -> None:
            self.fail = fail_first

        def send(self, _msg) -> None:
            if self.fail:
                self.fail = False
                raise OSError("broken")

        def send_bytes(self, _data) -> None:
            pass

    pipe = Pipe(fail_first=True)
    fixed, moving, other = _blobs(), _blobs((4.0, -3.0)), _blobs((2.0, 1.0))
    first = remote._Stager(pipe, {"fixed": fixed}, None)
    second = remote._Stager(pipe, {"moving": moving}, first)
    third = remote._Stager(pipe, {"moving": other}, second)  # made while the first is still pending
    for stager in (first, second, third):
        stager.start()
    third.join(10)
    assert not first.ok and second.ok and third.ok
    assert third.holds(pipe) == {"moving": other}  # not the fixed image the first one failed to send


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread priorities are read from /proc")
def test_the_engine_process_runs_at_a_lower_priority():
    """The window's slice steps get a core at once while the engine uses every core: every
    thread of the engine process (numpy's, started at import, as well) runs at the lower priority,
    and the run's background threads at the lowest, so the window takes their core, not the run's."""
    from regviewer.core.registration import remote

    procs, seen = [], set()

    def every_thread(_progress):  # read while it runs: the process lowers its priority first thing
        pid = procs[0].pid
        for tid in os.listdir(f"/proc/{pid}/task"):  # on Linux a nice value is a thread's
            try:
                seen.add(os.getpriority(os.PRIO_PROCESS, int(tid)))
            except OSError:  # the thread ended meanwhile
                pass

    run_in_process(dict(fixed=_blobs(), moving=_blobs((4.0, -3.0)), params=_pipeline()), every_thread,
                   CancelToken(), on_start=procs.append)
    engine_nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + remote.ENGINE_NICE)
    assert engine_nice in seen and seen <= {engine_nice, 19} and remote.ENGINE_NICE > 0


def test_cancel_while_the_images_are_still_going_over_returns_at_once(monkeypatch):
    """A Cancel pressed right after images open must not wait for the transfer to the spare."""
    import threading

    from regviewer.core.registration import remote

    sending = threading.Thread(target=time.sleep, args=(5,), daemon=True)  # a stager still writing
    sending.start()
    monkeypatch.setattr(remote._Spare, "stager", sending)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.perf_counter()
    with pytest.raises(RegistrationFailed, match="Cancelled while the images"):
        run_in_process(dict(fixed=_blobs(), moving=_blobs(), params=_pipeline()), None, token)
    assert time.perf_counter() - started < 1.0
