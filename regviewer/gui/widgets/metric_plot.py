"""Metric versus iteration while a registration runs, with level and stage boundaries.

x is the running count of optimiser iterations over the whole run; a dashed line marks
each new pyramid level and a solid labelled line each new stage. When landmarks exist
the landmark TRE (mm, right axis) is drawn alongside, one point per live snapshot.
"""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from regviewer.core.registration.run_state import level_label, stage_label


class MetricPlot(QtWidgets.QWidget):
    """A pyqtgraph plot fed with `IterationPoint`s (from `gui.worker`) or a stored curve."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(160)
        layout.addWidget(self.plot)
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "iteration (all levels and stages)")
        item.setLabel("left", "metric (lower is better)")
        item.showGrid(x=True, y=True, alpha=0.2)
        self.curve = item.plot(pen=pg.mkPen((30, 90, 200), width=1.5))
        item.disableAutoRange()
        item.setClipToView(True)
        # TRE on a second y axis sharing x.
        self.tre_view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(self.tre_view)
        item.getAxis("right").linkToView(self.tre_view)
        item.getAxis("right").setLabel("landmark TRE (mm)", color="#c03020")
        self.tre_view.setXLink(item)
        self.tre_curve = pg.PlotDataItem(pen=pg.mkPen((200, 50, 30), width=2), symbol="o", symbolSize=5,
                                       symbolBrush=(200, 50, 30), symbolPen=None)
        self.tre_view.addItem(self.tre_curve)
        item.getViewBox().sigResized.connect(self._sync_views)
        item.getAxis("right").hide()
        # Each axis is kept as a picture and re-lettered only when its range changes: painting
        # them at every curve update (and every repaint of the dock) was ~2 ms of the GUI
        # thread each, half the cost of a redraw during a live run.
        for name in ("left", "bottom", "right"):
            item.getAxis(name).setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._markers: list[pg.InfiniteLine] = []
        self.min_redraw_s = 0.2
        self._last_redraw = 0.0
        self._flush = QtCore.QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.timeout.connect(self._redraw)
        self.reset()

    def _sync_views(self) -> None:
        self.tre_view.setGeometry(self.plot.getPlotItem().getViewBox().sceneBoundingRect())
        self.tre_view.linkedViewChanged(self.plot.getPlotItem().getViewBox(), self.tre_view.XAxis)

    def reset(self) -> None:
        for line in self._markers:
            self.plot.removeItem(line)
        self._markers = []
        self._x: list[int] = []
        self._y: list[float] = []
        self._last_key: tuple[int, int] | None = None
        self._tre_x: list[int] = []
        self._tre_y: list[float] = []
        self._range_fresh = True
        self._last_redraw = 0.0
        self._flush.stop()
        self.curve.setData([], [])
        self.tre_curve.setData([], [])
        self.plot.getPlotItem().getAxis("right").hide()

    @property
    def n_points(self) -> int:
        return len(self._x)

    @property
    def boundaries(self) -> list[tuple[int, str]]:
        """(x, label) of every level/stage marker, for tests and screenshots."""
        return [(int(m.value()), m.label.format if m.label is not None else "") for m in self._markers]

    def add_points(self, points: Iterable) -> None:
        """Append iterations (objects with stage, stage_name, level, metric)."""
        for p in points:
            key = (p.stage, p.level)
            if self._last_key is not None and key != self._last_key:
                self._mark(len(self._x), p.stage != self._last_key[0], p.stage_name, p.level)
            elif self._last_key is None and self._x == [] and p.stage > 0:
                self._mark(0, True, p.stage_name, p.level)
            self._last_key = key
            self._x.append(len(self._x))
            self._y.append(float(p.metric))
        # Repaint at most every `min_redraw_s`: painting holds the GIL, which the engine's
        # per-iteration callbacks wait for. A pending redraw is flushed by a single-shot timer.
        if time.perf_counter() - self._last_redraw >= self.min_redraw_s:
            self._redraw()
        elif not self._flush.isActive():
            self._flush.start(int(self.min_redraw_s * 1000))

    def add_tre(self, tre_mm: float | None) -> None:
        """One TRE sample at the current iteration count."""
        if tre_mm is None or not np.isfinite(tre_mm):
            return
        self.plot.getPlotItem().getAxis("right").show()
        self._tre_x.append(max(len(self._x) - 1, 0))
        self._tre_y.append(float(tre_mm))
        self.tre_curve.setData(self._tre_x, self._tre_y)
        self.tre_view.setYRange(0, max(self._tre_y) * 1.1 + 1e-6, padding=0)
        self._sync_views()

    def show_curve(self, curve: list[tuple[int, int, int, float]], stage_names: list[str] | None = None) -> None:
        """Show a stored run's (stage, level, iteration, metric) curve instead of a live one."""
        from types import SimpleNamespace

        self.reset()
        names = stage_names or []
        self.add_points(SimpleNamespace(stage=s, level=lv, iteration=i, metric=m,
                                        stage_name=names[s] if s < len(names) else stage_label(s))
                        for s, lv, i, m in curve)

    def _mark(self, x: int, new_stage: bool, stage_name: str, level: int) -> None:
        if new_stage:
            line = pg.InfiniteLine(x, angle=90, pen=pg.mkPen((60, 60, 60), width=1.5),
                                   label=stage_name, labelOpts={"position": 0.92, "color": (40, 40, 40)})
        else:
            line = pg.InfiniteLine(x, angle=90, pen=pg.mkPen((120, 120, 120), style=QtCore.Qt.PenStyle.DashLine),
                                   label=level_label(level), labelOpts={"position": 0.06, "color": (90, 90, 90)})
        self.plot.addItem(line, ignoreBounds=True)
        self._markers.append(line)

    def _redraw(self) -> None:
        self._last_redraw = time.perf_counter()
        if not self._x:
            return
        self.curve.setData(np.asarray(self._x), np.asarray(self._y))
        self._grow_range()

    def _grow_range(self) -> None:
        """Widen the axes in steps instead of auto-ranging on every update: re-laying out
        the axes is what costs time on the GUI thread, and a steady frame reads better."""
        box = self.plot.getPlotItem().getViewBox()
        (x0, x1), (y0, y1) = box.viewRange()
        n = len(self._x)
        if n > x1 or self._range_fresh:  # doubling: 5 re-letterings for 546 iterations, not 9 (5 ms each)
            box.setXRange(0, max(20, 2 * n), padding=0)
        finite = [v for v in self._y[-2000:] if np.isfinite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            if self._range_fresh or lo < y0 or hi > y1:
                # A generous margin below (a metric keeps falling): a new range re-lays out
                # and re-letters the axes, ~10 ms of the GUI thread, and it came at every
                # redraw while the metric fell, delaying slice steps during a live run.
                span = max(hi - lo, abs(hi) * 0.01, 1e-9)
                box.setYRange(lo - 0.6 * span, hi + 0.15 * span, padding=0)
        self._range_fresh = False
