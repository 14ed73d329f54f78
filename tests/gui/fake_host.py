"""One small stand-in for the main window, shared by the panel tests: a real Workspace
(the model every panel observes and commands) plus fake views, so a dock can be tested
without the real window. It records what the panel asked (messages, errors, previews,
transform steps)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import SimpleITK as sitk
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import read_image
from regviewer.core.imaging.slicing import planes_for
from regviewer.core.workspace import Workspace
from regviewer.gui.background import LatestResult
from regviewer.gui.bridge import WorkspaceBridge


def small_volume(path: str | None = None, dimension: int = 3) -> Volume:
    size = [24, 20, 16][:dimension]
    arr = np.random.default_rng(0).random(size[::-1]).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((2.0, 2.0, 3.0)[:dimension])
    image.SetOrigin((-20.0, -15.0, -10.0)[:dimension])
    return Volume(image, path=path)


class FakeView(QtCore.QObject):
    """What a dock uses of a SliceView: role, plane, depth, view_box and two signals."""

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


class FakeVolumeView:
    def __init__(self) -> None:
        self.polylines: dict = {}

    def set_polylines(self, name, lines, color=(1, 1, 0)) -> None:
        self.polylines[name] = lines


class FakeHost(QtWidgets.QMainWindow):
    """`RegistrationHost` over a real Workspace.

    `roles` makes one axial view per role; `all_planes=True` makes overlay views of
    every plane instead. `transform` (settable) starts as `initial`, not an undo step.
    """

    def __init__(self, fixed: Volume | None = None, moving: Volume | None = None,
                 roles: tuple[str, ...] = ("fixed", "moving"), all_planes: bool = False, with_3d: bool = False,
                 initial: sitk.Transform | None = None) -> None:
        super().__init__()
        self.resize(900, 600)
        self.graphics = pg.GraphicsLayoutWidget()
        self.setCentralWidget(self.graphics)
        self.workspace = Workspace()
        self.background = LatestResult(self)
        self.bridge = WorkspaceBridge(self.workspace, self)
        self.workspace.open(fixed if fixed is not None else small_volume(),
                            moving if moving is not None else small_volume())
        dim = self.workspace.dimension
        self.steps: list[str] = []  # the undo text of every transform change
        self.centered: list[tuple] = []
        self.messages: list[str] = []
        self.errors: list[BaseException] = []
        self.previews: list = []
        self.modes: list[str] = []
        self.modified_count = 0
        self._image_callbacks: list = []
        self._transform_callbacks: list = []
        self.parts: dict = {}
        self.workspace.events.transform.connect(self._on_transform)
        self.workspace.events.preview.connect(self.previews.append)
        self.transform = initial if initial is not None else sitk.TranslationTransform(dim, (5.0, 0.0, 0.0)[:dim])
        fixed_v = self.workspace.fixed
        planes = planes_for(fixed_v)
        if all_planes:
            pairs = [("overlay", plane) for plane in planes.values()]
        else:
            pairs = [(role, planes["axial"]) for role in roles]
        self.views = [FakeView(role, plane, plane.depth_of(fixed_v.center_physical()),
                               self.graphics.addViewBox(lockAspect=True, invertY=True)) for role, plane in pairs]
        self._volume_view = FakeVolumeView() if with_3d else None
        for key, slot in (("Ctrl+Z", self.workspace.undo), ("Ctrl+Shift+Z", self.workspace.redo)):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self)
            shortcut.activated.connect(slot)

    # --- the current transform, through the Workspace (setting it directly is not an undo step)
    @property
    def transform(self) -> sitk.Transform:
        return self.workspace.transform

    @transform.setter
    def transform(self, value: sitk.Transform) -> None:
        self.workspace.set_transform(value, "Test set-up")
        self.workspace.history.clear()
        self.steps.clear()

    @property
    def transform_history(self) -> list[str]:
        return self.steps

    def _on_transform(self, _state) -> None:
        self.steps.append(self.workspace.history.undo_text)
        for callback in self._transform_callbacks:
            callback()

    def set_images(self, fixed: Volume | None, moving: Volume | None) -> None:
        """Replace the images (None leaves the Workspace without that image)."""
        if fixed is not None:
            self.workspace.open(fixed, moving)
        else:
            self.workspace.fixed = None
        if moving is None:
            self.workspace.moving = None
        for callback in self._image_callbacks:
            callback()

    # --- RegistrationHost
    def fixed_volume(self):
        return self.workspace.fixed

    def moving_volume(self):
        return self.workspace.moving

    def current_transform(self):
        return self.workspace.transform

    def set_current_transform(self, transform, description, source=None):
        self.workspace.set_transform(transform, description, source)

    def show_preview_transform(self, transform):
        self.workspace.set_preview(transform)

    def slice_views(self):
        return list(self.views)

    def volume_view(self):
        return self._volume_view

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

    def set_overlay_mode(self, mode):
        self.modes.append(mode)

    # --- what the session controller needs of the window
    def session_parts(self):
        return dict(self.parts)

    def open_images(self, fixed, moving):
        self.set_images(read_image(fixed), read_image(moving))
