"""The landmark dock's "Fitting… (n pairs)" row with a Cancel button.

A fit of thousands of pairs (leave-one-out errors, flags) takes seconds in its worker
thread. The row appears only once a fit has run for `SHOW_AFTER_MS`, so quick fits never
flicker it; Cancel sets the fit's event, which the worker sees at its next progress call
(between leave-one-out folds) and stops with `LandmarkFitCancelled`.

Thread rule: the worker only calls `report` (plain attribute writes and an Event read);
every Qt call happens on the GUI thread, from the timers.
"""

from __future__ import annotations

import threading

from PyQt6 import QtCore, QtWidgets

SHOW_AFTER_MS = 500
POLL_MS = 150


class FitProgress(QtWidgets.QWidget):
    """Hidden until a fit outlasts SHOW_AFTER_MS; then the pair count, progress and Cancel."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QtWidgets.QLabel()
        row.addWidget(self.label, 1)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this fit; the table keeps no errors until the next fit")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.cancel_button)
        self.hide()
        self._event: threading.Event | None = None
        self._pairs = 0
        self._done = 0
        self._total = 0
        self._show_timer = QtCore.QTimer(self, singleShot=True, interval=SHOW_AFTER_MS)
        self._show_timer.timeout.connect(self._appear)
        self._poll = QtCore.QTimer(self, interval=POLL_MS)
        self._poll.timeout.connect(self._update_text)

    def start(self, pairs: int) -> threading.Event:
        """A new fit of `pairs` pairs; the returned event is set when the user cancels."""
        if self._event is not None:
            self._event.set()  # the fit this one supersedes: its result would be dropped anyway
        self._event = threading.Event()
        self._pairs, self._done, self._total = pairs, 0, 0
        self._show_timer.start()
        return self._event

    def report(self, event: threading.Event, done: int, total: int) -> bool:
        """The worker's progress callback: False once `event` (its fit's) is set."""
        self._done, self._total = done, total
        return not event.is_set()

    def cancel(self) -> None:
        if self._event is not None:
            self._event.set()
            self.label.setText(f"Cancelling the fit of {self._pairs} pairs…")
            self.cancel_button.setEnabled(False)

    def finish(self) -> None:
        """The newest fit ended (result, error or cancelled): hide the row."""
        self._show_timer.stop()
        self._poll.stop()
        self._event = None
        self.hide()

    @property
    def cancel_requested(self) -> bool:
        return self._event is not None and self._event.is_set()

    def _appear(self) -> None:
        self.cancel_button.setEnabled(True)
        self._update_text()
        self.show()
        self._poll.start()

    def _update_text(self) -> None:
        if self.cancel_requested:
            return
        text = f"Fitting… ({self._pairs} pairs)"
        if self._total and 0 < self._done < self._total:
            text += f" — leave-one-out {100 * self._done // self._total} %"
        self.label.setText(text)
