"""The engine in its own process, so a window's drawing never competes with it.

`run_in_process(job, progress, cancel)` behaves like `engine.register(**job, progress=...,
cancel=...)` and blocks the calling (worker) thread, but the optimisation runs in a
fresh *spawned* process:

- the images go over once, as read (an RGB photo stays uint8), as raw pixel buffers
  written straight from the window's own arrays (no pickled copy);
- every iteration comes back (stage, level, iteration, metric, time) for the plot; a
  transform snapshot at most `snapshot_hz` times a second, as the current stage's own
  transform only: the earlier stages' transform is sent once per stage and composed here;
- cancel sets a shared event; the engine stops within about a second and returns its best
  transform. If it has not answered `cancel_grace_s` after the cancel, the process is
  terminated and the last snapshot is the (cancelled) result;
- a crash of the engine process (killed, out of memory, a segfault in a library) raises
  `RegistrationFailed` with the exit code, never a hang;
- starting a process and importing the engine takes about a second, a quarter of a 1 mm
  affine run: `prewarm()` (the window calls it when images open) starts one spare process
  that imports the engine and waits; the next run takes it, so a live run starts as fast as
  a headless one. A process serves one run only (a fresh state each time, a crash isolated).
  `prewarm(images)` also hands the spare the fixed and moving images at once, from a
  background thread: handing over a 1 mm pair took 0.25-0.6 s at Run, and the job at Run
  then names them instead of carrying them (any other image still goes over with the job);
- the engine process runs at a lower CPU priority (`ENGINE_NICE`): it uses every core, and
  the window's short bursts (a slice step, a redraw) then get a core at once instead of
  waiting for one; the work the window does is the same either way.

This module is the window's side; the engine process's side (and the wire format of the
images) is `engine_process.py`. No Qt here: `gui/worker.py` calls this from its worker thread.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any, Callable

import SimpleITK as sitk

from regviewer.core.errors import RegistrationFailed, RegviewerError
from regviewer.core.registration.engine_process import (_STAGED, IMAGE_KEYS, _child_main, _pack_image,
                                                         _pack_landmarks)
from regviewer.core.registration.presets import DEFAULT_PRESET
from regviewer.core.registration.run_state import Progress
from regviewer.core.transforms.ops import after

_CTX = multiprocessing.get_context("spawn")
ENGINE_NICE = 10  # added to the engine process's nice value (see the module docstring)
JOB_KEYS = ("fixed", "moving", "preset", "params", "initial_transform", "fixed_mask", "moving_mask", "seed",
            "landmarks")


STAGED_KEYS = ("fixed", "moving")


class _Stager(threading.Thread):
    """Sends images to a spare process on `conn` (after the previous stager on it); `ok`
    once every buffer is over. Only images the spare does not hold go over: opening another
    moving image sends that one, not the pair again. Takes no lock, so a discard can wait for it."""

    def __init__(self, conn: Any, images: dict, previous: "_Stager | None") -> None:
        super().__init__(name="regviewer-stage-images", daemon=True)
        self.conn, self.previous = conn, previous
        self.sent = {key: _sitk_of(image) for key, image in images.items()}  # by identity
        # what the spare will hold once this is over (`prewarm` sends only what is not here);
        # settled in `run` once the earlier stager is done
        self.images = {**(previous.images if previous is not None else {}), **self.sent}
        # Views taken here, on the caller's (GUI) thread: `GetArrayViewFromImage` calls MakeUnique,
        # which must not run on these objects beside a GUI-thread read of them (see pyramid.in_background).
        self._buffers: list = []
        self._packed = {key: _pack_image(image, self._buffers) for key, image in images.items()}
        self.ok = False

    def run(self) -> None:
        if self.previous is not None:
            self.previous.join()  # its `images` are settled now, and say what the spare holds
            self.images = {**(self.previous.images if self.previous.ok else {}), **self.sent}
            self.previous = None
        try:
            self.conn.send(("images", self._packed))
            for view in self._buffers:
                self.conn.send_bytes(memoryview(view).cast("B"))
        except (OSError, ValueError):  # the spare died or was discarded: a run sends the images itself
            return
        finally:
            self._buffers = []
        self.ok = True

    def holds(self, conn: Any) -> dict:
        """The images the spare on `conn` holds once this stager is done (else none)."""
        return dict(self.images) if self.ok and self.conn is conn else {}


class _Spare:
    """One started engine process waiting for its job (see `prewarm`)."""

    lock = threading.Lock()  # the GUI thread starts spares, a worker thread takes them
    process: Any = None
    conn: Any = None
    stop: Any = None
    ready: Any = None  # the conn whose process said it has imported the engine
    stager: _Stager | None = None  # the last images sent (or being sent) to the spare


def _start() -> tuple[Any, Any, Any]:
    here, there = _CTX.Pipe()
    stop = _CTX.Event()
    proc = _CTX.Process(target=_child_main, args=(there, stop, ENGINE_NICE), name="regviewer-engine", daemon=True)
    proc.start()
    there.close()  # only the child holds its end now: its death is an EOF here
    return proc, here, stop


def _sitk_of(image: Any) -> Any:
    return getattr(image, "sitk", image) if image is not None else None


def prewarm(images: dict | None = None) -> None:
    """Start a spare engine process now (if none waits), so the next `run_in_process`
    does not wait for a process start and the engine's imports. Cheap to call often.

    `images` ({"fixed": Volume, "moving": Volume}): hand these to the spare now, from a
    background thread, except those it has already; a run with the same image objects then
    sends only its job."""
    with _Spare.lock:
        if _Spare.process is None or not _Spare.process.is_alive():
            _discard()
            _Spare.process, _Spare.conn, _Spare.stop = _start()
        last = _Spare.stager
        previous = last if last is not None and last.conn is _Spare.conn else None
        held = previous.images if previous is not None else {}
        wanted = {k: v for k, v in (images or {}).items() if k in STAGED_KEYS and isinstance(_sitk_of(v), sitk.Image)
                  and held.get(k) is not _sitk_of(v)}  # only what the spare does not hold (or get) already
        if not wanted:
            return
        _Spare.stager = _Stager(_Spare.conn, wanted, previous)
        _Spare.stager.start()


def spare_ready(timeout: float = 0.0) -> bool:
    """True once the spare process has imported the engine and the images staged for it
    are over (waits up to `timeout` s)."""
    deadline = time.perf_counter() + timeout
    stager = _Spare.stager
    if stager is not None:
        stager.join(timeout)
        if stager.is_alive():
            return False
    with _Spare.lock:  # a run must not take the pipe while this reads from it
        conn = _Spare.conn
        if conn is None or _Spare.process is None or not _Spare.process.is_alive():
            return False
        if _Spare.ready is conn:
            return True
        try:
            if conn.poll(max(0.0, deadline - time.perf_counter())) and conn.recv()[0] == "ready":
                _Spare.ready = conn
                return True
        except (EOFError, OSError):
            pass
        return False


def discard_spare() -> None:
    """Stop the spare process, if any (tests; a window that closes)."""
    with _Spare.lock:
        _discard()


def _discard() -> None:
    proc, conn, stager = _Spare.process, _Spare.conn, _Spare.stager
    _Spare.process = _Spare.conn = _Spare.stop = _Spare.stager = None
    if stager is not None and stager.is_alive():  # sending: end the process so the write fails, then
        if proc is not None:  # close the pipe (never under a thread still writing to it)
            proc.terminate()
        stager.join(5)
    if conn is not None:
        conn.close()  # the spare reads EOF and exits
    if proc is not None:
        proc.join(2)
        if proc.is_alive():
            proc.terminate()


def _take(cancel: Any = None) -> tuple[Any, Any, Any, dict]:
    """The spare process (and the images it holds) if it is alive, else a new one."""
    stager = _Spare.stager
    while stager is not None and stager.is_alive():  # the pipe is the stager's until the images are over
        stager.join(0.05)
        if cancel is not None and cancel.cancelled:  # the spare keeps its images for the next run
            raise RegistrationFailed("Cancelled while the images were on their way to the engine; nothing to keep.")
    with _Spare.lock:
        proc, here, stop, stager = _Spare.process, _Spare.conn, _Spare.stop, _Spare.stager
        _Spare.process = _Spare.conn = _Spare.stop = _Spare.stager = None
    if stager is not None and stager.is_alive():  # a newer stager came between the join and the lock
        stager.join()
    if proc is not None and proc.is_alive():
        return proc, here, stop, (stager.holds(here) if stager is not None else {})
    if here is not None:
        here.close()
    return (*_start(), {})


def run_in_process(job: dict, progress: Callable[[Progress], None] | None = None, cancel: Any = None,
                   snapshot_hz: float = 20.0, cancel_grace_s: float = 1.5,
                   on_start: Callable[[Any], None] | None = None) -> Any:
    """Run `engine.register(**job)` in a spawned process; return its `RegistrationResult`.

    `job` holds `register`'s keyword arguments (JOB_KEYS). `progress` is called here, in
    the caller's thread, once per engine iteration. `on_start(process)` gets the
    `multiprocessing.Process` (tests kill it to check that a crash becomes an error).
    """
    from regviewer.core.imaging.image import as_volume
    from regviewer.core.registration.engine import RegistrationResult
    from regviewer.core.transforms.resample import resample_moving

    unknown = set(job) - set(JOB_KEYS)
    if unknown:
        raise RegistrationFailed(f"unknown registration argument(s) {', '.join(sorted(unknown))}")
    fixed_v, moving_v = as_volume(job["fixed"]), as_volume(job["moving"])  # read paths once, here
    payload = dict(job, fixed=fixed_v, moving=moving_v)
    if "landmarks" in payload:
        payload["landmarks"] = _pack_landmarks(payload["landmarks"])
    payload["snapshot_hz"] = snapshot_hz
    proc, here, stop, staged = _take(cancel)
    buffers: list = []
    for key in IMAGE_KEYS:
        image = payload.get(key)
        held = staged.get(key)
        payload[key] = _STAGED if held is not None and _sitk_of(image) is held else _pack_image(image, buffers)
    finished = False
    try:
        if on_start is not None:
            on_start(proc)
        here.send(payload)
        for view in buffers:
            here.send_bytes(memoryview(view).cast("B"))
        del buffers
        result = _serve(proc, here, stop, progress, cancel, cancel_grace_s, fixed_v, moving_v,
                        RegistrationResult, resample_moving, job)
        finished = True
        return result
    except (BrokenPipeError, EOFError, ConnectionResetError):
        raise _crashed(proc) from None
    finally:
        here.close()
        if proc.is_alive():
            proc.terminate()
        if finished:  # the result is here: reap the process (freeing its memory takes a while) aside
            threading.Thread(target=proc.join, args=(5,), name="regviewer-reap", daemon=True).start()
        else:
            proc.join(5)


def _serve(proc, here, stop, progress, cancel, grace, fixed_v, moving_v, result_type, resample, job) -> Any:
    """Relay messages until the result, an error, a crash or an unanswered cancel."""
    from regviewer.core.registration.run_state import HistoryEntry

    history: list[HistoryEntry] = []
    previous: sitk.Transform | None = None
    current: sitk.Transform | None = None
    snapshot: sitk.Transform | None = None
    cancelled_at: float | None = None
    while True:
        if cancel is not None and cancel.cancelled and cancelled_at is None:
            stop.set()
            cancelled_at = time.perf_counter()
        if here.poll(0.05):
            try:
                msg = here.recv()
            except (EOFError, OSError):
                msg = None
            if msg is None:
                raise _crashed(proc)
            kind = msg[0]
            if kind == "ready":
                continue  # the process has imported the engine (`spare_ready` may have read this)
            if kind == "previous":
                previous, snapshot = msg[1], None
            elif kind == "iteration":
                if msg[8] is not None:
                    current, snapshot = msg[8], None
                if snapshot is None and current is not None:
                    snapshot = after(previous, current)
                history.append(HistoryEntry(msg[1], msg[2], msg[3], msg[5], msg[6], msg[7]))
                if progress is not None and snapshot is not None:
                    progress(Progress(msg[1], msg[2], msg[3], msg[4], msg[5], msg[6], snapshot, msg[7]))
            elif kind == "result":
                transform = msg[1]

                def resampled(transform=transform) -> sitk.Image:
                    return resample(moving_v, fixed_v, transform)

                return result_type(transform, resampled, msg[2], msg[3], msg[4], msg[5], msg[6], msg[7],
                                   warnings=msg[8])  # the verification's words reach the window
            elif kind == "error":
                error = msg[1]
                if isinstance(error, RegviewerError):
                    raise error
                raise RegistrationFailed(f"The registration stopped with an unexpected error: "
                                         f"{type(error).__name__}: {error}")
            continue
        if not proc.is_alive() and not here.poll(0):
            raise _crashed(proc)
        if cancelled_at is not None and time.perf_counter() - cancelled_at > grace:
            return _abandoned(proc, snapshot, history, fixed_v, moving_v, result_type, resample, job)


def _crashed(proc) -> RegistrationFailed:
    proc.join(1)
    code = proc.exitcode
    how = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
    return RegistrationFailed(f"The registration engine process stopped unexpectedly ({how}); the window is "
                              "unaffected. If it happens again, the images may be too large for the memory.")


def _abandoned(proc, snapshot, history, fixed_v, moving_v, result_type, resample, job) -> Any:
    """Cancel not answered in time (the engine was inside a long ITK call): stop the process
    and keep the last snapshot as the cancelled result."""
    proc.terminate()
    if snapshot is None:
        raise RegistrationFailed("Cancelled before the engine reported any progress; nothing to keep.")
    def resampled() -> sitk.Image:
        return resample(moving_v, fixed_v, snapshot)

    params = job.get("params")
    if params is None:
        from regviewer.core.registration.presets import load_preset

        params = load_preset(job.get("preset") or DEFAULT_PRESET)
    elapsed = history[-1].elapsed if history else 0.0
    note = ("The engine did not answer the cancel in time and was stopped; the transform kept is its last "
            "snapshot, which the stage checks did not see: judge it before you apply it.")
    return result_type(snapshot, resampled, history, "cancelled by the user", elapsed, params, True,
                       {"terminated": True}, warnings=[note])


__all__ = ["run_in_process", "prewarm", "spare_ready", "discard_spare", "JOB_KEYS"]
