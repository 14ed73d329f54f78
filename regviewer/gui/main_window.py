"""The main window: owns the images, the current fixed→moving transform, the linked
cursor and the views, and implements `gui.host.RegistrationHost` for the panels.

Everything it draws comes from `core` (`view_state.slice_pair/render_slice`); every
redraw resamples only the planes on screen, and the fixed image's slices are cached
because they never change with the transform. Menus, toolbars and layouts live in
`window_chrome.py`, file dialogs in `file_actions.py`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.composite import to_rgb
from regviewer.core.errors import RegviewerError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import check_compatible
from regviewer.core.imaging.slicing import ORIENTATIONS, planes_for
from regviewer.core.imaging.slice_cache import SliceCache
from regviewer.core.workspace.view_state import LAYOUTS, ViewState, adjust_window, preset_window, render_slice
from regviewer.gui import file_actions
from regviewer.gui import window_chrome
from regviewer.gui import window_panels
from regviewer.gui.panels.manual_align import ManualAlignDock
from regviewer.gui.views.moving_space import MovingSpace
from regviewer.gui.views.overlay import OverlayController
from regviewer.gui.views.roi_item import RoiController
from regviewer.gui.views.slice_view import SliceView
from regviewer.gui.views.volume_view import make_volume_view

INTERACTION_MODES = ("navigate", "window_level", "landmark", "roi")
PREVIEW_FACTOR = 2  # moving-image resolution divisor while the user drags it


class MainWindow(QtWidgets.QMainWindow):
    """The regviewer window (see the module docstring)."""

    modified = QtCore.pyqtSignal()
    imagesChanged = QtCore.pyqtSignal()
    transformChanged = QtCore.pyqtSignal()
    displayedTransformChanged = QtCore.pyqtSignal()  # current or preview: what the views draw

    def __init__(self, sessions: bool = True, panels: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("regviewer[*]")
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self._fixed: Volume | None = None
        self._moving: Volume | None = None
        self._transform: sitk.Transform = sitk.Transform(3, sitk.sitkIdentity)
        self._preview: sitk.Transform | None = None
        self._history: list[tuple[sitk.Transform, str]] = []
        self._redo: list[tuple[sitk.Transform, str]] = []
        self._cursor: tuple[float, ...] | None = None
        self._wl: dict[str, tuple[float, float]] = {}
        self.wl_target = "fixed"
        self.interaction_mode = "navigate"
        self.layout_name = "1x3+3d"
        self.focus_orientation = "axial"
        self._images_callbacks: list[Callable[[], None]] = []
        self._transform_callbacks: list[Callable[[], None]] = []
        self._session_parts: "OrderedDict[str, tuple[Callable[[], dict], Callable[[dict], None]]]" = OrderedDict()
        self._slices = SliceCache()
        self._pool: list[SliceView] = []  # three views, re-used (new role/plane) by every layout
        self._planes: dict = {}
        self._shown: list[SliceView] = []
        self.last_error: str | None = None
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog
        self.choose_dicom_series: Callable[[str, list], str | None] = lambda folder, series: file_actions.ask_dicom_series(self, folder, series)

        self.interacting = False
        self._preview_timer = QtCore.QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.timeout.connect(self._bump_transform)
        self.overlay = OverlayController(self)
        self.overlay.changed.connect(self._on_overlay_changed)
        self._views_widget = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(self._views_widget)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._placeholder = QtWidgets.QLabel("Open a fixed and a moving image (File menu, drag-and-drop, "
                                             "or `regviewer FIXED MOVING`).")
        self._placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._grid.addWidget(self._placeholder, 0, 0)
        self._volume_widget, self._volume_view = make_volume_view(self._views_widget)
        self._volume_widget.hide()
        self.setCentralWidget(self._views_widget)
        self.manual_dock = ManualAlignDock(self, self)
        window_chrome.build(self)
        self.moving_space = MovingSpace(self)  # Fixed | Moving: the moving image in its own space
        self.addToolBar(self.moving_space.toolbar)
        self.roi = RoiController(self)  # region of interest drawn in the views: the runs' fixed mask
        self.addToolBar(self.roi.toolbar)
        self.statusBar().showMessage("Ready")
        self._right_docks: list[QtWidgets.QDockWidget] = []
        self.add_panel(self.manual_dock)
        self.register_session_part("view", self.view_state_json, self.restore_view_state)
        self.panels: dict[str, QtWidgets.QDockWidget] = {}
        self.session_controller = None
        if panels:
            window_panels.add_optional_panels(self)
        if sessions:
            window_panels.install_session_controller(self)

    # ================================================================ RegistrationHost
    def fixed_volume(self) -> Volume | None:
        return self._fixed

    def moving_volume(self) -> Volume | None:
        return self._moving

    def current_transform(self) -> sitk.Transform:
        """The current transform, mapping FIXED points to MOVING points."""
        return self._transform

    def set_current_transform(self, transform: sitk.Transform, description: str = "Transform") -> None:
        """Make `transform` (fixed→moving) current: one undoable step; redraw and notify."""
        if self._fixed is not None and transform.GetDimension() != self._fixed.dimension:
            self.show_error(RegviewerError(
                f"The transform '{description}' is {transform.GetDimension()}D but the images are {self._fixed.dimension}D"))
            return
        self._history.append((self._transform, description))
        del self._history[:-50]
        self._redo.clear()
        self._apply_transform(transform)
        self.show_message(f"{description}: transform updated")

    def _apply_transform(self, transform: sitk.Transform) -> None:
        self._transform = transform
        self._preview = None
        self._preview_timer.stop()
        self._bump_transform()
        self._notify(self._transform_callbacks)
        self.transformChanged.emit()
        self.mark_modified()

    def _notify(self, callbacks: list[Callable[[], None]]) -> None:
        """Call panel callbacks; one failing panel must not leave the window half-updated."""
        for callback in list(callbacks):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                self.show_message(f"A panel failed to update: {exc}")

    def undo_transform(self) -> None:
        if self._history:
            previous, description = self._history.pop()
            self._redo.append((self._transform, description))
            self._apply_transform(previous)
            self.show_message(f"Undid: {description}")

    def redo_transform(self) -> None:
        if self._redo:
            nxt, description = self._redo.pop()
            self._history.append((self._transform, description))
            self._apply_transform(nxt)
            self.show_message(f"Redid: {description}")

    def show_preview_transform(self, transform: sitk.Transform | None) -> None:
        """Draw the overlay under `transform` (fixed→moving) without making it current.
        Redraws are coalesced: a burst of previews (mouse moves, optimiser snapshots)
        draws only the newest, as soon as the event loop is free, so the view never lags."""
        if transform is None and self._preview is None:
            return
        self._preview = transform
        if not self._preview_timer.isActive():
            self._preview_timer.start(0)

    def flush_preview(self) -> None:
        """Draw a pending preview now (tests, benchmarks)."""
        if self._preview_timer.isActive():
            self._preview_timer.stop()
            self._bump_transform()

    def set_interacting(self, active: bool) -> None:
        """While the user drags the moving image, previews resample the moving image at
        half resolution (a quarter of the work); the release redraws at full resolution."""
        if self.interacting != active:
            self.interacting = active
            if not active and self._preview is not None:
                self._bump_transform()  # the preview, now at full resolution

    def displayed_transform(self) -> sitk.Transform:
        return self._preview if self._preview is not None else self._transform

    def slice_views(self) -> list[SliceView]:
        """The views on screen, then the window's other (hidden) views: there are only
        three SliceView objects, re-used by every layout with a new `role`/`plane` (each
        change emits `sliceChanged`), so a panel that connects to these once, when images
        change, hears every view the user will ever see."""
        shown = self.visible_slice_views()
        return shown + [v for v in self._pool if v not in shown]

    def visible_slice_views(self) -> list[SliceView]:
        """The slice views of the current layout (on screen)."""
        return list(self._shown)

    def all_slice_views(self) -> list[SliceView]:
        return list(self._pool)

    def volume_view(self):
        return self._volume_view

    def center_on(self, point_lps) -> None:
        """Move the linked crosshair (and every view's slice) to a physical LPS point."""
        self._cursor = tuple(float(x) for x in point_lps)
        for view in self._pool:
            if view.space == "fixed":
                view.set_cursor(self._cursor)
        self.moving_space.follow_fixed(self._cursor)
        self._update_3d()
        self._show_position(self._cursor)

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

    # ================================================================ images
    def fixed_path(self) -> str | None:
        return self._fixed.path if self._fixed is not None else None

    def moving_path(self) -> str | None:
        return self._moving.path if self._moving is not None else None

    def open_images(self, fixed, moving=None) -> bool:
        """Open a fixed (and optionally a moving) image: paths, DICOM folders or Volumes.
        Errors are shown in a dialog and leave the previous images in place."""
        try:
            fixed_vol = fixed if isinstance(fixed, Volume) else (file_actions.read_with_chooser(self, fixed) if fixed else None)
            if fixed_vol is None:
                return False
            moving_vol = moving if isinstance(moving, Volume) else (file_actions.read_with_chooser(self, moving) if moving else None)
            if moving_vol is not None:
                check_compatible(fixed_vol, moving_vol)
        except RegviewerError as exc:
            self.show_error(exc)
            return False
        self.set_volumes(fixed_vol, moving_vol)
        file_actions.remember_pair(fixed_vol.path, moving_vol.path if moving_vol else None)
        return True

    def set_volumes(self, fixed: Volume, moving: Volume | None) -> None:
        """Show two already-read images; the transform resets to identity."""
        self._fixed, self._moving = fixed, moving
        self._transform = sitk.Transform(fixed.dimension, sitk.sitkIdentity)
        self._preview = None
        self._history.clear()
        self._redo.clear()
        self._slices.set_images(fixed, moving)
        self._wl = {"fixed": fixed.default_window_level()}
        if moving is not None:
            self._wl["moving"] = moving.default_window_level()
        self._cursor = fixed.center_physical()
        self._build_views()
        names = fixed.name + (f"  ←  {moving.name}" if moving else "")
        self.setWindowTitle(f"regviewer — {names}[*]")
        if self._volume_view is not None:
            self._volume_view.set_bounds(fixed.corners_physical())
        self._notify(self._images_callbacks)
        self.imagesChanged.emit()
        self._notify(self._transform_callbacks)
        self.apply_layout(self.layout_name)
        self.visible_slice_views()[0].setFocus()  # keys (slice scroll, overlay modes) go to the views, not a field
        for warning in fixed.warnings + (moving.warnings if moving else []):
            self.show_message(warning)

    # ================================================================ views and layouts
    def _build_views(self) -> None:
        """Make the three pooled views (once) and give them this image's planes."""
        self._planes = planes_for(self._fixed)
        if not self._pool:
            for orientation in ORIENTATIONS:
                view = SliceView("overlay", planes_for(self._fixed)["axial"], self._render_view,
                                 lambda: self.interaction_mode, self._views_widget)
                self.moving_space.connect_view(view)  # cursor requests, routed by the view's space
                view.hovered.connect(self._show_position)
                view.manualDrag.connect(lambda kind, a, b, done, v=view: self._on_manual_drag(v, kind, a, b, done))
                view.windowLevelDrag.connect(lambda dx, dy, v=view: self._on_wl_drag(v, dx, dy))
                view.sliceChanged.connect(self._update_3d)
                view.hide()
                self._pool.append(view)
        self._shown = []
        for view, (role, orientation) in zip(self._pool, self._assignments(all_views=True)):
            self._assign(view, role, orientation)
        self._placeholder.hide()

    def _assign(self, view: SliceView, role: str, orientation: str) -> None:
        if role == "moving" and self.moving_space.assign(view, orientation):
            return
        view.space = "fixed"
        plane = self._planes[orientation]
        if view.role != role or view.plane != plane:
            view.set_role(role)
            view.set_plane(plane, depth=plane.depth_of(self._cursor) if plane.dimension == 3 else 0.0)
        view.set_cursor(self._cursor)

    def _orientations(self) -> list[str]:
        if self._fixed is None:
            return []
        return ["axial"] if self._fixed.dimension == 2 else list(ORIENTATIONS)

    def _assignments(self, all_views: bool = False) -> list[tuple[str, str]]:
        """(role, orientation) of each pooled view in the current layout (shown views
        first); with `all_views`, hidden pool views get a sensible assignment too."""
        if self._fixed is None:
            return []
        focus = self.focus_orientation if self.focus_orientation in self._orientations() else "axial"
        if self.layout_name == "side_by_side":
            shown = [("fixed", focus), ("moving", focus)]
        elif self.layout_name == "single" or self._fixed.dimension == 2:
            shown = [("overlay", focus)]
        else:
            shown = [("overlay", o) for o in ORIENTATIONS]
        if not all_views:
            return shown
        rest = [("overlay", o) for o in self._orientations() if ("overlay", o) not in shown]
        return (shown + rest + [("overlay", focus)] * 3)[:3]

    def apply_layout(self, name: str, orientation: str | None = None) -> None:
        """"1x3+3d" (axial, coronal, sagittal and 3D), "single" (one large overlay view)
        or "side_by_side" (fixed | moving, each in its own space: `gui.views.moving_space`)."""
        if name not in LAYOUTS:
            self.show_error(RegviewerError(f"Unknown layout '{name}'; choose one of {', '.join(LAYOUTS)}"))
            return
        self.layout_name = name
        if orientation is not None:
            self.focus_orientation = orientation
        window_chrome.sync_layout_actions(self)
        if self._fixed is None:
            return
        while self._grid.count():
            self._grid.takeAt(0)
        for view in self._pool:
            view.hide()
        self._volume_widget.hide()
        keys = self._assignments()
        assignments = self._assignments(all_views=True)
        for view, (role, orientation) in zip(self._pool, assignments):
            self._assign(view, role, orientation)
        self._shown = self._pool[: len(keys)]
        positions = [(0, 0), (0, 1), (1, 0)] if len(keys) == 3 else [(0, i) for i in range(len(keys))]
        for view, (r, c) in zip(self._shown, positions):
            self._grid.addWidget(view, r, c)
            view.show()
        if len(keys) == 3:
            self._grid.addWidget(self._volume_widget, 1, 1)
            self._volume_widget.show()
        for r in range(2):
            self._grid.setRowStretch(r, 1 if (len(keys) == 3 or r == 0) else 0)
        for c in range(3):
            self._grid.setColumnStretch(c, 1 if c < max(2, len(keys)) and c < (2 if len(keys) == 3 else len(keys)) else 0)
        self._sync_curtain()
        for view in self.visible_slice_views():
            view.refresh()
            view.sliceChanged.emit()  # panels redraw their markers in newly shown views
        self._update_3d()

    def views_widget(self) -> QtWidgets.QWidget:
        return self._views_widget

    def view(self, role: str, orientation: str = "axial") -> SliceView:
        """The view on screen with this role and orientation (KeyError if none)."""
        for view in self._shown:
            if view.role == role and view.plane.orientation == orientation:
                return view
        raise KeyError(f"no {role} {orientation} view in the {self.layout_name} layout")

    # ================================================================ drawing
    def _render_view(self, view: SliceView) -> np.ndarray:
        """RGB slice for one view: only this plane is resampled (fixed slices cached)."""
        if self._fixed is None:
            return np.zeros((1, 1, 3), np.uint8)
        if view.space == "moving":
            return self.moving_space.render(view)
        plane, depth = view.plane, view.depth
        fixed_raw = self._slices.fixed_slice(plane, depth)
        moving_raw = None
        if view.role != "fixed":
            factor = PREVIEW_FACTOR if (self.interacting and self._preview is not None) else 1
            moving_raw = self._slices.moving_slice(plane, depth, self.displayed_transform(), factor)
        rgb = render_slice(view.role, fixed_raw, moving_raw, self._wl.get("fixed", (1.0, 0.5)),
                           self._wl.get("moving", (1.0, 0.5)), self.overlay.settings,
                           plane.spacing, self.overlay.flicker_shows)
        if view.role == "overlay" and self._volume_view is not None and self.layout_name == "1x3+3d":
            self._volume_view.set_plane_image(plane.orientation, plane, depth, to_rgb(rgb))
        return rgb

    def _bump_transform(self) -> None:
        """The displayed transform changed: resample the visible moving slices."""
        self._slices.transform_changed()
        for view in self.visible_slice_views():
            if view.role != "fixed" and view.space == "fixed":
                view.refresh()
        self.displayedTransformChanged.emit()

    def refresh_views(self) -> None:
        for view in self.visible_slice_views():
            view.refresh()

    def _on_overlay_changed(self) -> None:
        self._sync_curtain()
        for view in self.visible_slice_views():
            if view.role == "overlay":
                view.refresh()

    def _sync_curtain(self) -> None:
        on = self.overlay.mode == "curtain"
        for view in self._pool:
            if view.role == "overlay" and on and view in self._shown:
                view.set_curtain(self.overlay.settings.curtain_position,
                                 lambda pos: self.overlay.set_parameter(curtain_position=pos))
            else:
                view.set_curtain(None)

    def _update_3d(self) -> None:
        if self._volume_view is not None and self._fixed is not None and self.layout_name == "1x3+3d":
            self._volume_view.schedule_render()

    # ================================================================ window/level
    def window_level(self, which: str) -> tuple[float, float] | None:
        return self._wl.get(which)

    def set_window_level(self, which: str, window: float, level: float) -> None:
        self._wl[which] = (float(window), float(level))
        self.refresh_views()
        self.show_message(f"{which} window {window:.1f}, level {level:.1f}")

    def apply_window_preset(self, name: str) -> None:
        volume = self._fixed if self.wl_target == "fixed" else self._moving
        if volume is None:
            return
        try:
            self.set_window_level(self.wl_target, *preset_window(volume, name))
        except RegviewerError as exc:
            self.show_error(exc)

    def _on_wl_drag(self, view: SliceView, dx: float, dy: float) -> None:
        which = view.role if view.role in ("fixed", "moving") else self.wl_target
        volume = self._fixed if which == "fixed" else self._moving
        if volume is None or which not in self._wl:
            return
        scale = volume.default_window_level()[0] / 256.0
        self._wl[which] = adjust_window(*self._wl[which], dx, dy, scale)
        self.refresh_views()

    # ================================================================ manual alignment, status
    def _on_manual_drag(self, view: SliceView, kind: str, start, now, finished: bool) -> None:
        if self._moving is None or view.space != "fixed":
            return  # a drag in the moving image's own space is not a fixed-frame motion
        axis = view.plane.n if view.plane.dimension == 3 else (0.0, 0.0, 1.0)
        pivot = self._cursor if self._cursor is not None else start
        self.manual_dock.drag(kind, start, now, finished, axis, pivot)

    def set_interaction_mode(self, mode: str) -> None:
        if mode not in INTERACTION_MODES:
            raise ValueError(f"unknown interaction mode {mode!r}")
        self.interaction_mode = mode
        window_chrome.sync_mode_actions(self)
        self.show_message({"navigate": "Navigate: click or drag to move the crosshair",
                           "window_level": "Window/level: drag left-right for width, up-down for level",
                           "landmark": "Landmarks: click the fixed view, then the moving view",
                           "roi": "Region of interest: drag a box (or paint) in a slice view; runs look only there"}[mode])

    def _show_position(self, point) -> None:
        if self._fixed is None or point is None:
            return
        parts = ["(" + ", ".join(f"{x:.1f}" for x in point) + ") mm LPS"]
        f = self._fixed.value_at(point)
        parts.append(f"fixed {_fmt(f)}")
        if self._moving is not None:
            try:
                q = self.displayed_transform().TransformPoint(tuple(float(x) for x in point))
                parts.append(f"moving {_fmt(self._moving.value_at(q))}")
            except RuntimeError:
                parts.append("moving —")
        self.position_label.setText("   ".join(parts))

    # ================================================================ view state (session part "view")
    def view_state(self) -> ViewState:
        return ViewState(layout=self.layout_name, overlay=self.overlay.settings,
                         fixed_window=self._wl.get("fixed"), moving_window=self._wl.get("moving"),
                         cursor=self._cursor)

    def view_state_json(self) -> dict:
        data = self.view_state().to_json()
        data["focus_orientation"] = self.focus_orientation
        data["interaction_mode"] = self.interaction_mode
        return data

    def restore_view_state(self, data: dict) -> None:
        try:
            state = ViewState.from_json(data or {})
        except (RegviewerError, TypeError, ValueError) as exc:
            self.show_error(RegviewerError(f"The saved view state could not be used: {exc}"))
            return
        self.overlay.set_settings(state.overlay)
        if state.fixed_window and self._fixed is not None:
            self._wl["fixed"] = state.fixed_window
        if state.moving_window and self._moving is not None:
            self._wl["moving"] = state.moving_window
        self.apply_layout(state.layout, data.get("focus_orientation"))
        if data.get("interaction_mode") in INTERACTION_MODES:
            self.set_interaction_mode(data["interaction_mode"])
        if state.cursor is not None and self._fixed is not None:
            self.center_on(state.cursor)

    # ================================================================ panels and sessions
    def add_panel(self, dock: QtWidgets.QDockWidget,
                  area: QtCore.Qt.DockWidgetArea = QtCore.Qt.DockWidgetArea.RightDockWidgetArea) -> None:
        """Add a dock; docks on the right are tabbed together."""
        self.addDockWidget(area, dock)
        if area == QtCore.Qt.DockWidgetArea.RightDockWidgetArea:
            if self._right_docks:
                self.tabifyDockWidget(self._right_docks[0], dock)
            self._right_docks.append(dock)
        window_chrome.add_panel_toggle(self, dock)

    def right_docks(self) -> list[QtWidgets.QDockWidget]:
        return list(self._right_docks)

    # ================================================================ Qt events
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        file_actions.handle_dropped_paths(self, paths)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        self.overlay.stop()
        if self._volume_view is not None:
            self._volume_view.close_vtk()
        super().closeEvent(event)

    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, title, text)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.0f}" for v in value) + ")"
    return f"{value:.4g}"
