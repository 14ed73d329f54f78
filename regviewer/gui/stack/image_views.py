"""The stack window's 2D views: a pyqtgraph view box per image, with its caption above it.

`DragBox`: Shift-drag moves the current section, Ctrl-drag turns it. `ClickBox`: a plain
left click reports the pixel it hit (landmark picking). Other gestures are pyqtgraph's.
"""

from __future__ import annotations

import pyqtgraph as pg
from PyQt6 import QtCore


class DragBox(pg.ViewBox):
    """Shift-drag moves the current section, Ctrl-drag turns it (about the view centre);
    other gestures are pyqtgraph's (pan, zoom)."""

    def __init__(self, on_drag) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._on_drag = on_drag
        self._kind: str | None = None

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        mods = ev.modifiers()
        if ev.isStart():
            self._kind = ("translate" if mods & QtCore.Qt.KeyboardModifier.ShiftModifier else
                          "rotate" if mods & QtCore.Qt.KeyboardModifier.ControlModifier else None)
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or self._kind is None:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        last, now = self.mapSceneToView(ev.lastScenePos()), self.mapSceneToView(ev.scenePos())
        self._on_drag(self._kind, (last.x(), last.y()), (now.x(), now.y()), ev.isStart(), ev.isFinish())
        if ev.isFinish():
            self._kind = None


class ClickBox(pg.ViewBox):
    """A left click (no modifier) calls `on_click(col, row)` in image pixels."""

    def __init__(self, on_click) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._on_click = on_click

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton and not ev.modifiers():
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self._on_click(p.x(), p.y())
        else:
            super().mouseClickEvent(ev)


def image_view(caption: str, title: str, box: pg.ViewBox | None = None) -> tuple[pg.GraphicsLayoutWidget, pg.ImageItem]:
    """A view with its `caption` drawn above it (what it shows) and `title` as the tooltip (how to use it)."""
    widget = pg.GraphicsLayoutWidget()
    box = box if box is not None else pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    widget.addLabel(caption, row=0, col=0, size="9pt")
    widget.addItem(box, row=1, col=0)
    widget.view_box = box
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    widget.setToolTip(title)
    return widget, item


__all__ = ["ClickBox", "DragBox", "image_view"]
