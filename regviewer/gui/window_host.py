"""The main window's side of `gui.host.RegistrationHost`, over the Workspace.

The window holds no transform, image or undo history of its own: everything here
reads `self.workspace` or sends it a command, and redraws when the Workspace's
events come back through the Qt bridge (`gui/bridge.py`). Kept apart from
`main_window.py` (layout, views, menus) so each file has one job.
"""

from __future__ import annotations

import sys
import traceback
from collections import OrderedDict
from typing import Callable

import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.imaging.image import Volume
from regviewer.core.workspace.model import Workspace
from regviewer.core.workspace.state import TransformSource
from regviewer.gui.background import LatestResult, return_freed_memory_promptly
from regviewer.gui.bridge import WorkspaceBridge


GIL_SWITCH_S = 0.001  # see `_init_workspace`


class WorkspaceHostMixin:
    """Mixed into `MainWindow` (a QMainWindow): the RegistrationHost methods and the
    reactions to Workspace events that every window needs."""

    def _init_workspace(self, workspace: Workspace | None = None) -> None:
        # Both settings below are process-wide and stay after the window closes: a script or a
        # test that embeds a window gets them too (harmless, and what the window needs).
        return_freed_memory_promptly()  # big slices and QA maps go back to the system when freed
        # Painting calls into Python once per item; while a worker thread computes (the live
        # grid, QA), each call can wait up to the GIL switch interval (5 ms by default).
        sys.setswitchinterval(GIL_SWITCH_S)
        self.workspace = workspace or Workspace()
        self.bridge = WorkspaceBridge(self.workspace, self)
        self.background = LatestResult(self)  # landmark fits, QA, autosave: the newest result wins
        self._images_callbacks: list[Callable[[], None]] = []
        self._transform_callbacks: list[Callable[[], None]] = []
        self._session_parts: "OrderedDict[str, tuple[Callable[[], dict], Callable[[dict], None]]]" = OrderedDict()
        self._opening = False
        self.last_error: str | None = None
        self.bridge.imagesChanged.connect(self._on_workspace_images)
        self.bridge.transformChanged.connect(self._on_workspace_transform)
        self.bridge.previewChanged.connect(self._on_workspace_preview)
        self.bridge.historyChanged.connect(self._on_workspace_history)
        # A spare engine process, started when images open and after each run, so a run
        # does not wait a second for a process to start and import the engine, nor for the
        # images to go over: they are sent to it at once, aside (remote.py).
        self._images_callbacks.append(self._prewarm_engine)
        self.bridge.runsChanged.connect(lambda _runs: QtCore.QTimer.singleShot(2000, self._prewarm_engine))

    # ================================================================ reading
    def fixed_volume(self) -> Volume | None:
        return self.workspace.fixed

    def moving_volume(self) -> Volume | None:
        return self.workspace.moving

    def fixed_path(self) -> str | None:
        return getattr(self.workspace.fixed, "path", None)

    def moving_path(self) -> str | None:
        return getattr(self.workspace.moving, "path", None)

    def current_transform(self) -> sitk.Transform:
        """The current transform, mapping FIXED points to MOVING points."""
        return self.workspace.transform

    def displayed_transform(self) -> sitk.Transform:
        return self.workspace.displayed_transform

    def _prewarm_engine(self) -> None:
        # not for a window closed meanwhile (the 2 s timer after a run may fire after the close)
        if getattr(self, "_closed", False):
            return
        if self.workspace.moving is not None and "LiveRegistrationDock" in getattr(self, "panels", {}):
            from regviewer.core.registration import remote

            remote.prewarm({"fixed": self.workspace.fixed, "moving": self.workspace.moving})

    # ================================================================ commands
    def set_current_transform(self, transform: sitk.Transform, description: str = "Transform",
                              source: TransformSource | None = None) -> None:
        """Make `transform` (fixed→moving) current: one undoable step of the Workspace."""
        try:
            self.workspace.set_transform(transform, description, source)
        except RegviewerError as exc:
            self.show_error(exc)
            return
        self.show_message(f"{description}: transform updated")

    def undo(self) -> None:
        """Ctrl+Z: undo the last edit, whatever it was (a move, Apply, a landmark)."""
        description = self.workspace.undo()
        if description:
            self.show_message(f"Undid: {description}")

    def redo(self) -> None:
        description = self.workspace.redo()
        if description:
            self.show_message(f"Redid: {description}")

    # Older names, kept for scripts written against them.
    undo_transform = undo
    redo_transform = redo

    def show_preview_transform(self, transform: sitk.Transform | None) -> None:
        """Draw the overlay under `transform` (fixed→moving) without making it current.
        Redraws are coalesced: a burst of previews (mouse moves, optimiser snapshots)
        draws only the newest, as soon as the event loop is free, so the view never lags."""
        self.workspace.set_preview(transform)

    def flush_preview(self) -> None:
        """Draw a pending preview now (tests, benchmarks)."""
        if self._preview_timer.isActive():
            self._preview_timer.stop()
            self._bump_transform()

    def finish_slices(self, timeout: float = 30.0) -> None:
        """Wait for the full-resolution slices still computed in the background (tests, screenshots)."""
        self._refiner.wait(timeout)

    def set_interacting(self, active: bool) -> None:
        """While the user drags the moving image, previews resample the moving image at
        half resolution (a quarter of the work); the release redraws at full resolution."""
        if self.interacting != active:
            self.interacting = active
            if not active and self.workspace.preview is not None:
                self._bump_transform()  # the preview, now at full resolution

    # ================================================================ Workspace events
    def _on_workspace_images(self, _images) -> None:
        """Images opened on the Workspace by a script (`ws.open(...)`): show them like File > Open."""
        if not self._opening and self.workspace.fixed is not None:
            self._show_images()

    def _on_workspace_transform(self, _state) -> None:
        self._preview_timer.stop()
        self._bump_transform()
        if self._opening:
            return  # set_volumes tells the panels, images first
        self._notify(self._transform_callbacks)
        self.transformChanged.emit()
        if not self._opening:
            self.mark_modified()

    def _on_workspace_preview(self, _transform) -> None:
        if not self._preview_timer.isActive():
            self._preview_timer.start(0)

    def _on_workspace_history(self, history) -> None:
        undo, redo = getattr(self, "undo_action", None), getattr(self, "redo_action", None)
        if undo is not None:
            undo.setText(f"Undo {history.undo_text}" if history.can_undo else "Undo")
            undo.setEnabled(history.can_undo)
        if redo is not None:
            redo.setText(f"Redo {history.redo_text}" if history.can_redo else "Redo")
            redo.setEnabled(history.can_redo)

    def _notify(self, callbacks: list[Callable[[], None]]) -> None:
        """Call panel callbacks; one failing panel must not leave the window half-updated."""
        for callback in list(callbacks):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                self.show_message(f"A panel failed to update: {exc}")

    # ================================================================ panels' hooks
    def on_images_changed(self, callback: Callable[[], None]) -> None:
        self._images_callbacks.append(callback)

    def on_transform_changed(self, callback: Callable[[], None]) -> None:
        self._transform_callbacks.append(callback)

    def register_session_part(self, key: str, get_state: Callable[[], dict], set_state: Callable[[dict], None]) -> None:
        self._session_parts[key] = (get_state, set_state)

    def session_parts(self) -> dict:
        """key → (get_state, set_state), read by the session controller."""
        return dict(self._session_parts)

    def mark_modified(self) -> None:
        self.setWindowModified(True)
        self.modified.emit()

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def show_error(self, error: BaseException) -> None:
        """A non-blocking dialog with the error's message; the window stays usable."""
        text = str(error) if isinstance(error, RegviewerError) else f"Unexpected problem: {error}"
        self.last_error = text
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, "regviewer", text,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.show_message(text)
