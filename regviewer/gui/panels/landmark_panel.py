"""The landmark dock: pick pairs by clicking, see each one's error, fit live, undo.

Thin Qt over the Workspace's landmarks (`ws.landmarks`): every button is one LandmarkSet
command on the Workspace's ONE undo history (so Ctrl+Z in the window and `ws.undo()` in
Python are the same thing, and undo landmark and transform edits in order) or one
`fit(...)` call. Points in the table are physical LPS mm; fixed points live in the
fixed image's space, moving points in the moving image's space. The fit maps FIXED
points to MOVING points and, with "Apply fit live", becomes the window's current
transform after every edit. The table and its summary line are drawn by
`widgets/landmark_table.py`, files by `widgets/landmark_files.py`.

Clicks (from the host's slice views, in landmark mode, as FIXED-frame points p):
- "fixed" view: a fixed point p.
- "moving" view in the moving image's own space (Fixed | Moving layout,
  `view.space == "moving"`): the click IS the moving point, no transform involved.
- "moving" view in the fixed frame (moving image resampled by T): T(p).
- "overlay" view: a fixed point p; if the last pair still lacks its moving point, the
  click is that moving point, T(p).
T is the transform the views DRAW (`host.displayed_transform()`, a run's preview while
there is one): the anatomy under the cursor at p is the moving image at T(p). Such a
moving point inherits that alignment's through-plane error; the status bar says so.
"""

from __future__ import annotations

import time
from typing import Any

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.landmarks import model as lm
from regviewer.core.errors import LandmarkFitCancelled, RegviewerError
from regviewer.core.workspace.state import TransformSource
from regviewer.gui.background import LatestResult
from regviewer.gui.widgets.fit_progress import FitProgress
from regviewer.gui.widgets.landmark_files import LandmarkFiles
from regviewer.gui.widgets.landmark_table import LandmarkTable
from regviewer.gui.views.landmark_markers import LandmarkMarkers, PointMapper, displayed_transform

MODELS = ("translation", "rigid", "similarity", "affine", "tps", "bspline")
SLOW_FIT_SECONDS = 0.05  # fits slower than this (one frame or so) run off the GUI thread
INLINE_MAX_PAIRS = 200  # larger sets always fit off the GUI thread, with progress and Cancel


class LandmarkDock(LandmarkTable, LandmarkFiles, QtWidgets.QDockWidget):
    """Landmark table, model chooser, live fit, import/export; markers in the views."""

    edited = QtCore.pyqtSignal()  # any change to the landmark set (autosave hooks here)
    fitted = QtCore.pyqtSignal(object)  # the newest LandmarkFit, or None when a fit is impossible

    def __init__(self, host, parent: QtWidgets.QWidget | None = None) -> None:
        window = host if isinstance(host, QtWidgets.QWidget) else None
        super().__init__("Landmarks", parent or window)
        self.setObjectName("LandmarkDock")
        self.host = host
        self.fit_result = None
        self.fit_error: BaseException | None = None
        self._restoring = False
        self._connected_views: set[int] = set()
        host.bridge.landmarksChanged.connect(lambda _set: self._on_set_changed())  # the Workspace's, on the GUI thread
        self._background = getattr(host, "background", None) or LatestResult(self)
        # Deformable fits with leave-one-out take 0.1-1 s: off the GUI thread from the start;
        # other models move there once a fit took longer than SLOW_FIT_SECONDS.
        self._slow_fits: dict[str, bool] = {"tps": True, "bspline": True}
        self.markers = LandmarkMarkers(host, self._on_marker_dragged, self.select)
        self._build_ui()
        self._install_shortcuts(window or self)
        self._follow_window_mode()
        host.on_images_changed(self._on_images_changed)
        if getattr(host, "displayedTransformChanged", None) is None:  # the window's signal (see
            host.on_transform_changed(self.markers.transform_changed)  # landmark_picking) covers it
        register = getattr(host, "register_session_part", None)
        if register is not None:
            register("landmark_panel", self.panel_state, self.restore_panel_state)
        self._connect_views()
        self._refresh_all()
        # Guided picking (prompt, jump to the prediction, Esc) and the Fit / Apply buttons.
        from regviewer.gui.widgets.landmark_picking import LandmarkPicking

        self.picking = LandmarkPicking(self, host)

    # ------------------------------------------------------------------ public API
    def landmark_set(self):
        """The Workspace's LandmarkSet, which this dock edits (pairs in LPS mm)."""
        return self.host.workspace.landmarks

    @property
    def _set(self):
        return self.host.workspace.landmarks

    @property
    def model(self) -> str:
        return self.model_box.currentText()

    def set_model(self, model: str) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown landmark model {model!r}; choose one of {', '.join(MODELS)}")
        self.model_box.setCurrentText(model)

    def set_apply_live(self, on: bool) -> None:
        self.apply_live_box.setChecked(on)

    def place_fixed(self, point) -> None:
        """Give the newest pair still missing its fixed point that point, else start a pair."""
        index = self._pending("fixed")
        if index is None:
            self._set.add_pair(fixed=tuple(point))
        else:
            self._set.set_fixed(index, tuple(point))

    def place_moving(self, point) -> None:
        """Give the newest pair still missing its moving point that point (moving space)."""
        index = self._pending("moving")
        if index is None:
            self._set.add_pair(moving=tuple(point))
        else:
            self._set.set_moving(index, tuple(point))

    def handle_click(self, point, role: str, modifiers: Any = None, space: str = "fixed") -> None:
        """A landmark-mode click from a slice view; `point` is in `space` (the view's,
        LPS mm): the moving image's own space, or the fixed frame."""
        try:
            if role == "moving" and space == "moving":
                self.place_moving(point)
            elif role == "fixed" or (role != "moving" and self._pending("moving") is None):
                self.place_fixed(point)
            else:  # the moving image resampled into the fixed frame: read through T
                self.place_moving(PointMapper(displayed_transform(self.host)).to_moving(point))
                self.picking.note_fixed_frame_pick()
        except RegviewerError as exc:
            self.host.show_error(exc)

    def undo(self) -> None:
        """The Workspace's undo: the last edit, landmark or transform."""
        self.host.workspace.undo()

    def redo(self) -> None:
        self.host.workspace.redo()

    def delete_selected(self) -> None:
        index = self.selected_index()
        if index is not None:
            self._set.delete(index)

    def refit(self) -> None:
        """Fit the chosen model to the enabled pairs now (result via `fitted`)."""
        self._request_fit(apply=self.apply_live_box.isChecked())

    def wait_for_fit(self, timeout: float = 30.0) -> None:
        self._background.wait("landmark-fit", timeout)
        QtWidgets.QApplication.processEvents()

    # ---- session parts (the pairs themselves are the Workspace's)
    def panel_state(self) -> dict:
        return {"model": self.model, "apply_live": self.apply_live_box.isChecked()}

    def restore_panel_state(self, state: dict | None) -> None:
        state = state or {}
        self._restoring = True
        try:
            if state.get("model") in MODELS:
                self.set_model(state["model"])
            self.apply_live_box.setChecked(bool(state.get("apply_live", self.apply_live_box.isChecked())))
        finally:
            self._restoring = False

    # ------------------------------------------------------------------ building
    def _build_ui(self) -> None:
        body = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)

        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Model"))
        self.model_box = QtWidgets.QComboBox()
        self.model_box.addItems(MODELS)
        self.model_box.setCurrentText("affine")
        self.model_box.setToolTip("The transform fitted to the enabled pairs (it maps fixed to moving points)")
        self.model_box.currentTextChanged.connect(lambda _: self._restoring or self.refit())
        row.addWidget(self.model_box)
        self.pick_button = QtWidgets.QToolButton()
        self.pick_button.setText("Pick")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Landmark mode: click the fixed view, then the moving view, to make a pair")
        self.pick_button.toggled.connect(self._set_pick_mode)
        row.addWidget(self.pick_button)
        self.apply_live_box = QtWidgets.QCheckBox("Apply fit live")
        self.apply_live_box.setToolTip("Make the fit the current transform after every edit")
        self.apply_live_box.toggled.connect(lambda on: on and not self._restoring and self.refit())
        row.addWidget(self.apply_live_box)
        row.addStretch(1)
        layout.addLayout(row)

        self._build_table(layout)  # the pairs, their errors and the summary line
        self.fit_progress = FitProgress()  # "Fitting… (n pairs)" and Cancel, for fits that take a while
        layout.addWidget(self.fit_progress)

        buttons = QtWidgets.QHBoxLayout()
        for text, slot, tip in (
            ("Delete", self.delete_selected, "Delete the selected pair"),
            ("Up", lambda: self._move_selected(-1), "Move the selected pair up"),
            ("Down", lambda: self._move_selected(1), "Move the selected pair down"),
            ("Undo", self.undo, "Undo the last landmark edit (Ctrl+Z)"),
            ("Redo", self.redo, "Redo (Ctrl+Shift+Z)"),
            ("Import…", self._import_dialog, "Load landmarks (CSV, BigWarp, Slicer .mrk.json / .fcsv)"),
            ("Export…", self._export_dialog, "Save landmarks, or the fitted transform (.tfm/.h5)"),
        ):
            button = QtWidgets.QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.setWidget(body)

    def _set_pick_mode(self, on: bool) -> None:
        set_mode = getattr(self.host, "set_interaction_mode", None)
        if set_mode is None:
            return
        mode = getattr(self.host, "interaction_mode", None)
        if on and mode != "landmark":
            set_mode("landmark")
        elif not on and mode == "landmark":
            set_mode("navigate")

    def _follow_window_mode(self) -> None:
        """Keep the Pick button in step with the window's own landmark-mode action."""
        actions = getattr(self.host, "mode_actions", None)
        action = actions.get("landmark") if isinstance(actions, dict) else None
        if action is not None:
            action.toggled.connect(self.pick_button.setChecked)

    def _install_shortcuts(self, window: QtWidgets.QWidget) -> None:
        # Ctrl+Z / Ctrl+Shift+Z belong to the window's Edit menu (one history for every edit).
        self.delete_shortcut = QtGui.QShortcut(QtGui.QKeySequence.StandardKey.Delete, self.table)
        self.delete_shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetShortcut)
        self.delete_shortcut.activated.connect(self.delete_selected)

    # ------------------------------------------------------------------ model plumbing
    def _pending(self, missing: str) -> int | None:
        """The newest pair whose `missing` point ("fixed" or "moving") is not yet placed."""
        other = "moving" if missing == "fixed" else "fixed"
        pairs = self._set.pairs
        if pairs and getattr(pairs[-1], missing) is None and getattr(pairs[-1], other) is not None:
            return len(pairs) - 1
        return None

    def _move_selected(self, step: int) -> None:
        index = self.selected_index()
        if index is None:
            return
        target = index + step
        if 0 <= target < len(self._set.pairs):
            self._set.move_pair(index, target)
            self.select(target)

    def _on_set_changed(self) -> None:
        self._refresh_all()
        ws = self.host.workspace
        if not self._restoring and not ws.loading and (ws.replaying or ws.history.can_undo):  # an edit
            self.host.mark_modified()
            self.edited.emit()
        # Undo/redo replays a landmark edit: refit for display, but a new "Landmark fit"
        # step would wipe the redo history.
        # (Nor may loading a session or opening images move the transform.)
        quiet = self._restoring or ws.replaying or ws.loading
        self._request_fit(apply=self.apply_live_box.isChecked() and not quiet)

    def _request_fit(self, apply: bool) -> None:
        self._apply_next = apply
        reference = self.host.fixed_volume()
        reference = reference.sitk if reference is not None else None
        snapshot, model = lm.LandmarkSet.from_dict(self._set.to_dict()), self.model  # the worker's own copy
        n_pairs = sum(1 for p in snapshot.pairs if p.enabled and p.complete)
        inline = not self._slow_fits.get(model) and n_pairs <= INLINE_MAX_PAIRS
        if inline:
            self.fit_progress.finish()
            progress = None
        else:
            cancel = self.fit_progress.start(n_pairs)  # and cancels the fit this one supersedes
            if self.fit_error is not None:  # an old "too few pairs" would read as this fit's outcome
                self.fit_error = None
                self.summary.setText(self._summary_text())
            progress = lambda done, total: self.fit_progress.report(cancel, done, total)  # noqa: E731

        def work():
            start = time.perf_counter()
            try:
                return lm.fit(snapshot, model, reference=reference, progress=progress)
            except RegviewerError:
                raise
            except Exception as exc:  # never let a numeric failure escape into Qt
                raise RegviewerError(f"The {model} fit failed: {exc}") from None
            finally:
                self._slow_fits[model] = time.perf_counter() - start > SLOW_FIT_SECONDS

        self._background.submit("landmark-fit", work, self._on_fit_done, inline=inline)

    def _on_fit_done(self, result, error) -> None:
        self.fit_progress.finish()
        if isinstance(error, LandmarkFitCancelled):
            error = RegviewerError("The fit was cancelled; press Fit to fit again.")
        elif error is not None and not isinstance(error, RegviewerError):
            error = RegviewerError(f"The landmark fit failed: {error}")
        self.fit_result, self.fit_error = result, error
        self._refresh_all()
        self.fitted.emit(result)
        if result is not None and getattr(self, "_apply_next", False):
            try:
                self.host.workspace.set_transform(result.transform, "Landmark fit",
                                                  TransformSource("landmark-fit", model=result.model))
            except RegviewerError as exc:
                self.host.show_error(exc)

    # ------------------------------------------------------------------ view plumbing
    def _connect_views(self) -> None:
        for view in self.host.slice_views() or []:
            if id(view) in self._connected_views:
                continue
            self._connected_views.add(id(view))
            clicked = getattr(view, "clicked", None)
            if clicked is not None:
                clicked.connect(lambda point, role, mods, v=view: self.handle_click(
                    point, role, mods, getattr(v, "space", "fixed")))
            changed = getattr(view, "sliceChanged", None)
            if changed is not None:
                changed.connect(lambda v=view: self.markers.refresh_view(v))

    def _on_images_changed(self) -> None:
        self._connect_views()
        self.markers.refresh()

    def _on_marker_dragged(self, index: int, which: str, point: tuple) -> None:
        if 0 <= index < len(self._set.pairs):
            (self._set.set_fixed if which == "fixed" else self._set.set_moving)(index, point)

    def shutdown(self) -> None:
        """Stop the fit worker (the window calls this when it closes)."""
        if self._background.parent() is self:
            self._background.shutdown()
