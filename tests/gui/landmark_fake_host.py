"""A small stand-in for the main window (the `gui.host.RegistrationHost` protocol), so the
landmark dock and the session controller can be tested without the real window."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import read_image
from regviewer.core.imaging.slicing import planes_for


def small_volume(path: str | None = None, dimension: int = 3) -> Volume:
    size = [24, 20, 16][:dimension]
    arr = np.random.default_rng(0).random(size[::-1]).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((2.0, 2.0, 3.0)[:dimension])
    image.SetOrigin((-20.0, -15.0, -10.0)[:dimension])
    return Volume(image, path=path)


class FakeView(QtCore.QObject):
    """What the dock uses of a SliceView: role, plane, depth, view_box and two signals."""

    clicked = QtCore.pyqtSignal(object, str, object)
    sliceChanged = QtCore.pyqtSignal()

    def __init__(self, role: str, plane, depth: float, view_box: pg.ViewBox) -> None:
        super().__init__()
        self.role = role
        self.plane = plane
        self.depth = depth
        self.view_box = view_box

    def click_at(self, point) -> None:
        """A landmark-mode click at a FIXED-frame physical point."""
        self.clicked.emit(tuple(float(x) for x in point), self.role, QtCore.Qt.KeyboardModifier.NoModifier)


class FakeHost(QtWidgets.QMainWindow):
    def __init__(self, fixed: Volume | None = None, moving: Volume | None = None,
                 roles: tuple[str, ...] = ("fixed", "moving")) -> None:
        super().__init__()
        self.resize(900, 600)
        self.graphics = pg.GraphicsLayoutWidget()
        self.setCentralWidget(self.graphics)
        self._fixed = fixed if fixed is not None else small_volume()
        self._moving = moving if moving is not None else small_volume()
        dim = self._fixed.dimension
        self.transform: sitk.Transform = sitk.TranslationTransform(dim, (5.0, 0.0, 0.0)[:dim])
        self.transform_history: list[str] = []
        self.centered: list[tuple] = []
        self.messages: list[str] = []
        self.errors: list[BaseException] = []
        self.modified_count = 0
        self._image_callbacks: list = []
        self._transform_callbacks: list = []
        self.parts: dict = {}
        plane = planes_for(self._fixed)["axial"]
        depth = plane.depth_of(self._fixed.center_physical())
        self.views = [FakeView(role, plane, depth, self.graphics.addViewBox(lockAspect=True, invertY=True))
                      for role in roles]

    # --- RegistrationHost
    def fixed_volume(self):
        return self._fixed

    def moving_volume(self):
        return self._moving

    def current_transform(self):
        return self.transform

    def set_current_transform(self, transform, description):
        self.transform = transform
        self.transform_history.append(description)
        for callback in self._transform_callbacks:
            callback()

    def show_preview_transform(self, transform):
        pass

    def slice_views(self):
        return list(self.views)

    def volume_view(self):
        return None

    def center_on(self, point):
        self.centered.append(tuple(point))

    def show_message(self, text):
        self.messages.append(text)

    def show_error(self, error):
        self.errors.append(error)

    def on_images_changed(self, callback):
        self._image_callbacks.append(callback)

    def on_transform_changed(self, callback):
        self._transform_callbacks.append(callback)

    def register_session_part(self, key, get_state, set_state):
        self.parts[key] = (get_state, set_state)

    def mark_modified(self):
        self.modified_count += 1

    # --- what the session controller needs of the window
    def session_parts(self):
        return dict(self.parts)

    def open_images(self, fixed, moving):
        self._fixed, self._moving = read_image(fixed), read_image(moving)
        for callback in self._image_callbacks:
            callback()
