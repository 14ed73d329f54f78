"""Landmark markers in the slice views: draggable, coloured by error, near the slice.

Where markers go, per view role (see `host.SliceViewLike`):
- "fixed" view: the fixed points (LPS mm of the fixed image) at their plane position.
- "moving" view in the moving image's own space (`view.space == "moving"`, the
  Fixed | Moving layout): the moving points as they are, no transform involved.
- "moving" view in the fixed frame (moving image resampled under T, fixed→moving): a
  moving point m is drawn at T⁻¹(m), the fixed-frame point that T sends to m.
- "overlay" view: both; fixed points as circles, moving points (at T⁻¹(m)) as squares.

T is the transform the views DRAW (`host.displayed_transform()`: a running
registration's preview while there is one), so markers stay on the anatomy.

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
        self._cache: dict[tuple[float, ...], tuple[float, ...]] = {}
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
        cached = self._cache.get(m)
        if cached is None:
            cached = self._cache[m] = self._to_fixed(m)
        return cached

    def _to_fixed(self, m: tuple[float, ...]) -> tuple[float, ...]:
        if self._inverse is not None:
            return tuple(float(x) for x in self._inverse.TransformPoint(m))
        from regviewer.core.transforms.points import map_points

        return tuple(float(x) for x in map_points(self.transform, [m], to="fixed").points[0])


class _Marker(pg.TargetItem):
    """A TargetItem that reports a click (select); its landmark is `index`/`which`."""

    def __init__(self, on_select: OnSelect, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = -1
        self.which = "fixed"
        self.depth = 0.0  # the landmark's own depth on this plane: a drag keeps it
        self.display_name = ""
        self.style_key: tuple | None = None
        self._on_select = on_select
        self.setZValue(50)
        self.setLabel(lambda x, y: self.display_name, {"offset": (8, -8)})

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_select(self.index)


class LandmarkMarkers:
    """Keeps one marker per visible landmark point in each slice view of `host`.

    Markers are pooled per view and updated in place: creating a pyqtgraph item costs
    milliseconds, and markers are redrawn on every slice step and transform change.
    """

    def __init__(self, host, on_drag: OnDrag, on_select: OnSelect) -> None:
        self.host = host
        self.on_drag = on_drag
        self.on_select = on_select
        self._pairs: list = []
        self._classes: list[str] = []
        self._selected: int | None = None
        self._pool: dict[tuple[int, str], list[_Marker]] = {}  # (id(view), symbol) -> markers
        self._shown: dict[int, list[_Marker]] = {}  # id(view) -> markers in use
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

    def transform_changed(self) -> None:
        """The host's current transform changed: moving markers move (T⁻¹ is recomputed)."""
        self._cached_mapper = None
        self.refresh()

    # ---- drawing
    _cached_mapper: "PointMapper | None" = None

    def _mapper(self) -> "PointMapper":
        """One mapper per current transform, so slice steps re-use its inverse mappings
        (an inverse of a deformable transform is an iterative solve per point)."""
        try:
            transform = displayed_transform(self.host)
        except Exception:  # no images yet: nothing sensible to map with
            return PointMapper(None)
        mapper = self._cached_mapper
        if mapper is None or mapper.transform is not transform:
            mapper = self._cached_mapper = PointMapper(transform)
        return mapper

    def refresh(self) -> None:
        """Redraw every view's markers (after an edit, a selection or a new transform)."""
        mapper = self._mapper()
        views = list(self.host.slice_views() or [])
        live = {id(v) for v in views}
        for key in list(self._views):
            if key not in live:
                self._forget(key)
        for view in views:
            self._draw_view(view, mapper)

    def refresh_view(self, view) -> None:
        """Redraw one view's markers (after that view's slice step)."""
        self._draw_view(view, self._mapper())

    def clear(self) -> None:
        for key in list(self._views):
            self._forget(key)

    def _forget(self, key: int) -> None:
        view = self._views.pop(key, None)
        self._shown.pop(key, None)
        for pool_key in [k for k in self._pool if k[0] == key]:
            for item in self._pool.pop(pool_key):
                if view is not None and item.scene() is not None:
                    view.view_box.removeItem(item)

    def markers(self, view) -> list[_Marker]:
        """The markers now shown in `view` (for tests and screenshots)."""
        return list(self._shown.get(id(view), []))

    def _draw_view(self, view, mapper: PointMapper) -> None:
        key = id(view)
        self._views[key] = view
        specs = []
        is_visible = getattr(view, "isVisible", None)
        if is_visible is None or is_visible():  # hidden views (other layouts) draw when shown
            plane = view.plane
            tolerance = DEPTH_TOLERANCE_STEPS * float(plane.depth_step)
            role = getattr(view, "role", "overlay")
            own_space = getattr(view, "space", "fixed") == "moving"
            wanted = {"fixed": ("fixed",), "moving": ("moving",)}.get(role, ("fixed", "moving"))
            for index, pair in enumerate(self._pairs):
                for which in wanted:
                    point = getattr(pair, which)
                    if point is None:
                        continue
                    shown = point if (which == "fixed" or own_space) else mapper.to_fixed(point)
                    col, row, depth = plane.to_plane(shown)
                    if plane.dimension == 3 and abs(depth - float(view.depth)) > tolerance:
                        continue
                    symbol = "o" if (which == "fixed" or role == "moving") else "s"
                    specs.append((index, which, pair, col, row, depth, symbol))
        used: dict[str, int] = {}
        shown_markers = []
        for index, which, pair, col, row, depth, symbol in specs:
            pool = self._pool.setdefault((key, symbol), [])
            n = used.get(symbol, 0)
            used[symbol] = n + 1
            if n == len(pool):
                pool.append(self._new_marker(view, symbol))
            marker = pool[n]
            self._update_marker(marker, index, which, pair, col, row, depth)
            shown_markers.append(marker)
        for (view_key, symbol), pool in self._pool.items():
            if view_key == key:
                for marker in pool[used.get(symbol, 0):]:
                    marker.setVisible(False)
        self._shown[key] = shown_markers

    def _new_marker(self, view, symbol: str) -> _Marker:
        marker = _Marker(self.on_select, size=12, symbol=symbol, movable=True,
                         hoverPen=pg.mkPen(SELECTED_COLOUR, width=2))
        marker.sigPositionChangeFinished.connect(lambda item, v=view: self._finished(v, item))
        view.view_box.addItem(marker)
        return marker

    def _update_marker(self, marker: _Marker, index: int, which: str, pair, col: float, row: float,
                       depth: float) -> None:
        marker.index, marker.which, marker.depth = index, which, depth
        selected = index == self._selected
        colour_class = self._classes[index] if index < len(self._classes) else "none"
        enabled = bool(getattr(pair, "enabled", True))
        style = (colour_class, selected, enabled, str(pair.name))
        if marker.style_key != style:
            rgb = COLOURS[colour_class] if enabled else (150, 150, 150)
            marker.setPen(pg.mkPen(SELECTED_COLOUR if selected else rgb, width=3.5 if selected else 2))
            marker.setBrush(pg.mkBrush(*rgb, 60))
            marker.display_name = str(pair.name)
            label = marker.label()
            if label is not None:
                label.setColor(QtGui.QColor(*(SELECTED_COLOUR if selected else rgb)))
                label.valueChanged()
            marker.style_key = style
        if (marker.pos().x(), marker.pos().y()) != (col, row):
            marker.setPos(col, row)
        marker.setVisible(True)

    def _finished(self, view, marker: _Marker) -> None:
        """A drag ended: the marker's new plane position, at the landmark's own depth,
        becomes the landmark's point (mapped to moving space for moving markers)."""
        pos = marker.pos()
        point = view.plane.to_physical(pos.x(), pos.y(), marker.depth)
        if marker.which == "moving" and getattr(view, "space", "fixed") != "moving":
            point = PointMapper(displayed_transform(self.host)).to_moving(point)
        index, which = marker.index, marker.which
        # Defer: the callback redraws the markers, including the one being dragged.
        QtCore.QTimer.singleShot(0, lambda: self.on_drag(index, which, tuple(point)))


def displayed_transform(host) -> sitk.Transform:
    """What the host's views are drawn with (the preview during a run), else its current one."""
    displayed = getattr(host, "displayed_transform", None)
    return displayed() if displayed is not None else host.current_transform()
