"""A long core call made from a menu action keeps the event loop running."""

from __future__ import annotations

import time

import pytest
from PyQt6 import QtCore

from regviewer.core.errors import ImageWriteError
from regviewer.gui.background import call_in_background


def test_result_comes_back_and_the_event_loop_keeps_ticking(qtbot):
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)

    def slow() -> int:
        time.sleep(0.5)
        return 42

    assert call_in_background(slow) == 42
    timer.stop()
    assert len(ticks) >= 10  # a blocking call would have let none through


def test_errors_reach_the_caller_unchanged(qtbot):
    def fails() -> None:
        raise ImageWriteError("out.png", "the disk is full")

    with pytest.raises(ImageWriteError, match="the disk is full"):
        call_in_background(fails)


def test_latest_result_wins_and_errors_come_back(qtbot):
    import threading

    from regviewer.gui.background import LatestResult

    helper = LatestResult()
    got, gate = [], threading.Event()
    helper.submit("fit", lambda: gate.wait(5) and "old", lambda r, e: got.append(r))
    helper.submit("fit", lambda: "queued", lambda r, e: got.append(r))  # superseded before it starts
    helper.submit("fit", lambda: "new", lambda r, e: got.append(r))
    assert helper.busy("fit")
    gate.set()
    helper.wait("fit")
    qtbot.wait(50)  # any late queued delivery of "old" must be dropped
    assert got == ["new"] and not helper.busy("fit")
    helper.submit("qa", lambda: 1 / 0, lambda r, e: got.append(type(e).__name__))
    helper.wait("qa")
    helper.submit("inline", lambda: 7, lambda r, e: got.append(r), inline=True)
    assert got == ["new", "ZeroDivisionError", 7]
    helper.shutdown()


def test_a_job_still_running_does_not_keep_the_process_alive_at_exit():
    """Quitting during a long QA evaluation or landmark fit must not wait for it."""
    import subprocess
    import sys
    import time

    script = ("import time\nfrom PyQt6 import QtWidgets\napp = QtWidgets.QApplication([])\n"
              "from regviewer.gui.background import LatestResult\nlr = LatestResult()\n"
              "lr.submit('qa', lambda: time.sleep(60), lambda r, e: None)\ntime.sleep(0.2)\n")
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=50,
                   env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert time.monotonic() - start < 30


def test_the_window_asks_glibc_to_return_big_freed_buffers():
    import platform
    import sys

    from regviewer.gui.background import return_freed_memory_promptly

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert return_freed_memory_promptly() is glibc
