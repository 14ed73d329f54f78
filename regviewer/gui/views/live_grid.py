"""The live deformation grid of one window: a grid item per slice view, polylines in the 3D view.

Geometry comes from `regviewer.core.imaging.grid` (a regular grid on each fixed display plane,
every point p drawn at T(p), T = fixed → moving). While a registration runs, the
grid is computed on the worker's preview thread (`prepare`) from a tuple this class
publishes on the GUI thread, so the preview thread never reads a widget; the GUI
thread only sets data (`draw`).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from PyQt6 import QtWidgets

from regviewer.core.imaging.grid import bspline_control_points, pack_polylines, points_near_plane, warped_grid, warped_grid_lines, \
    warped_grid_lines_3d
from regviewer.gui.views.grid_item import DeformationGridItem

_3D_INTERVAL_S = 0.5  # the 3D grid is heavier to redraw (software GL under Xvfb); 2 Hz is enough


class DutyCycle:
    """Keeps a costly GUI-thread redraw under a share of the event loop's time.

    A redraw that took c seconds is not repeated for c / share seconds, so the window
    keeps answering (e.g. the overlay reslices the moving image under a B-spline on the
    GUI thread; on a large image that can cost tens of milliseconds).
    """

    def __init__(self, share: float, min_interval_s: float = 0.0) -> None:
        self.share = share
        self.min_interval_s = min_interval_s
        self._next = 0.0

    def ready(self) -> bool:
        return time.perf_counter() >= self._next

    def run(self, action: Any, *args: Any) -> None:
        start = time.perf_counter()
        action(*args)
        cost = time.perf_counter() - start
        self._next = start + max(cost / self.share, self.min_interval_s)



class LiveGrid:
    """Grid items in the host's slice views and the "grid" polylines of its 3D view."""

    def __init__(self, host: Any, visible: QtWidgets.QCheckBox, spacing: QtWidgets.QDoubleSpinBox,
                 redraw: Callable[[], None]) -> None:
        self.host = host
        self.visible_check = visible
        self.spacing_spin = spacing
        self.redraw = redraw  # the panel's "draw for the transform on screen"
        self._items: dict[int, DeformationGridItem] = {}
        self._views: list[Any] = []
        self._connected: set[int] = set()
        self.targets: tuple = ()  # ((key, plane, depth), ...) of the views on screen
        self._job: tuple = ((), 10.0, False)  # (targets, spacing mm, 3D wanted): what the preview thread reads
        # Computed beside the engine: at most a tenth of a core and 5 Hz.
        self._prepare_budget = DutyCycle(share=0.10, min_interval_s=0.2)
        self._volume_budget = DutyCycle(share=0.15, min_interval_s=_3D_INTERVAL_S)
        self._shown_3d = False

    @property
    def spacing_mm(self) -> float:
        return float(self.spacing_spin.value())

    def _want_3d(self) -> bool:
        """The grid is bent in 3D only for a 3D view on screen (the lazy view exists in every layout)."""
        view = self.host.volume_view()
        is_visible = getattr(view, "isVisible", None)
        return self.visible_check.isChecked() and view is not None and (is_visible is None or bool(is_visible()))

    @staticmethod
    def _shown(view: Any) -> bool:
        is_visible = getattr(view, "isVisible", None)
        return view.plane is not None and (is_visible is None or bool(is_visible()))

    def auto_spacing(self) -> None:
        """About 20 grid cells across the fixed image, in a round number of mm."""
        fixed = self.host.fixed_volume()
        if fixed is None:
            return
        extent = float(max((s - 1) * sp for s, sp in zip(fixed.size, fixed.spacing)))
        spacing = next((v for v in (1, 2, 5, 10, 20, 25, 50, 100, 200) if v >= extent / 20.0), 200)
        self.spacing_spin.blockSignals(True)
        self.spacing_spin.setValue(float(spacing))
        self.spacing_spin.blockSignals(False)

    def sync_views(self) -> None:
        """Put one grid item in every slice view (views come and go with layouts and images)."""
        views = list(self.host.slice_views())
        if [id(v) for v in views] == [id(v) for v in self._views]:
            return
        for item in self._items.values():
            item.remove()
        self._views = views
        self._items = {}
        for view in views:
            self._items[id(view)] = DeformationGridItem(view.view_box)
            signal = getattr(view, "sliceChanged", None)
            if signal is not None and id(view) not in self._connected:
                signal.connect(self._on_slice_changed)
                self._connected.add(id(view))
        self.update_targets()

    def update_targets(self) -> None:
        """Publish the views' planes and depths for the preview thread (one tuple swap)."""
        if not self.visible_check.isChecked() or self.host.fixed_volume() is None:
            self.targets = ()
        else:
            self.targets = tuple((id(v), v.plane, float(v.depth)) for v in self._views if self._shown(v))
        self._job = (self.targets, self.spacing_mm, self._want_3d())

    def _on_slice_changed(self) -> None:
        self.update_targets()
        self.redraw()

    def item(self, index: int) -> DeformationGridItem:
        self.sync_views()
        return self._items[id(self._views[index])]

    def hide(self) -> None:
        """Remove the grid from every view (and the 3D view) without computing anything."""
        for item in self._items.values():
            item.set_visible(False)
        volume_view = self.host.volume_view()
        if volume_view is not None and self._shown_3d:
            volume_view.set_polylines("grid", None)
        self._shown_3d = False

    # --- preview thread --------------------------------------------------------------------------
    def prepare(self, out: dict, transform: Any) -> None:
        """Add "grid", "grid3d" and "control_points" to `out` for `transform` (within its CPU budget)."""
        targets, spacing, want_3d = self._job
        if targets and self._prepare_budget.ready():
            self._prepare_budget.run(self._compute, out, transform, targets, spacing, want_3d)

    @staticmethod
    def _compute(out: dict, transform: Any, targets: tuple, spacing: float, want_3d: bool) -> None:
        grid, lines_3d = {}, []
        for key, plane, depth in targets:
            on_plane, physical = warped_grid(transform, plane, depth, spacing)
            grid[key] = (plane, depth, pack_polylines(on_plane))
            if want_3d and plane.dimension == 3:
                lines_3d.extend(physical)
        out["control_points"] = bspline_control_points(transform)
        if want_3d:
            out["grid3d"] = lines_3d
        out["grid"] = grid

    # --- GUI thread --------------------------------------------------------------------------------
    def draw(self, transform: Any, extras: dict, force_3d: bool = False) -> None:
        """Show the grid of `transform`, using what `prepare` computed when it fits the views."""
        self.sync_views()
        visible = self.visible_check.isChecked() and self.host.fixed_volume() is not None
        precomputed = extras.get("grid", {})
        control = extras.get("control_points") if "grid" in extras else (
            bspline_control_points(transform) if visible else None)
        spacing = self.spacing_mm
        for view in self._views:
            item = self._items[id(view)]
            item.set_visible(visible)
            if not visible or not self._shown(view):
                continue  # a hidden view redraws when shown (the window emits sliceChanged then)
            entry = precomputed.get(id(view))
            if entry is not None and entry[0] == view.plane and entry[1] == float(view.depth):
                item.set_packed(entry[2])
            else:  # the slice moved since the preview thread drew it: one view, about a millisecond
                item.set_lines(warped_grid_lines(transform, view.plane, float(view.depth), spacing))
            tol = max(view.plane.depth_step, spacing / 2.0)
            item.set_control_points(points_near_plane(control, view.plane, float(view.depth), tol)
                                    if control is not None else None)
        volume_view = self.host.volume_view()
        if volume_view is None or (not force_3d and not self._volume_budget.ready()):
            return
        if not visible:
            volume_view.set_polylines("grid", None)
            self._shown_3d = False
            return
        lines = extras.get("grid3d")
        if lines is None:
            lines = [line for v in self._views if self._shown(v) and v.plane.dimension == 3
                     for line in warped_grid_lines_3d(transform, v.plane, float(v.depth), spacing)]
        self._shown_3d = bool(lines)
        self._volume_budget.run(volume_view.set_polylines, "grid", lines or None)
