"""The moving image in its own physical space (the Fixed | Moving layout's right view).

BigWarp's way: the moving view shows the MOVING image on planes of the moving image's
own grid (`core.imaging.slicing.planes_for(moving)`), with its own cursor, slice and
zoom, so a point clicked there is a moving-space point with its own depth, not the
fixed slice's depth carried through the transform. Such a view has `space == "moving"`:
everything it reports (clicks, crosshair, hover) is in moving LPS mm.

"Link" couples the two cursors through the current transform T (fixed→moving):
the fixed cursor p puts the moving cursor at T(p); moving the moving cursor to q puts
the fixed cursor at T⁻¹(q) (`core.transforms.points.map_points`). Unlinked, each
image is navigated on its own. `jump_to` (the picking flow) moves only the moving side.

The window calls four hooks: `connect_view` (once per pooled view), `assign` (a view
gets the moving role), `render` (its slice) and `follow_fixed` (the fixed cursor moved).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.slice_cache import SliceCache
from regviewer.core.imaging.slicing import ORIENTATIONS, planes_for
from regviewer.core.transforms.points import map_points
from regviewer.core.workspace.view_state import render_slice

if TYPE_CHECKING:
    from regviewer.gui.main_window import MainWindow
    from regviewer.gui.views.slice_view import SliceView

SAME_PLANE = "as fixed"


class MovingSpace(QtCore.QObject):
    """Cursor, planes and slices of the moving image in its own space (module docstring)."""

    cursorMoved = QtCore.pyqtSignal(object)  # the moving cursor, moving LPS mm

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self.linked = True
        self.orientation = SAME_PLANE  # the moving view's plane, or the fixed side's
        self.cursor: tuple[float, ...] | None = None
        self._volume = None
        self._planes: dict = {}
        self._slices = SliceCache(fixed_slices=32)  # the moving image's own slices never depend on T
        self._following = False
        self.toolbar = self._build_toolbar()
        window.on_transform_changed(self._on_transform_changed)
        window.register_session_part("moving_view", self.state, self.restore_state)

    # ------------------------------------------------------------------ window hooks
    def connect_view(self, view: "SliceView") -> None:
        """Route a pooled view's cursor requests by the space it shows (the window's own
        hover read-out runs first; a moving-space view then overwrites it)."""
        view.cursorRequested.connect(lambda p, v=view: self._cursor_requested(v, p))
        view.hovered.connect(lambda p, v=view: getattr(v, "space", "fixed") == "moving" and self._show_position(p))

    def assign(self, view: "SliceView", orientation: str) -> bool:
        """Give `view` the moving role in the moving image's own space; False when there
        is no moving image (the window then shows the fixed frame as before)."""
        moving = self.window.moving_volume()
        if moving is None:
            return False
        self._sync_volume(moving)
        if self.orientation != SAME_PLANE and self.orientation in self._planes:
            orientation = self.orientation
        plane = self._planes.get(orientation) or next(iter(self._planes.values()))
        view.space = "moving"
        if view.role != "moving" or view.plane != plane:
            view.set_role("moving")
            view.set_plane(plane, depth=plane.depth_of(self.cursor) if plane.dimension == 3 else 0.0)
        view.set_cursor(self.cursor)
        return True

    def render(self, view: "SliceView") -> np.ndarray:
        """The moving image's own slice, with the moving window/level."""
        raw = self._slices.fixed_slice(view.plane, view.depth)
        wl = self.window.window_level("moving") or (1.0, 0.5)
        return render_slice("moving", None, raw, wl, wl, self.window.overlay.settings, view.plane.spacing)

    def follow_fixed(self, point_fixed) -> None:
        """The fixed cursor moved to `point_fixed`: when linked, the moving one follows."""
        if self.linked and not self._following and self.window.moving_volume() is not None:
            q = self.to_moving(point_fixed)
            if q is not None:
                self._set_cursor(q)

    # ------------------------------------------------------------------ public API
    def views(self) -> list["SliceView"]:
        return [v for v in self.window.visible_slice_views() if getattr(v, "space", "fixed") == "moving"]

    def set_linked(self, on: bool) -> None:
        """Couple (True) or free (False) the two cursors; linking snaps the moving cursor
        to the image of the fixed one."""
        self.linked = bool(on)
        if self.link_action.isChecked() != self.linked:
            self.link_action.setChecked(self.linked)
        fixed_cursor = self._fixed_cursor()
        if self.linked and fixed_cursor is not None:
            self.follow_fixed(fixed_cursor)

    def set_orientation(self, orientation: str) -> None:
        """The moving view's plane: "axial", "coronal", "sagittal" or "as fixed"."""
        if orientation not in (SAME_PLANE, *ORIENTATIONS):
            raise ValueError(f"unknown orientation {orientation!r}")
        self.orientation = orientation
        if self.plane_box.currentText() != orientation:
            self.plane_box.setCurrentText(orientation)
        for view in self.views():
            self.assign(view, self.window.focus_orientation)
            view.refresh()
            view.sliceChanged.emit()

    def jump_to(self, point_moving, recentre: bool = True) -> None:
        """Show `point_moving` in the moving view (slice, crosshair, and the view panned
        to it) without moving the fixed side: the picking flow's predicted position."""
        self._set_cursor(tuple(float(x) for x in point_moving))
        if recentre:
            for view in self.views():
                col, row, _ = view.plane.to_plane(self.cursor)
                rect = view.view_box.viewRect()
                if not rect.contains(QtCore.QPointF(col, row)):
                    view.view_box.translateBy(x=col - rect.center().x(), y=row - rect.center().y())

    def to_moving(self, point_fixed) -> tuple[float, ...] | None:
        try:
            return tuple(float(x) for x in self.window.current_transform().TransformPoint(
                tuple(float(x) for x in point_fixed)))
        except RuntimeError:
            return None

    def to_fixed(self, point_moving) -> tuple[float, ...] | None:
        try:
            mapped = map_points(self.window.current_transform(), [tuple(point_moving)], to="fixed")
        except (RuntimeError, ValueError):
            return None
        return tuple(float(x) for x in mapped.points[0]) if bool(mapped.converged[0]) else None

    def state(self) -> dict:
        return {"linked": self.linked, "orientation": self.orientation,
                "cursor": list(self.cursor) if self.cursor is not None else None}

    def restore_state(self, state: dict | None) -> None:
        state = state or {}
        if state.get("orientation") in (SAME_PLANE, *ORIENTATIONS):
            self.set_orientation(state["orientation"])
        self.set_linked(bool(state.get("linked", True)))
        cursor = state.get("cursor")
        if not self.linked and cursor is not None and self.window.moving_volume() is not None:
            self._set_cursor(cursor)

    # ------------------------------------------------------------------ internals
    def _sync_volume(self, moving) -> None:
        if moving is self._volume:
            return
        self._volume = moving
        self._planes = planes_for(moving)
        self._slices.set_images(moving, None)
        fixed_cursor = self._fixed_cursor()
        mapped = self.to_moving(fixed_cursor) if fixed_cursor is not None else None
        self.cursor = mapped if mapped is not None else tuple(moving.center_physical())

    def _set_cursor(self, point) -> None:
        self.cursor = tuple(float(x) for x in point)
        for view in self.views():
            view.set_cursor(self.cursor)
        self.cursorMoved.emit(self.cursor)

    def _cursor_requested(self, view: "SliceView", point) -> None:
        if getattr(view, "space", "fixed") != "moving":
            self.window.center_on(point)
            return
        self._set_cursor(point)
        self._show_position(point)
        if self.linked:
            p = self.to_fixed(point)
            if p is not None:
                self._following = True
                try:
                    self.window.center_on(p)
                finally:
                    self._following = False

    def _show_position(self, point) -> None:
        moving = self.window.moving_volume()
        if moving is None:
            return
        value = moving.value_at(point)
        text = "—" if value is None else (f"{value:.4g}" if not isinstance(value, tuple)
                                          else "(" + ", ".join(f"{v:.0f}" for v in value) + ")")
        self.window.position_label.setText(
            "(" + ", ".join(f"{x:.1f}" for x in point) + f") mm LPS in the moving image   moving {text}")

    def _fixed_cursor(self) -> tuple[float, ...] | None:
        return self.window.view_state().cursor if self.window.fixed_volume() is not None else None

    def _on_transform_changed(self) -> None:
        fixed_cursor = self._fixed_cursor()
        if self.window.moving_volume() is not None and fixed_cursor is not None:
            self.follow_fixed(fixed_cursor)

    def _build_toolbar(self) -> QtWidgets.QToolBar:
        bar = QtWidgets.QToolBar("Fixed | Moving")
        bar.setObjectName("moving_space_toolbar")
        bar.addWidget(QtWidgets.QLabel(" Moving view: "))
        self.plane_box = QtWidgets.QComboBox()
        self.plane_box.addItems([SAME_PLANE, *ORIENTATIONS])
        self.plane_box.setToolTip("The plane of the moving image shown in the Fixed | Moving layout "
                                  "(in the moving image's own space)")
        self.plane_box.currentTextChanged.connect(self.set_orientation)
        bar.addWidget(self.plane_box)
        self.link_action = QtGui.QAction("Link cursors", bar)
        self.link_action.setCheckable(True)
        self.link_action.setChecked(self.linked)
        self.link_action.setToolTip("Couple the fixed and moving cursors through the current transform "
                                    "(fixed point p ↔ moving point T(p)); off: navigate each image on its own")
        self.link_action.toggled.connect(self.set_linked)
        bar.addAction(self.link_action)
        return bar
