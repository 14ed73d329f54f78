"""The reconstructed stack in 3D: the main window's VTK view (`gui.views.volume_view`,
used as it is) showing the volume's three planes through the current section and its
outline, as the 2D views show them (`StackViewModel.volume_planes`).

Textures are pushed at most once per `INTERVAL_MS`, however often sections arrive or a
correction lands: uploading three textures and rendering in software OpenGL costs tens of
milliseconds, which the 2D views and the slider must not pay on every section.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from regviewer.gui.views.volume_view import make_volume_view

INTERVAL_MS = 1000


class StackVolume3D(QtCore.QObject):
    """`widget` goes in the layout; `view` is the VolumeView (None without a display).
    `request(model, k)` asks for an update; `pushes` counts the updates made."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.widget, self.view = make_volume_view(parent)
        self.widget.setToolTip("The aligned volume in 3D: the section, row and column planes (drag to turn it)")
        self.shown: set[str] = set()
        self.pushes = 0
        self._pending = None
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._push)

    def request(self, model, k: int) -> None:
        if self.view is None or model is None:
            return
        self._pending = (model, k)
        if not self._timer.isActive():
            self._timer.start(INTERVAL_MS if self.pushes else 0)

    def flush(self) -> None:
        """Push a pending update now (tests, screenshots)."""
        if self._pending is not None:
            self._timer.stop()
            self._push()

    def _push(self) -> None:
        if self._pending is None:
            return
        model, k = self._pending
        self._pending = None
        self.view.set_bounds(model.volume_corners())
        for key, (plane, depth, rgb) in model.volume_planes(k).items():
            self.view.set_plane_image(key, plane, depth, rgb)
            self.shown.add(key)
        self.pushes += 1

    def close(self) -> None:
        self._timer.stop()
        if self.view is not None:
            self.view.close_vtk()


__all__ = ["StackVolume3D"]
