"""Runs `align_stack` off the GUI thread and turns its progress into Qt signals.

The core's progress callback runs on the worker thread; it only emits signals carrying
plain data (an index, a numpy copy of the aligned section, text), which Qt queues to the
GUI thread. Cancel sets the core's token; the GUI never waits for the thread.
"""

from __future__ import annotations

import threading

import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.errors import RegistrationCancelled, RegviewerError
from regviewer.core.registration.run_state import CancelToken


class StackRunner(QtCore.QObject):
    """`start(**align_stack kwargs)`; signals: progress(done, total, text),
    section_aligned(index, total, name, image), finished(StackResult), failed(message)."""

    progress = QtCore.pyqtSignal(int, int, str)
    section_aligned = QtCore.pyqtSignal(int, int, str, object)
    finished = QtCore.pyqtSignal(object)
    failed = QtCore.pyqtSignal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._token: CancelToken | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, sections, **kwargs) -> None:
        from regviewer.core.stack.align import align_stack

        self._token = CancelToken()
        token = self._token

        def on_progress(p) -> None:
            if p.index is not None and p.image is not None:
                self.section_aligned.emit(p.index, p.total, p.section, sitk.Image(p.image))
            else:
                self.progress.emit(p.done, p.total, p.message)

        def work() -> None:
            try:
                result = align_stack(sections, progress=on_progress, cancel=token, **kwargs)
            except RegistrationCancelled:
                self.failed.emit("Stack alignment cancelled")
            except RegviewerError as exc:
                self.failed.emit(str(exc))
            except Exception as exc:  # noqa: BLE001 -- a bug: shown as one line, never a crash
                self.failed.emit(f"Unexpected error ({type(exc).__name__}: {exc})")
            else:
                self.finished.emit(result)

        self._thread = threading.Thread(target=work, name="regviewer-stack", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()


__all__ = ["StackRunner"]
