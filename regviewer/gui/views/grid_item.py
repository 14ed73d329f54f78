"""The deformation grid (and B-spline control points) drawn in one slice view.

The polylines come precomputed from `regviewer.core.imaging.grid` (plane pixel coordinates,
x = col, y = row, the slice view's ViewBox units); this item only sets data, so a
live update costs one `setData` on the GUI thread.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg

from regviewer.core.imaging.grid import pack_polylines

GRID_COLOR = (255, 220, 0, 200)
CONTROL_POINT_COLOR = (0, 200, 255, 220)


class DeformationGridItem:
    """A grid curve and a control-point scatter living in one pyqtgraph ViewBox."""

    def __init__(self, view_box: Any, width: float = 1.0) -> None:
        self.view_box = view_box
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(GRID_COLOR, width=width), antialias=False)
        self.curve.setZValue(50)
        # Drawn once into a pixmap per zoom: the crosshair moving over the grid at each slice
        # step repaints strips of the view, and stroking the whole grid path for each cost
        # ~2 ms per view (the grid changes only with a snapshot, ~5 times a second).
        self.curve.setCacheMode(pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.points = pg.ScatterPlotItem(size=5, pen=pg.mkPen(None), brush=pg.mkBrush(CONTROL_POINT_COLOR))
        self.points.setZValue(51)
        # The same for the control points: painting the scatter was ~0.25 ms per view at
        # every slice step (three views repaint), for dots that change only with a snapshot.
        self.points.setCacheMode(pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        # Keep auto-range of the image view unaffected by the grid.
        view_box.addItem(self.curve, ignoreBounds=True)
        view_box.addItem(self.points, ignoreBounds=True)

    def set_lines(self, lines: Sequence[np.ndarray] | None) -> None:
        self.set_packed(pack_polylines(list(lines or [])))

    def set_packed(self, packed: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        x, y, connect = packed
        if len(x) == 0:
            self.curve.setData([], [])
        else:
            self.curve.setData(x, y, connect=connect)

    def set_control_points(self, col_row: np.ndarray | None) -> None:
        if col_row is None or len(col_row) == 0:
            self.points.setData([], [])
        else:
            self.points.setData(col_row[:, 0], col_row[:, 1])

    def set_visible(self, visible: bool) -> None:
        self.curve.setVisible(visible)
        self.points.setVisible(visible)

    def n_points(self) -> int:
        x, _ = self.curve.getData()
        return 0 if x is None else len(x)

    def remove(self) -> None:
        for item in (self.curve, self.points):
            try:
                self.view_box.removeItem(item)
            except (RuntimeError, ValueError):  # the view was already destroyed
                pass
