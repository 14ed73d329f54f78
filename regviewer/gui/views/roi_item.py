"""Drawing a region of interest in the slice views, and handing its mask to every run.

In "roi" interaction mode a left drag in a fixed-frame slice view sets the box's extent
along that view's two axes (the third axis keeps its extent: the whole image at first),
or, with the Paint tool, paints balls of the brush radius along the drag. The region
(`core.imaging.roi.RegionOfInterest`, fixed LPS mm) is Workspace state (`ws.roi`): each
box drag, paint stroke and Clear is one step of the window's one undo history (Ctrl+Z /
Ctrl+Shift+Z, as for transforms and landmarks). It is drawn as an outline in every
fixed-frame view it crosses, saved with the session, and written as a mask file
(`core.imaging.roi.write_mask`) that the registration dock uses as its fixed mask, so
every run and Copy as Python see it; after an undo the mask is written afresh.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.imaging.roi import RegionOfInterest, outline_on_plane, write_mask

if TYPE_CHECKING:
    from regviewer.gui.main_window import MainWindow

_PEN = pg.mkPen((255, 150, 0), width=3)
_PAINT_BRUSH = pg.mkBrush(255, 140, 0, 70)


def roi_dir() -> Path:
    """Where the window writes the region's mask: $REGVIEWER_ROI_DIR, else the user's
    application data folder (a run, a session and Copy as Python all refer to the file)."""
    override = os.environ.get("REGVIEWER_ROI_DIR")
    base = Path(override) if override else Path(QtCore.QStandardPaths.writableLocation(
        QtCore.QStandardPaths.StandardLocation.AppDataLocation) or Path.home() / ".regviewer") / "roi"
    base.mkdir(parents=True, exist_ok=True)
    return base


class RoiController(QtCore.QObject):
    """The window's region of interest: drawing, outlines, mask file, session part."""

    changed = QtCore.pyqtSignal()
    maskWritten = QtCore.pyqtSignal(str)  # the mask file runs now use (written off the GUI thread)

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self.mask_path: Path | None = None
        self.tool = "box"
        self.brush_mm = 6.0
        self._drag_start = None
        self._preview: RegionOfInterest | None = None
        self._items: dict[int, tuple[pg.PlotCurveItem, pg.ScatterPlotItem]] = {}
        self._connected: set[int] = set()
        self._write_pending = False
        self.toolbar = self._build_toolbar()
        window.on_images_changed(self._on_images_changed)
        window.bridge.roiChanged.connect(self._on_roi_changed)  # edits, undo, redo, open, restore; a script's too
        window.register_session_part("roi", self.state, self.restore_state)

    # ------------------------------------------------------------------ public API
    @property
    def roi(self) -> RegionOfInterest:
        """The Workspace's region (fixed LPS mm)."""
        return self.window.workspace.roi

    def set_box(self, a, b, thickness_mm: float | None = None) -> None:
        """A box from corner `a` to `b` (fixed LPS mm); with `thickness_mm`, `a`/`b` lie on
        one axial plane and the box spans that much around it (scripts, tests)."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        if thickness_mm is not None:
            a, b = a - (0, 0, thickness_mm / 2), b + (0, 0, thickness_mm / 2)
        self._commit(self.roi.with_box(a, b), "Draw region box")

    def paint(self, centre, radius_mm: float | None = None) -> None:
        self._commit(self.roi.with_ball(centre, radius_mm or self.brush_mm), "Paint region")

    def clear(self) -> None:
        """Forget the region (undoable); the registration dock stops using its mask."""
        self._commit(RegionOfInterest(), "Clear region of interest")

    def save_mask(self, path: str | Path) -> Path:
        """Write the mask to `path` and make that file the one runs use."""
        fixed = self.window.fixed_volume()
        if fixed is None or self.roi.is_empty:
            raise RegviewerError("Draw a region of interest on an open fixed image first (ROI mode: drag a box)")
        self.mask_path = write_mask(self.roi, fixed.sitk, path)
        self._use_mask(self.mask_path)
        return self.mask_path

    def state(self) -> dict:
        return {"region": self.roi.to_json(), "mask": str(self.mask_path) if self.mask_path else None}

    def restore_state(self, state: dict | None) -> None:
        try:
            roi = RegionOfInterest.from_json((state or {}).get("region"))
        except RegviewerError as exc:
            self.window.show_error(exc)
            return
        mask = (state or {}).get("mask")
        # Re-written from the region (the file may be gone); its folder may be gone too.
        self.mask_path = Path(mask) if mask and Path(mask).parent.is_dir() else None
        if roi != self.roi:
            self.window.workspace.load_roi(roi)  # not an undo step; the mask follows the event
        elif not roi.is_empty:
            self._schedule_write()  # the Workspace's restore already asked: one write, to this path
        self._redraw()

    # ------------------------------------------------------------------ mouse
    def on_drag(self, view, start, now, finished: bool) -> None:
        """A drag in ROI mode from fixed LPS point `start` to `now`."""
        if getattr(view, "space", "fixed") != "fixed" or self.window.fixed_volume() is None:
            return
        if self.tool == "paint":
            self._preview = (self._preview or self.roi).with_ball(now, self.brush_mm)
        else:
            corners = self.window.fixed_volume().corners_physical()
            full = (corners.min(axis=0), corners.max(axis=0))
            self._preview = self.roi.with_box_in_plane(start, now, (view.plane.u, view.plane.v), full)
        if finished:
            preview, self._preview = self._preview, None
            self._commit(preview, "Paint region" if self.tool == "paint" else "Draw region box")
        else:
            self._redraw()

    # ------------------------------------------------------------------ internals
    def _commit(self, roi: RegionOfInterest, description: str) -> None:
        """One undo step of the Workspace; `_on_roi_changed` draws it and writes the mask."""
        try:
            self.window.workspace.set_roi(roi, description)
        except RegviewerError as exc:
            self.window.show_error(exc)
        self._redraw()  # a drag's preview is gone even when nothing changed

    def _on_roi_changed(self, roi: RegionOfInterest) -> None:
        """The Workspace's region changed (an edit, Ctrl+Z, Ctrl+Shift+Z, a new image, a session)."""
        # A stroke in progress was drawn over the region before this change: drop it, or its end
        # would commit the old region again (an undo in mid-stroke undone, the redo lost).
        self._preview = None
        self._redraw()
        if roi.is_empty:
            if self.mask_path is not None:
                self._use_mask(None)
            self.mask_path = None
        else:
            self._schedule_write()
        if not self.window.workspace.loading:
            self.window.mark_modified()
        self.changed.emit()

    def _schedule_write(self) -> None:
        """Write the mask at the next turn of the event loop, once however many changes ask: a
        session's restore changes the region and then names its mask file, one write in all."""
        if not self._write_pending:
            self._write_pending = True
            QtCore.QTimer.singleShot(0, self._flush_write)

    def _flush_write(self) -> None:
        self._write_pending = False
        if not self.roi.is_empty:
            self._write_and_use(self.mask_path)

    def _write_and_use(self, path: Path | None) -> None:
        """Rasterise and write the mask off the GUI thread (seconds on a 256³ grid); the newest
        region wins, and runs use the file once it is written."""
        fixed = self.window.fixed_volume()
        if fixed is None or self.roi.is_empty:
            return
        roi, target = self.roi, path or roi_dir() / f"roi-mask-{os.getpid()}.nii.gz"

        def done(written, error) -> None:
            if self.roi != roi:  # edited, undone or cleared while writing: a newer write (or none) applies
                return
            if error is not None:
                self.window.show_error(error if isinstance(error, RegviewerError) else RegviewerError(str(error)))
                return
            self.mask_path = written
            self._use_mask(written)
            self.maskWritten.emit(str(written))

        background = getattr(self.window, "background", None)
        if background is None:  # a host without a background helper: write here
            try:
                done(write_mask(roi, fixed.sitk, target), None)
            except (RegviewerError, OSError) as exc:
                done(None, exc)
            return
        background.submit("roi-mask", lambda: write_mask(roi, fixed.sitk, target), done)

    def _use_mask(self, path: Path | None) -> None:
        live = getattr(self.window, "panels", {}).get("LiveRegistrationDock")
        if live is not None:
            live.set_mask("fixed", str(path) if path is not None else None)
        if path is not None:
            self.window.show_message(f"Region of interest: runs use the fixed mask {path.name}")

    def _on_images_changed(self) -> None:
        # Another fixed image: the Workspace dropped the old region (`_on_roi_changed`).
        for view in self.window.slice_views():
            if id(view) not in self._connected:
                self._connected.add(id(view))
                view.regionDrag.connect(lambda a, b, done, v=view: self.on_drag(v, a, b, done))
                view.sliceChanged.connect(lambda v=view: self._draw(v))
        self._redraw()

    def _redraw(self) -> None:
        for view in self.window.slice_views():
            self._draw(view)

    def _draw(self, view) -> None:
        outline, balls = self._items_for(view)
        roi = self._preview or self.roi
        shown = view.isVisible() and getattr(view, "space", "fixed") == "fixed"
        xs, ys, spots = [], [], []
        if shown:
            corners, cuts = outline_on_plane(roi, view.plane, view.depth)
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            spots = [{"pos": (col, row), "size": size} for col, row, size in cuts]
        outline.setData(xs, ys)
        balls.setData(spots)

    def _items_for(self, view) -> tuple[pg.PlotCurveItem, pg.ScatterPlotItem]:
        items = self._items.get(id(view))
        if items is None:
            outline = pg.PlotCurveItem(pen=_PEN)
            balls = pg.ScatterPlotItem(pen=None, brush=_PAINT_BRUSH, pxMode=False)
            for item in (outline, balls):
                item.setZValue(30)
                view.view_box.addItem(item, ignoreBounds=True)
            items = self._items[id(view)] = (outline, balls)
        return items

    def _build_toolbar(self) -> QtWidgets.QToolBar:
        bar = QtWidgets.QToolBar("Region of interest")
        bar.setObjectName("roi_toolbar")
        bar.addWidget(QtWidgets.QLabel(" ROI: "))
        self.tool_box = QtWidgets.QComboBox()
        self.tool_box.addItems(["box", "paint"])
        self.tool_box.setToolTip("In ROI mode (R), a drag in a slice view draws a box (its extent in that "
                                 "view's two directions) or paints with the brush")
        self.tool_box.currentTextChanged.connect(lambda t: setattr(self, "tool", t))
        bar.addWidget(self.tool_box)
        self.brush_spin = QtWidgets.QDoubleSpinBox()
        self.brush_spin.setRange(0.5, 100.0)
        self.brush_spin.setValue(self.brush_mm)
        self.brush_spin.setSuffix(" mm")
        self.brush_spin.setToolTip("Brush radius for painting")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self, "brush_mm", float(v)))
        bar.addWidget(self.brush_spin)
        clear = QtGui.QAction("Clear", bar)
        clear.setToolTip("Forget the region; runs use the whole image again")
        clear.triggered.connect(lambda _=False: self.clear())
        bar.addAction(clear)
        save = QtGui.QAction("Save mask…", bar)
        save.setToolTip("Write the region as a mask image (the file runs and Copy as Python then use)")
        save.triggered.connect(lambda _=False: self._save_dialog())
        bar.addAction(save)
        return bar

    def _save_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Save the region as a mask", "roi_mask.nii.gz",
                                                        "Images (*.nii.gz *.nii *.nrrd *.mha)")
        if not path:
            return
        if self.window.fixed_volume() is None or self.roi.is_empty:
            self.window.show_error(RegviewerError("Draw a region of interest on an open fixed image first "
                                                  "(ROI mode: drag a box)"))
            return
        self._write_and_use(Path(path))  # off the GUI thread, like every mask write
