"""The main window: layout, views and menus over one `Workspace` (images, the current
fixed→moving transform, landmarks, runs, one undo history), which it observes through the
Qt bridge; `window_host.py` implements `gui.host.RegistrationHost` for the panels.

Everything it draws comes from `core` (`view_state.slice_pair/render_slice`); every
redraw resamples only the planes on screen, and the fixed image's slices are cached
because they never change with the transform. Menus, toolbars and layouts live in
`window_chrome.py`, which view shows what in each layout in `window_layout.py`, file
dialogs in `file_actions.py`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import check_compatible
from regviewer.core.imaging.slicing import ORIENTATIONS, planes_for
from regviewer.core.imaging.slice_cache import SliceCache
from regviewer.core.workspace.view_state import render_slice
from regviewer.gui import file_actions
from regviewer.gui import window_chrome
from regviewer.gui import window_panels
from regviewer.gui.panels.manual_align import ManualAlignDock
from regviewer.gui.views.moving_space import MovingSpace
from regviewer.gui.views.overlay import OverlayController
from regviewer.gui.views.roi_item import RoiController
from regviewer.gui.views.slice_refiner import COARSE_FACTOR, SliceRefiner
from regviewer.gui.views.slice_view import SliceView
from regviewer.gui.views.volume_view import make_volume_view
from regviewer.gui.window_display import INTERACTION_MODES, WindowDisplayMixin
from regviewer.gui.window_host import WorkspaceHostMixin
from regviewer.gui.window_layout import WindowLayoutMixin

PREVIEW_FACTOR = 2  # moving-image resolution divisor while the user drags it


class MainWindow(WorkspaceHostMixin, WindowLayoutMixin, WindowDisplayMixin, QtWidgets.QMainWindow):
    """The regviewer window (see the module docstring)."""

    modified = QtCore.pyqtSignal()
    imagesChanged = QtCore.pyqtSignal()
    transformChanged = QtCore.pyqtSignal()
    displayedTransformChanged = QtCore.pyqtSignal()  # current or preview: what the views draw

    def __init__(self, sessions: bool = True, panels: bool = True, workspace=None) -> None:
        super().__init__()
        self.setWindowTitle("regviewer[*]")
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self._cursor: tuple[float, ...] | None = None
        self._wl: dict[str, tuple[float, float]] = {}
        self.wl_target = "fixed"
        self.interaction_mode = "navigate"
        self.layout_name = "1x3+3d"
        self.focus_orientation = "axial"
        self._slices = SliceCache()
        self._pool: list[SliceView] = []  # three views, re-used (new role/plane) by every layout
        self._planes: dict = {}
        self._shown: list[SliceView] = []
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog
        self.choose_dicom_series: Callable[[str, list], str | None] = lambda folder, series: file_actions.ask_dicom_series(self, folder, series)

        self.interacting = False
        self._init_workspace(workspace)
        self._refiner = SliceRefiner(self.background, self._slices, parent=self)  # B-spline slices off the GUI thread
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
        if self.workspace.fixed is not None:  # a Workspace opened before the window (the `open` command)
            self._show_images()

    # ================================================================ views for the panels
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

    # ================================================================ images
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
        """Show two already-read images; the Workspace resets the transform to identity,
        empties landmarks and runs and clears the undo history."""
        self._opening = True
        try:
            self.workspace.open(fixed, moving)
        finally:
            self._opening = False
        self._show_images()

    def _show_images(self) -> None:
        """Views, window/level and panels for the Workspace's images."""
        fixed, moving = self.workspace.fixed, self.workspace.moving
        self._slices.set_images(fixed, moving)
        self._wl = {"fixed": fixed.default_window_level()}
        if moving is not None:
            self._wl["moving"] = moving.default_window_level()
        window_chrome.sync_window_presets(self)
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
        self._planes = planes_for(self.workspace.fixed)
        if not self._pool:
            for orientation in ORIENTATIONS:
                view = SliceView("overlay", planes_for(self.workspace.fixed)["axial"], self._render_view,
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

    # ================================================================ drawing
    def _render_view(self, view: SliceView) -> np.ndarray:
        """RGB slice for one view: only this plane is resampled (fixed slices cached)."""
        if self.workspace.fixed is None:
            return np.zeros((1, 1, 3), np.uint8)
        if view.space == "moving":
            return self.moving_space.render(view)
        plane, depth = view.plane, view.depth
        fixed_raw = self._slices.fixed_slice(plane, depth)
        moving_raw = None
        if view.role != "fixed":
            transform = self.displayed_transform()
            factor = PREVIEW_FACTOR if (self.interacting and self.workspace.preview is not None) else 1
            moving_raw = self._slices.cached_moving(plane, depth, factor)
            if moving_raw is None and factor == 1 and self._refiner.wanted(plane, transform):
                # a costly (non-linear) transform: a coarse slice now, the full one from the background
                moving_raw = self._slices.moving_slice(plane, depth, transform, COARSE_FACTOR)
                self._refiner.request(view, plane, depth, transform)
            elif moving_raw is None:
                moving_raw = self._slices.moving_slice(plane, depth, transform, factor)
        rgb = render_slice(view.role, fixed_raw, moving_raw, self._wl.get("fixed", (1.0, 0.5)),
                           self._wl.get("moving", (1.0, 0.5)), self.overlay.settings,
                           plane.spacing, self.overlay.flicker_shows)
        if view.role == "overlay" and self._volume_view is not None and self.layout_name == "1x3+3d":
            self._volume_view.set_plane_image(plane.orientation, plane, depth, rgb)
        return rgb

    def _bump_transform(self) -> None:
        """The displayed transform changed: resample the visible moving slices. Under a
        costly transform a view keeps its picture until its new slice comes from the
        background (`SliceRefiner`): one redraw per snapshot of a live run, not two."""
        self._slices.transform_changed()
        transform = self.displayed_transform()
        for view in self.visible_slice_views():
            if view.role != "fixed" and view.space == "fixed":
                if view.last_image is not None and not self.interacting and self._refiner.wanted(view.plane, transform):
                    self._refiner.request(view, view.plane, view.depth, transform)
                else:
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
        if self._volume_view is not None and self.workspace.fixed is not None and self.layout_name == "1x3+3d":
            self._volume_view.schedule_render()

    # ================================================================ manual alignment, status
    def _on_manual_drag(self, view: SliceView, kind: str, start, now, finished: bool) -> None:
        if self.workspace.moving is None or view.space != "fixed":
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
                           "window_level": "Window/level: drag right for a wider window (less contrast), "
                                           "down for a higher level (darker)",
                           "landmark": "Landmarks: click the fixed view, then the moving view",
                           "roi": "Region of interest: drag a box (or paint) in a slice view; runs look only there"}[mode])

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
        self._closed = True
        if "LiveRegistrationDock" in getattr(self, "panels", {}):
            from regviewer.core.registration import remote

            remote.discard_spare()  # a waiting engine process (about 150 MB) has no window to serve now
        super().closeEvent(event)

    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, title, text)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

