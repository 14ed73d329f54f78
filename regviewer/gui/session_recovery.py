"""Autosave and crash recovery for the session controller: the timers (every 30 s when
something changed, and shortly after every landmark edit), the recovery file written off the
GUI thread (newest state wins), telling the person once when autosave fails, and the
non-blocking "Recover the autosaved work?" offer. A mixin of `SessionController`, kept apart
so that file keeps the session files, the menu and the close prompt; the recovery file and
the crash detection themselves are `core.workspace.session.RecoveryManager`'s.
"""

from __future__ import annotations

import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import RegviewerError, SessionError
from regviewer.core.workspace.session import RecoveryCandidate, Session
from regviewer.gui.background import LatestResult

AUTOSAVE_INTERVAL_MS = 30_000
EDIT_AUTOSAVE_DELAY_MS = 300  # a burst of edits (a drag, a paste) costs one write


class AutosaveRecovery:
    """Mixed into `SessionController` (needs `window`, `recovery`, `collect`, `apply`,
    `mark_modified`, `_message`, `_error`, `_parent_widget` and `_loading`)."""

    def _init_autosave(self, window) -> None:
        self.autosave_timer = QtCore.QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self.autosave_timer.timeout.connect(self._autosave_if_dirty)
        self._edit_timer = QtCore.QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(EDIT_AUTOSAVE_DELAY_MS)
        self._edit_timer.timeout.connect(self.autosave_now)
        # Encoding a dense displacement field takes a fraction of a second: autosaves are
        # written off the GUI thread, one at a time, the newest state winning.
        self._background = getattr(window, "background", None) or LatestResult(self)
        self.autosave_error: str | None = None  # the first autosave failure, told to the person once

    def autosave_now(self, wait: bool = False) -> None:
        """Write the recovery file off the GUI thread (`wait` blocks until written); the
        newest state wins. A failure is told to the person once, never as a traceback."""
        if self._loading:
            return
        try:
            session = self.collect()
        except Exception as exc:  # noqa: BLE001 - told to the person, never a traceback
            self._autosave_failed(exc)
            return
        # SimpleITK copies are copy-on-write: cheap, and safe from later edits.
        session.transforms = {k: sitk.Transform(t) for k, t in session.transforms.items()}
        self._dirty_since_autosave = False
        self._background.submit("autosave", lambda: self.recovery.autosave(session), self._on_autosave_finished)
        if wait:
            self.wait_for_autosave()

    def wait_for_autosave(self, timeout: float = 30.0) -> None:
        """Block until the newest autosave is on disk (closing, saving, tests)."""
        self._background.wait("autosave", timeout)

    def _on_autosave_finished(self, path, error) -> None:
        if error is not None:
            self._autosave_failed(error)
        else:
            self.autosave_error = None  # working again: a later failure is news
            self.autosaved.emit(str(path))

    def _autosave_failed(self, error: BaseException) -> None:
        """Tell the person (status bar, and a dialog the first time) that crash recovery stopped."""
        text = f"Autosave failed, so crash recovery is not protecting your work: {error}"
        self._message(text)
        if self.autosave_error is None:
            self.autosave_error = text
            self._error(SessionError(text + "\nSave the session (File > Save Session) to keep your work."))


    def recover(self, candidate: RecoveryCandidate) -> Session | None:
        """Open a crashed run's autosave; the result counts as unsaved work."""
        try:
            session = self.recovery.recover(candidate)
            self.apply(session)
        except RegviewerError as exc:
            self._error(exc)
            return None
        self.recovery.discard(candidate)
        self.path = None
        self.mark_modified()
        self.autosave_now()
        self._message("Recovered the autosaved session")
        return session


    def _finish_quietly(self) -> None:
        try:
            self.recovery.finish()
        except Exception:
            pass


    def _ask_recover_dialog(self, candidates: list[RecoveryCandidate]) -> None:
        """Non-blocking: offers the newest crashed run's autosave."""
        candidate = candidates[0]
        box = QtWidgets.QMessageBox(self._parent_widget())
        box.setWindowTitle("Recover session")
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setText("regviewer did not exit cleanly last time. Recover the autosaved work?")
        box.setInformativeText(candidate.describe())
        recover = box.addButton("Recover", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Discard", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Later", QtWidgets.QMessageBox.ButtonRole.RejectRole)

        def done(_result: int) -> None:
            clicked = box.clickedButton()
            if clicked is recover:
                self.recover(candidate)
            elif clicked is not None and box.buttonRole(clicked) == QtWidgets.QMessageBox.ButtonRole.DestructiveRole:
                self.recovery.discard(candidate)
            box.deleteLater()

        box.finished.connect(done)
        box.open()
        self.recovery_box = box


    def _autosave_if_dirty(self) -> None:
        if self._dirty_since_autosave:
            self.autosave_now()
