"""Long work off the GUI thread, in the two shapes the window needs.

`call_in_background`: one long core call whose caller wants the result at once (a Save or
Open menu item): the call runs in a plain thread while a local event loop keeps the
window painting. Exceptions come back to the caller unchanged.

`LatestResult`: repeated requests where only the newest answer matters (landmark fits,
QA evaluations, autosaves); one helper, one rule, instead of a counter in every panel.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import queue
import sys
import threading
from typing import Any, Callable

from PyQt6 import QtCore, QtGui, QtWidgets


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameters (malloc.h)
_M_ARENA_MAX = -8


def return_freed_memory_promptly(mmap_threshold: int = 1 << 20, arenas: int = 2) -> bool:
    """Have glibc give big freed buffers back to the system at once (Linux only).

    By default glibc raises its mmap threshold to the size of each large block freed (up
    to 32 MB), so later slices, QA maps and transfer buffers of that size come from heaps
    that are never given back, and every thread that allocates gets a heap of its own: a
    window that evaluated one 1 mm run kept ~35 MB more, and peaked ~15 MB higher.
    A fixed threshold keeps buffers above it in their own mappings, unmapped when freed;
    `arenas` caps the per-thread heaps. True if applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


def call_in_background(fn: Callable[[], Any], poll_ms: int = 20) -> Any:
    """Return `fn()`, computed off the GUI thread; the event loop runs meanwhile."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 -- re-raised on the GUI thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="regviewer-background", daemon=True)
    loop = QtCore.QEventLoop()
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: loop.quit() if not thread.is_alive() else None)
    QtWidgets.QApplication.setOverrideCursor(QtGui.QCursor(QtCore.Qt.CursorShape.WaitCursor))
    try:
        thread.start()
        timer.start(poll_ms)
        if thread.is_alive():
            # User input is held back so the user cannot start a second save or close the
            # window mid-write; painting and timers go on.
            loop.exec(QtCore.QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        thread.join()
    finally:
        timer.stop()
        QtWidgets.QApplication.restoreOverrideCursor()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class LatestResult(QtCore.QObject):
    """Work off the GUI thread where only the newest result of each kind matters:
    landmark fits, QA evaluations and reports, autosaves.

    Each kind has one worker thread, so a kind's jobs never overlap (two autosaves never
    write the same file at once). A new request of a kind supersedes the older ones: an
    older job that has not started is skipped, and the result of one that has is dropped.
    `on_done(result, error)` is called on the GUI thread, once, for the newest request;
    `error` is the exception the work raised (None on success).
    """

    _finished = QtCore.pyqtSignal(str, int, object, object)  # kind, generation, result, error

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._generation: dict[str, int] = {}
        self._delivered: dict[str, int] = {}
        self._callbacks: dict[str, Callable[[Any, BaseException | None], None]] = {}
        self._executors: dict[str, _DaemonWorker] = {}
        self._futures: dict[str, tuple[int, concurrent.futures.Future]] = {}
        self._finished.connect(self._deliver)

    def submit(self, kind: str, fn: Callable[[], Any], on_done: Callable[[Any, BaseException | None], None],
               inline: bool = False) -> int:
        """Run `fn()` for `kind` (inline=True: now, on this thread, for work known to be quick)."""
        generation = self._generation.get(kind, 0) + 1
        self._generation[kind] = generation
        self._callbacks[kind] = on_done
        if inline:
            self._deliver(kind, generation, *_outcome(fn))
            return generation
        executor = self._executors.get(kind)
        if executor is None:
            executor = self._executors[kind] = _DaemonWorker(f"regviewer-{kind}")
        self._futures[kind] = (generation, executor.submit(self._run, kind, generation, fn))
        return generation

    def _run(self, kind: str, generation: int, fn: Callable[[], Any]) -> tuple[Any, BaseException | None] | None:
        if generation != self._generation.get(kind):
            return None  # a newer request superseded this one before it started
        outcome = _outcome(fn)
        try:
            self._finished.emit(kind, generation, *outcome)
        except RuntimeError:  # the owner was deleted while we worked (window closed)
            pass
        return outcome

    def _deliver(self, kind: str, generation: int, result: Any, error: BaseException | None) -> None:
        if generation != self._generation.get(kind) or self._delivered.get(kind) == generation:
            return  # superseded, or already delivered by wait()
        self._delivered[kind] = generation
        callback = self._callbacks.get(kind)
        if callback is not None:
            callback(result, error)

    def busy(self, kind: str) -> bool:
        """True while the newest request of `kind` has not been delivered."""
        return self._generation.get(kind, 0) != self._delivered.get(kind, 0)

    def wait(self, kind: str, timeout: float = 30.0) -> None:
        """Block until the newest `kind` job has finished and been delivered (tests, closing)."""
        entry = self._futures.get(kind)
        if entry is None:
            return
        generation, future = entry
        done, _ = concurrent.futures.wait([future], timeout=timeout)
        if done and future.result() is not None:
            self._deliver(kind, generation, *future.result())  # now; the queued delivery then does nothing

    def shutdown(self) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)


class _DaemonWorker:
    """One daemon thread running its jobs in order. A `ThreadPoolExecutor`'s threads are
    joined when Python exits, so a QA evaluation or a large landmark fit still running when
    the window closes kept the process alive for its whole length; this one is not waited for."""

    def __init__(self, name: str) -> None:
        self._jobs: "queue.SimpleQueue[tuple | None]" = queue.SimpleQueue()
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Stop after the running job; queued jobs are cancelled (`wait` is not supported)."""
        while cancel_futures:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[0].cancel()
        self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 -- delivered through the future
                future.set_exception(exc)


def _outcome(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return fn(), None
    except BaseException as exc:  # noqa: BLE001 -- handed to on_done on the GUI thread
        return None, exc
