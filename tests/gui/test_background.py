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
