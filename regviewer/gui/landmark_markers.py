"""Landmark markers in the slice views: draggable, coloured by error, near the slice.

Where markers go, per view role (see `host.SliceViewLike`):
- "fixed" view: the fixed points (LPS mm of the fixed image) at their plane position.
- "moving" view (side by side): it shows the moving image resampled into the fixed
  frame under the current transform T (fixed→moving), so a moving point m is drawn at
  T⁻¹(m), the fixed-frame point that T sends to m.
- "overlay" view: both; fixed points as circles, moving points (at T⁻¹(m)) as squares.

A marker is shown only when its point lies within a few slice steps of the view's
depth. Dragging a marker and releasing it reports one move (one undoable command).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pyqtgraph as pg
import SimpleITK as sitk
from PyQt6 import QtCore, QtGui

# Marker colours (RGB) by error class; "none" = not yet fitted or half-made.
COLOURS = {
    "good": (60, 220, 60),
    "warn": (245, 210, 40),
    "bad": (240, 50, 50),
    "none": (200, 140, 255),  # not the crosshair's blue
}
SELECTED_COLOUR = (255, 255, 255)
DEPTH_TOLERANCE_STEPS = 2.5  # show markers within this many slice steps of the view

# OnDrag(pair_index, which, new_point_lps): which is "fixed" or "moving" (in moving space).
OnDrag = Callable[[int, str, tuple], None]
OnSelect = Callable[[int], None]


def error_classes(errors: Sequence[float | None], flagged: Sequence[bool] = ()) -> list[str]:
    """Colour class per landmark from its error (leave-one-out if known, else residual):
    "bad" when the fit flagged it, "warn" when above 1.5× the RMS of all errors,
    else "good"; "none" when there is no error (not fitted, half-made, disabled)."""
    known = np.array([e for e in errors if e is not None and np.isfinite(e)], dtype=float)
    rms = float(np.sqrt(np.mean(known ** 2))) if known.size else 0.0
    flags = list(flagged) + [False] * (len(errors) - len(flagged))
    out = []
    for e, flag in zip(errors, flags):
        if e is None or not np.isfinite(e):
            out.append("none")
        elif flag:
            out.append("bad")
        elif known.size > 2 and e > 1.5 * rms and e > 1e-6:
            out.append("warn")
        else:
            out.append("good")
    return out


class PointMapper:
    """Maps points between fixed and moving space with T (fixed→moving) and its inverse.

    Linear transforms use their exact inverse; deformable ones (no closed-form inverse)
    use `core.point_mapping.map_points` (Newton per point) when available, else a
    fixed-point iteration from p = m, which converges for smooth, moderate warps.
    """

    def __init__(self, transform: sitk.Transform | None) -> None:
        self.transform = transform
        self._inverse = None
        if transform is not None:
            try:
                self._inverse = transform.GetInverse()
            except RuntimeError:
                self._inverse = None

    def to_moving(self, point_fixed: Sequence[float]) -> tuple[float, ...]:
        if self.transform is None:
            return tuple(float(x) for x in point_fixed)
        return tuple(float(x) for x in self.transform.TransformPoint(tuple(float(x) for x in point_fixed)))

    def to_fixed(self, point_moving: Sequence[float]) -> tuple[float, ...]:
        m = tuple(float(x) for x in point_moving)
        if self.transform is None:
            return m
        if self._inverse is not None:
            return tuple(float(x) for x in self._inverse.TransformPoint(m))
        try:
            from ..core.point_mapping import map_points

            return tuple(float(x) for x in map_points(self.transform, [m], to="fixed").points[0])
        except ImportError:
            pass
        p = np.asarray(m)
        for _ in range(50):
            step = np.asarray(m) - np.asarray(self.transform.TransformPoint(tuple(p)))
            p = p + step
            if np.linalg.norm(step) < 1e-6:
                break
        return tuple(float(x) for x in p)


class _Marker(pg.TargetItem):
    """A TargetItem that reports a finished drag and a click (select)."""

    def __init__(self, index: int, which: str, depth: float, on_select: OnSelect, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.which = which
        self.depth = depth  # the landmark's own depth on this plane: a drag keeps it
        self._on_select = on_select
        self.setZValue(50)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_select(self.index)


class LandmarkMarkers:
    """Keeps one marker per visible landmark point in each slice view of `host`."""

    def __init__(self, host, on_drag: OnDrag, on_select: OnSelect) -> None:
        self.host = host
        self.on_drag = on_drag
        self.on_select = on_select
        self._pairs: list = []
        self._classes: list[str] = []
        self._selected: int | None = None
        self._items: dict[int, list[_Marker]] = {}  # id(view) -> markers
        self._views: dict[int, object] = {}

    # ---- inputs
    def set_pairs(self, pairs: Sequence, classes: Sequence[str], selected: int | None = None) -> None:
        self._pairs = list(pairs)
        self._classes = list(classes) + ["none"] * (len(pairs) - len(classes))
        self._selected = selected
        self.refresh()

    def set_selected(self, selected: int | None) -> None:
        if selected != self._selected:
            self._selected = selected
            self.refresh()

    # ---- drawing
    def refresh(self) -> None:
        """Redraw every view's markers (after an edit, a slice step or a new transform)."""
        try:
            mapper = PointMapper(self.host.current_transform())
        except Exception:  # no images yet: nothing sensible to draw
            mapper = PointMapper(None)
        views = list(self.host.slice_views() or [])
        live = {id(v) for v in views}
        for key in list(self._items):
            if key not in live:
                self._clear(key)
        for view in views:
            self._views[id(view)] = view
            self._draw_view(view, mapper)

    def refresh_view(self, view) -> None:
        """Redraw one view's markers (after that view's slice step)."""
        try:
            mapper = PointMapper(self.host.current_transform())
        except Exception:
            mapper = PointMapper(None)
        self._views[id(view)] = view
        self._draw_view(view, mapper)

    def clear(self) -> None:
        for key in list(self._items):
            self._clear(key)

    def _clear(self, key: int) -> None:
        view = self._views.get(key)
        for item in self._items.pop(key, []):
            if view is not None and item.scene() is not None:
                view.view_box.removeItem(item)
        self._views.pop(key, None)

    def markers(self, view) -> list[_Marker]:
        """The markers now shown in `view` (for tests and screenshots)."""
        return list(self._items.get(id(view), []))

    def _draw_view(self, view, mapper: PointMapper) -> None:
        key = id(view)
        for item in self._items.pop(key, []):
            if item.scene() is not None:
                view.view_box.removeItem(item)
        is_visible = getattr(view, "isVisible", None)
        if is_visible is not None and not is_visible():
            self._items[key] = []  # hidden (another layout's view): drawn when it is shown
            return
        plane = view.plane
        tolerance = DEPTH_TOLERANCE_STEPS * float(plane.depth_step)
        role = getattr(view, "role", "overlay")
        wanted = {"fixed": ("fixed",), "moving": ("moving",)}.get(role, ("fixed", "moving"))
        items = []
        for index, pair in enumerate(self._pairs):
            for which in wanted:
                point = getattr(pair, which)
                if point is None:
                    continue
                shown = point if which == "fixed" else mapper.to_fixed(point)
                col, row, depth = plane.to_plane(shown)
                if plane.dimension == 3 and abs(depth - float(view.depth)) > tolerance:
                    continue
                items.append(self._make_marker(view, index, which, pair, col, row, depth, role))
        self._items[key] = items

    def _make_marker(self, view, index, which, pair, col, row, depth, role) -> _Marker:
        selected = index == self._selected
        rgb = self._classes[index] if index < len(self._classes) else "none"
        colour = QtGui.QColor(*COLOURS[rgb])
        if not getattr(pair, "enabled", True):
            colour = QtGui.QColor(150, 150, 150)
        pen = pg.mkPen(SELECTED_COLOUR if selected else colour, width=3 if selected else 2)
        symbol = "o" if (which == "fixed" or role == "moving") else "s"
        marker = _Marker(
            index, which, depth, self.on_select,
            pos=(col, row), size=16 if selected else 12, symbol=symbol, pen=pen,
            brush=pg.mkBrush(colour.red(), colour.green(), colour.blue(), 60),
            hoverPen=pg.mkPen(SELECTED_COLOUR, width=2), movable=True,
            label=str(pair.name), labelOpts={"color": colour, "offset": (8, -8)},
        )
        marker.sigPositionChangeFinished.connect(lambda item, v=view: self._finished(v, item))
        view.view_box.addItem(marker)
        return marker

    def _finished(self, view, marker: _Marker) -> None:
        """A drag ended: the marker's new plane position, at the landmark's own depth,
        becomes the landmark's point (mapped to moving space for moving markers)."""
        pos = marker.pos()
        point = view.plane.to_physical(pos.x(), pos.y(), marker.depth)
        if marker.which == "moving":
            point = PointMapper(self.host.current_transform()).to_moving(point)
        # Defer: the callback rebuilds the markers, including the one being dragged.
        QtCore.QTimer.singleShot(0, lambda: self.on_drag(marker.index, marker.which, tuple(point)))
