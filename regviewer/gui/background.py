"""Run one long core call (seconds) without freezing the window.

For actions whose caller wants the result at once (a Save menu item, a test), but whose
work must not block the GUI thread: the call runs in a plain thread while a local event
loop keeps the window painting. Exceptions come back to the caller unchanged.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PyQt6 import QtCore, QtGui, QtWidgets


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
