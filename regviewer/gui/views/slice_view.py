"""One 2D slice view (pyqtgraph): image, linked crosshair, orientation letters, mouse.

A SliceView shows one display plane (`core.slicing.PlaneGeometry`) of the FIXED image's
frame. Its `role` says what it draws:

* "overlay": fixed and moving composited by the current overlay mode;
* "fixed":   the fixed image alone (side-by-side layout, left);
* "moving":  the moving image (side-by-side layout, right). With `space == "moving"`
  (the window's Fixed | Moving layout, `views.moving_space`) the plane is one of the
  MOVING image's own grid and every point the view reports is in moving LPS mm;
  with `space == "fixed"` it is the moving image resampled into the fixed frame.

`space` ("fixed" or "moving") names the physical space of the plane and of every point
the view emits (clicks, crosshair requests, hover).

`view_box` is in plane pixel units: x = col, y = row (pixel centres at integers; see
`PlaneGeometry.to_physical`), aspect locked to the physical pixel spacing, y pointing
down. Items a panel adds there (markers, lines) follow zoom and pan, and movable
pyqtgraph items get their own drags before the view sees them.

The view computes nothing: the window's `render` callback gives it the RGB slice.
Mouse: left click/drag moves the crosshair (or, in "landmark" mode, a click emits
`clicked`; in "window_level" mode a drag changes window/level); Shift-drag translates
and Ctrl-drag rotates the moving image (`manualDrag`); middle-drag pans; right-drag
and Ctrl+wheel zoom; the wheel and Up/Down/PageUp/PageDown step slices.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.composite import to_rgb
from regviewer.core.imaging.slicing import PlaneGeometry

_LETTER_STYLE = "color: #ffd24d; font-weight: bold; font-size: 14px; background: transparent;"
_CROSSHAIR_PEN = pg.mkPen((80, 200, 255, 200), width=1)


class _SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse gestures mean what a medical viewer user expects."""

    def __init__(self, owner: "SliceView") -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner
        self._drag_kind: str | None = None

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            return super().mouseClickEvent(ev)
        ev.accept()
        pos = self.mapSceneToView(ev.scenePos())
        self._owner._on_left_click(pos.x(), pos.y(), ev.modifiers())

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        button = ev.button()
        if button == QtCore.Qt.MouseButton.MiddleButton:
            # Pan, as the left button does in pyqtgraph's own pan mode.
            ev.accept()
            delta = self.mapSceneToView(ev.lastScenePos()) - self.mapSceneToView(ev.scenePos())
            self.translateBy(x=delta.x(), y=delta.y())
            return
        if button != QtCore.Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        mods = ev.modifiers()
        if ev.isStart():
            if mods & QtCore.Qt.KeyboardModifier.ShiftModifier:
                self._drag_kind = "translate"
            elif mods & QtCore.Qt.KeyboardModifier.ControlModifier:
                self._drag_kind = "rotate"
            else:
                self._drag_kind = self._owner.host_mode()
        start = self.mapSceneToView(ev.buttonDownScenePos())
        now = self.mapSceneToView(ev.scenePos())
        self._owner._on_left_drag(self._drag_kind or "navigate", (start.x(), start.y()), (now.x(), now.y()),
                                  ev.screenPos() - ev.lastScreenPos(), ev.isStart(), ev.isFinish())
        if ev.isFinish():
            self._drag_kind = None

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            return super().wheelEvent(ev, axis)
        ev.accept()
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self._owner.step_slice(1 if delta > 0 else -1)


class SliceView(QtWidgets.QWidget):
    """See the module docstring. Signals:

    * sliceChanged(): plane or depth changed;
    * clicked(point_lps, role, modifiers): left click in landmark mode (FIXED frame);
    * cursorRequested(point_lps): the user moved the crosshair here;
    * hovered(point_lps): the mouse is over this fixed-frame point;
    * manualDrag(kind, start_lps, now_lps, finished): Shift/Ctrl drag ("translate"/"rotate");
    * windowLevelDrag(dx_px, dy_px): a drag in window/level mode;
* regionDrag(start_lps, now_lps, finished): a drag in "roi" mode (`gui.views.roi_item`).
    """

    sliceChanged = QtCore.pyqtSignal()
    clicked = QtCore.pyqtSignal(object, str, object)
    cursorRequested = QtCore.pyqtSignal(object)
    hovered = QtCore.pyqtSignal(object)
    manualDrag = QtCore.pyqtSignal(str, object, object, bool)
    windowLevelDrag = QtCore.pyqtSignal(float, float)
    regionDrag = QtCore.pyqtSignal(object, object, bool)  # "roi" mode: start, now (LPS mm, `space`), finished
    space = "fixed"  # the physical space of `plane` (the window sets "moving": see the module docstring)

    def __init__(self, role: str, plane: PlaneGeometry, render: Callable[["SliceView"], np.ndarray],
                 mode: Callable[[], str] = lambda: "navigate", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.plane = plane
        self.depth = float(np.mean(plane.depth_range))
        self._render = render
        self._mode = mode
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)

        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground("k")
        self.view_box = _SliceViewBox(self)
        self.graphics.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setPos(-0.5, -0.5)  # pixel centres at integer (col, row)
        self.view_box.addItem(self.image_item)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=_CROSSHAIR_PEN)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=_CROSSHAIR_PEN)
        for line in (self.h_line, self.v_line):
            line.setZValue(10)
            self.view_box.addItem(line, ignoreBounds=True)
        self.curtain_line: pg.InfiniteLine | None = None
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self._letters = {edge: self._make_label() for edge in ("left", "right", "top", "bottom")}
        self._title = self._make_label()
        self._title.setStyleSheet("color: #cccccc; font-size: 11px; background: transparent;")
        self.last_image: np.ndarray | None = None  # uint8, grey (rows, cols) or RGB (rows, cols, 3)
        self._stale = True
        self.set_plane(plane)

    # --- geometry -----------------------------------------------------------------------
    def set_role(self, role: str) -> None:
        """"overlay", "fixed" or "moving" (the window re-uses views across layouts)."""
        self.role = role
        self._stale = True
        self._update_title()

    def set_plane(self, plane: PlaneGeometry, depth: float | None = None) -> None:
        self.plane = plane
        if depth is not None:
            self.depth = depth
        self.depth = self._clamp_depth(self.depth)
        self.view_box.setAspectLocked(True, ratio=plane.spacing[0] / plane.spacing[1])
        for edge, letter in plane.edge_letters().items():
            self._letters[edge].setText(letter)
        self._update_title()
        self.reset_zoom()
        self._stale = True

    def reset_zoom(self) -> None:
        rows, cols = self.plane.shape
        self.view_box.setRange(xRange=(-0.5, cols - 0.5), yRange=(-0.5, rows - 0.5), padding=0.02)

    def _clamp_depth(self, depth: float) -> float:
        lo, hi = self.plane.depth_range
        return float(min(max(depth, lo), hi))

    def set_depth(self, depth: float) -> None:
        """Show the slice at `depth` mm along the plane normal (clamped to the image)."""
        depth = self._clamp_depth(depth)
        if depth != self.depth:
            self.depth = depth
            self._update_title()
            self.refresh()
            self.sliceChanged.emit()

    def step_slice(self, steps: int) -> None:
        if self.plane.dimension == 2:
            return
        self.set_depth(self.depth + steps * self.plane.depth_step)
        self.cursorRequested.emit(self.to_physical(*self._crosshair_col_row()))

    def to_physical(self, col: float, row: float) -> tuple[float, ...]:
        """View coordinates → fixed physical LPS mm on the current slice."""
        return self.plane.to_physical(col, row, self.depth)

    def _crosshair_col_row(self) -> tuple[float, float]:
        return self.v_line.value(), self.h_line.value()

    # --- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw from the window's render callback (only this plane is resampled).
        A hidden view only notes that it is stale and redraws when shown."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        rgb = self._render(self)
        self.last_image = rgb
        # uint8 is display-ready: no levels, so pyqtgraph skips its rescaling pass.
        self.image_item.setImage(rgb, autoLevels=False, levels=None, axisOrder="row-major")

    @property
    def last_rgb(self) -> np.ndarray | None:
        """What the view shows now, as RGB uint8 (rows, cols, 3)."""
        return None if self.last_image is None else to_rgb(self.last_image)

    def showEvent(self, ev: QtGui.QShowEvent) -> None:  # noqa: N802
        super().showEvent(ev)
        if self._stale:
            self.refresh()

    def set_cursor(self, point: tuple[float, ...]) -> None:
        """Move the crosshair to a physical point and the slice through it."""
        col, row, depth = self.plane.to_plane(point)
        self.v_line.setValue(col)
        self.h_line.setValue(row)
        if self.plane.dimension == 3:
            depth = self._clamp_depth(depth)
            if abs(depth - self.depth) > 1e-6:
                self.depth = depth
                self._update_title()
                self.refresh()
                if self.isVisible():
                    self.sliceChanged.emit()

    def set_crosshair_visible(self, visible: bool) -> None:
        self.h_line.setVisible(visible)
        self.v_line.setVisible(visible)

    def set_curtain(self, position: float | None, on_move: Callable[[float], None] | None = None) -> None:
        """Show (fraction 0..1 of the width) or hide (None) the draggable curtain divider."""
        if position is None:
            if self.curtain_line is not None:
                self.view_box.removeItem(self.curtain_line)
                self.curtain_line = None
            return
        cols = self.plane.shape[1]
        x = position * cols - 0.5
        if self.curtain_line is None:
            self.curtain_line = pg.InfiniteLine(pos=x, angle=90, movable=True,
                                                pen=pg.mkPen((255, 255, 255), width=3),
                                                hoverPen=pg.mkPen((255, 210, 77), width=5))
            self.curtain_line.setZValue(20)
            self.view_box.addItem(self.curtain_line, ignoreBounds=True)
            if on_move is not None:
                self.curtain_line.sigPositionChanged.connect(
                    lambda line: on_move(float(np.clip((line.value() + 0.5) / self.plane.shape[1], 0, 1))))
        elif abs(self.curtain_line.value() - x) > 1e-6:
            self.curtain_line.blockSignals(True)
            self.curtain_line.setValue(x)
            self.curtain_line.blockSignals(False)

    def _update_title(self) -> None:
        name = {"overlay": "", "fixed": "fixed  ",
                "moving": "moving (own space)  " if self.space == "moving" else "moving (in fixed frame)  "}[self.role]
        if self.plane.dimension == 3:
            self._title.setText(f"{name}{self.plane.orientation}  {self.depth:.1f} mm")
        else:
            self._title.setText(name.strip() or "2D")
        self._title.adjustSize()

    # --- letters ----------------------------------------------------------------------------------
    def _make_label(self) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(self)
        label.setStyleSheet(_LETTER_STYLE)
        label.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    def letter(self, edge: str) -> str:
        return self._letters[edge].text()

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(ev)
        w, h = self.width(), self.height()
        for label in list(self._letters.values()) + [self._title]:
            label.adjustSize()
        lt = self._letters
        lt["left"].move(4, h // 2 - lt["left"].height() // 2)
        lt["right"].move(w - lt["right"].width() - 4, h // 2 - lt["right"].height() // 2)
        lt["top"].move(w // 2 - lt["top"].width() // 2, 2)
        lt["bottom"].move(w // 2 - lt["bottom"].width() // 2, h - lt["bottom"].height() - 2)
        self._title.move(4, 2)
        for label in list(lt.values()) + [self._title]:
            label.raise_()

    # --- mouse and keys -------------------------------------------------------------------------------
    def host_mode(self) -> str:
        return self._mode()

    def _on_left_click(self, x: float, y: float, modifiers) -> None:
        point = self.to_physical(x, y)
        if self._mode() == "landmark":
            self.clicked.emit(point, self.role, modifiers)
        else:
            self.cursorRequested.emit(point)

    def _on_left_drag(self, kind: str, start, now, screen_delta, is_start: bool, is_finish: bool) -> None:
        if kind in ("translate", "rotate"):
            self.manualDrag.emit(kind, self.to_physical(*start), self.to_physical(*now), is_finish)
        elif kind == "window_level":
            self.windowLevelDrag.emit(float(screen_delta.x()), float(screen_delta.y()))
        elif kind == "navigate":
            self.cursorRequested.emit(self.to_physical(*now))
        elif kind == "roi":
            self.regionDrag.emit(self.to_physical(*start), self.to_physical(*now), is_finish)
        # landmark mode: drags belong to markers; an empty-space drag does nothing.

    def _on_mouse_moved(self, scene_pos) -> None:
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            return
        p = self.view_box.mapSceneToView(scene_pos)
        self.hovered.emit(self.to_physical(p.x(), p.y()))

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = ev.key()
        steps = {QtCore.Qt.Key.Key_Up: 1, QtCore.Qt.Key.Key_Down: -1,
                 QtCore.Qt.Key.Key_PageUp: 5, QtCore.Qt.Key.Key_PageDown: -5}.get(key)
        if steps is not None:
            self.step_slice(steps)
            ev.accept()
            return
        super().keyPressEvent(ev)
