"""File > Open/Save Session, autosave, crash recovery and the unsaved-changes prompt.

Thin Qt over `core.workspace`: the Workspace turns itself into a `Session` (image paths,
the current fixed→moving transform and its source, landmarks, runs, settings), the
controller adds every panel's registered session part, writes it atomically, and puts
it back on open. Autosave and the crash-recovery offer are `session_recovery.py`'s (a
mixin); the recovery file and the crash detection live in `core.workspace.session.RecoveryManager`.

Dialogs that appear on their own (recovery offer, unsaved changes on close) are non-blocking, so an automated
run never hangs on them; tests replace `ask_recover` / `ask_save_changes`.
"""

from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Callable

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError, SessionError
from regviewer.core.workspace.session import SESSION_SUFFIX, RecoveryCandidate, RecoveryManager, Session
from regviewer.gui.session_recovery import AutosaveRecovery

SESSION_FILTER = f"regviewer session (*{SESSION_SUFFIX} *.json);;All files (*)"
# The window's view state is the session's top-level "view_state"; other parts go in "parts".
_VIEW_PARTS = ("view", "view_state")


class SessionController(AutosaveRecovery, QtCore.QObject):
    """Sessions for one main window (see the module docstring).

    `window` provides `session_parts()` (key -> (get_state, set_state)),
    `open_images(fixed, moving)` and the `gui.host.RegistrationHost` methods.
    """

    saved = QtCore.pyqtSignal(str)  # path of a session just saved
    opened = QtCore.pyqtSignal(str)  # path of a session just opened
    autosaved = QtCore.pyqtSignal(str)  # path of the recovery file just written

    def __init__(self, window, recovery: RecoveryManager | None = None) -> None:
        super().__init__(window if isinstance(window, QtCore.QObject) else None)
        self.window = window
        self.recovery = recovery or RecoveryManager()
        self.path: Path | None = None
        self.modified = False
        self._dirty_since_autosave = False
        self._loading = False
        self._closing_accepted = False
        self._installed = False
        self.ask_recover: Callable[[list[RecoveryCandidate]], None] = self._ask_recover_dialog
        # None: ask with a dialog (non-blocking on close). Tests set a callable returning
        # "save", "discard" or "cancel".
        self.ask_save_changes: Callable[[], str] | None = None
        self._init_autosave(window)

    # ------------------------------------------------------------------ installation
    def install(self, window=None) -> "SessionController":
        """Add the File menu items, start autosave and crash detection, hook close."""
        window = window or self.window
        if self._installed:
            return self
        self._installed = True
        self._add_menu_items(window)
        window.installEventFilter(self)
        self._hook_modification_sources(window)
        self.recovery.start()
        for lock in self.recovery.stale_locks():
            lock.unlink(missing_ok=True)
        ref = weakref.ref(self)
        atexit.register(lambda: (c := ref()) is not None and c._finish_quietly())
        self.autosave_timer.start()
        candidates = self.recovery.crashed_runs()
        if candidates:
            QtCore.QTimer.singleShot(0, lambda: self.ask_recover(candidates))
        return self

    def _add_menu_items(self, window) -> None:
        menu_bar = window.menuBar()
        file_menu = None
        for action in menu_bar.actions():
            if action.menu() is not None and action.text().replace("&", "").strip().lower() == "file":
                file_menu = action.menu()
                break
        if file_menu is None:
            file_menu = menu_bar.addMenu("&File")
        taken = {a.shortcut().toString() for a in window.findChildren(QtGui.QAction) if not a.shortcut().isEmpty()}
        file_menu.addSeparator()
        self.open_action = file_menu.addAction("Open Session…", self.open_session_dialog)
        self.save_action = file_menu.addAction("Save Session", self.save_session_interactive)
        self.save_as_action = file_menu.addAction("Save Session As…", self.save_session_as_dialog)
        for action, key in ((self.open_action, "Ctrl+Shift+O"), (self.save_action, "Ctrl+S"),
                            (self.save_as_action, "Ctrl+Shift+S")):
            if QtGui.QKeySequence(key).toString() not in taken:
                action.setShortcut(QtGui.QKeySequence(key))

    def _hook_modification_sources(self, window) -> None:
        """Listen to the user's edits (not to merely opening images: a window with
        nothing but two opened images closes without a question)."""
        self.connect_landmark_dock(window)
        signal = getattr(window, "modified", None)
        if isinstance(signal, QtCore.pyqtBoundSignal):
            signal.connect(self.mark_modified)  # the window's own "the user changed something"
            return
        hook = getattr(window, "on_transform_changed", None)
        if hook is not None:
            hook(self.mark_modified)
        original = getattr(window, "mark_modified", None)
        if callable(original) and not getattr(original, "_session_hook", False):
            def mark_modified() -> None:
                original()
                self.mark_modified()
            mark_modified._session_hook = True  # type: ignore[attr-defined]
            try:
                window.mark_modified = mark_modified
            except AttributeError:
                pass

    def connect_landmark_dock(self, window=None) -> None:
        """Autosave shortly after every landmark edit (the dock may be added later)."""
        window = window or self.window
        finder = getattr(window, "findChildren", None)
        if finder is None:
            return
        for dock in finder(QtWidgets.QDockWidget):
            edited = getattr(dock, "edited", None)
            if edited is not None and not getattr(dock, "_session_connected", False):
                edited.connect(self.landmarks_edited)
                dock._session_connected = True

    # ------------------------------------------------------------------ state
    def mark_modified(self, *_args) -> None:
        if self._loading:
            return
        self.modified = True
        self._dirty_since_autosave = True
        self._set_window_modified(True)

    def landmarks_edited(self) -> None:
        self.mark_modified()
        if not self._loading:
            self._edit_timer.start()

    def collect(self) -> Session:
        """The window's state as a Session: the Workspace's, plus every panel's part."""
        ws = self.window.workspace
        parts = {}
        for key, (get_state, _set_state) in self._parts().items():
            if key in _VIEW_PARTS:
                ws.set_view_state(get_state() or {})
            else:
                parts[key] = get_state()
        return ws.to_session(parts)

    def apply(self, session: Session) -> None:
        """Put a session back: images, then the Workspace's state, then every panel's part."""
        w = self.window
        self._loading = True
        try:
            if session.fixed_path:
                for role, path in (("fixed", session.fixed_path), ("moving", session.moving_path)):
                    if path and not os.path.exists(path):
                        raise SessionError(f"Cannot open the session: its {role} image '{path}' no longer exists "
                                           f"(moved or deleted?)")
                if w.open_images(session.fixed_path, session.moving_path) is False:
                    raise SessionError(f"Cannot open the session: its images could not be opened "
                                       f"({session.fixed_path}, {session.moving_path})")
            w.workspace.restore(session, open_images=False)
            for key, (_get_state, set_state) in self._parts().items():
                state = session.view_state if key in _VIEW_PARTS else session.parts.get(key)
                if state:
                    set_state(state)
            QtWidgets.QApplication.processEvents()  # let queued change callbacks run while loading
        finally:
            self._loading = False
        self.connect_landmark_dock()

    def _parts(self) -> dict:
        getter = getattr(self.window, "session_parts", None)
        return dict(getter() if callable(getter) else {})

    # ------------------------------------------------------------------ files
    def save_session(self, path: str | Path | None = None) -> Path:
        """Save to `path` (or the current session file); raises SessionError."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise SessionError("The session has no file yet: use Save Session As…")
        self.collect().save(target)
        self.path = target
        self._set_clean()
        self.saved.emit(str(target))
        self._message(f"Session saved to {target.name}")
        return target

    def open_session(self, path: str | Path) -> Session:
        """Open a session file into the window; raises SessionError / image errors."""
        session = Session.load(path)
        self.apply(session)
        self.path = Path(path)
        self._set_clean()
        self.opened.emit(str(path))
        self._message(f"Session {Path(path).name} opened")
        return session

    # ------------------------------------------------------------------ menu actions
    def open_session_dialog(self) -> None:
        if self.modified and not self._resolve_unsaved():
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self._parent_widget(), "Open session", "", SESSION_FILTER)
        if path:
            try:
                self.open_session(path)
            except RegviewerError as exc:
                self._error(exc)

    def save_session_interactive(self) -> bool:
        if self.path is None:
            return self.save_session_as_dialog()
        try:
            self.save_session()
            return True
        except RegviewerError as exc:
            self._error(exc)
            return False

    def save_session_as_dialog(self) -> bool:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self._parent_widget(), "Save session as",
                                                        str(self.path or ("session" + SESSION_SUFFIX)), SESSION_FILTER)
        if not path:
            return False
        if not path.endswith(".json"):
            path += SESSION_SUFFIX
        try:
            self.save_session(path)
            return True
        except RegviewerError as exc:
            self._error(exc)
            return False

    # ------------------------------------------------------------------ close / exit
    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.window and event.type() == QtCore.QEvent.Type.Close:
            if not self.maybe_close():
                event.ignore()
                return True
        return False

    def maybe_close(self) -> bool:
        """True when the window may close now: nothing unsaved, or the user saved or
        discarded it. A clean close removes this run's recovery files.

        With unsaved changes and no `ask_save_changes` override, the question is a
        non-blocking dialog: the close is refused now and redone after the answer, so
        a scripted close (tests, quitting) can never hang on it."""
        if self._closing_accepted:
            return True
        if self.modified:
            if self.ask_save_changes is None:
                self._ask_close_async()
                return False
            if not self._resolve_unsaved():
                return False
        self._accept_close()
        return True

    def _accept_close(self) -> None:
        self._closing_accepted = True
        self.shutdown()

    def _resolve_unsaved(self) -> bool:
        answer = self.ask_save_changes() if self.ask_save_changes is not None else self._ask_save_changes_dialog()
        if answer == "save":
            return self.save_session_interactive()
        return answer == "discard"

    def _ask_close_async(self) -> None:
        if getattr(self, "close_box", None) is not None:
            return
        box = self._save_changes_box()
        buttons = QtWidgets.QMessageBox.StandardButton

        def done(result: int) -> None:
            self.close_box = None
            answer = box.standardButton(box.clickedButton()) if box.clickedButton() is not None else buttons.Cancel
            box.deleteLater()
            if answer == buttons.Save and not self.save_session_interactive():
                return
            if answer in (buttons.Save, buttons.Discard):
                self._accept_close()
                self.window.close()

        box.finished.connect(done)
        self.close_box = box
        box.open()

    def shutdown(self) -> None:
        """Clean exit: stop timers and remove the recovery files."""
        self.autosave_timer.stop()
        self._edit_timer.stop()
        self.wait_for_autosave()
        self.recovery.finish()

    # ------------------------------------------------------------------ dialogs
    def _ask_save_changes_dialog(self) -> str:
        box = self._save_changes_box()
        buttons = QtWidgets.QMessageBox.StandardButton
        result = box.exec()
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(QtWidgets.QMessageBox.StandardButton(result),
                                                                       "cancel")

    def _save_changes_box(self) -> QtWidgets.QMessageBox:
        box = QtWidgets.QMessageBox(self._parent_widget())
        box.setWindowTitle("regviewer")
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setText("The session has unsaved changes.")
        box.setInformativeText("Save them to a session file before closing?")
        buttons = QtWidgets.QMessageBox.StandardButton
        box.setStandardButtons(buttons.Save | buttons.Discard | buttons.Cancel)
        box.setDefaultButton(buttons.Save)
        return box

    # ------------------------------------------------------------------ helpers
    def _set_clean(self) -> None:
        self.modified = False
        self._dirty_since_autosave = False
        self._set_window_modified(False)
        self._edit_timer.stop()
        self.wait_for_autosave()
        self.recovery.clear_autosave()  # the session file holds everything now

    def _set_window_modified(self, flag: bool) -> None:
        if isinstance(self.window, QtWidgets.QWidget):
            self.window.setWindowModified(flag)

    def _parent_widget(self):
        return self.window if isinstance(self.window, QtWidgets.QWidget) else None

    def _message(self, text: str) -> None:
        show = getattr(self.window, "show_message", None)
        if show is not None:
            show(text)

    def _error(self, exc: BaseException) -> None:
        show = getattr(self.window, "show_error", None)
        if show is not None:
            show(exc)
        else:
            QtWidgets.QMessageBox.critical(self._parent_widget(), "regviewer", str(exc))
