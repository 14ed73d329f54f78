"""The 3D view (VTK): the three slice planes, textured with what the 2D views show,
the fixed image's bounding box, and named polylines from panels (e.g. a deformation
grid, drawn over the planes), all in fixed physical space (LPS mm).

VTK's Qt widget needs a real (or virtual, Xvfb) X display with OpenGL; under
``QT_QPA_PLATFORM=offscreen`` it cannot create a GL context. `make_volume_view`
therefore returns a plain label instead when the widget cannot be made (or when
``REGVIEWER_NO_3D=1``), and the window works without a 3D view.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np
from PyQt6 import QtCore, QtWidgets

from regviewer.core.imaging.composite import to_rgb
from regviewer.core.imaging.slicing import PlaneGeometry

RENDER_SHARE = 0.05  # of the GUI thread's time for 3D frames while the 2D views keep changing
MAX_RENDER_GAP_S = 3.0  # but a frame at least this often (the first, which builds the scene, excepted)


def _vtk_namespace() -> SimpleNamespace:
    """The few VTK classes this view uses, from their own modules (importing the whole
    `vtk` package costs about a second more at start-up)."""
    import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the interactor styles)
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL back end)
    from vtkmodules.vtkCommonCore import VTK_UNSIGNED_CHAR, vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
    from vtkmodules.vtkFiltersSources import vtkOutlineSource, vtkPlaneSource
    from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
    from vtkmodules.vtkRenderingCore import (vtkActor, vtkPolyDataMapper, vtkRenderer, vtkTexture,
                                             vtkWindowToImageFilter)

    return SimpleNamespace(**{k: v for k, v in locals().items()})


class VolumeView(QtWidgets.QWidget):
    """A VTK render window with slice planes and polylines (implements `VolumeViewLike`)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
        from vtkmodules.util import numpy_support

        vtk = _vtk_namespace()
        self._vtk = vtk
        self._np_support = numpy_support
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.interactor = QVTKRenderWindowInteractor(self)
        layout.addWidget(self.interactor)
        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(0.08, 0.08, 0.1)
        self.render_window = self.interactor.GetRenderWindow()
        # No multisampling: with software OpenGL (Xvfb, remote desktops) 4x MSAA doubled the
        # cost of a frame, and a frame blocks the GUI thread (slice steps wait for it).
        self.render_window.SetMultiSamples(0)
        self.render_window.AddRenderer(self.renderer)
        # Polylines (the deformation grid) are drawn in a second layer, over the textured
        # planes: a warped grid leaves its plane by the displacement's normal part, and
        # half of it would otherwise be hidden behind (or z-fight with) the opaque slices.
        self.line_renderer = vtk.vtkRenderer()
        self.line_renderer.SetLayer(1)
        self.line_renderer.SetActiveCamera(self.renderer.GetActiveCamera())
        self.line_renderer.InteractiveOff()
        self.render_window.SetNumberOfLayers(2)
        self.render_window.AddRenderer(self.line_renderer)
        self.interactor.SetInteractorStyle(vtk.vtkInteractorStyleTrackballCamera())
        self._planes: dict[str, tuple] = {}
        self._pending: dict[str, tuple] = {}  # key -> (plane, depth, image) not yet uploaded
        self._polylines: dict[str, object] = {}
        self._box_actor = None
        self._camera_set = False
        self._render_timer = QtCore.QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render_now)
        self._first_request = 0.0
        self._next_render = 0.0  # no render before this (time.monotonic), see schedule_render
        self.frames = 0
        self.interactor.Initialize()

    # --- VolumeViewLike ----------------------------------------------------------------
    def set_polylines(self, name: str, lines: list[np.ndarray] | None, color: tuple[float, float, float] = (1, 1, 0)) -> None:
        """Show (or with None remove) a set of (N, 3) polylines in LPS mm under `name`."""
        vtk = self._vtk
        old = self._polylines.pop(name, None)
        if old is not None:
            self.line_renderer.RemoveActor(old)
        arrays = [np.asarray(line, dtype=float) for line in (lines or [])]
        arrays = [a if a.shape[1] == 3 else np.column_stack([a, np.zeros(len(a))]) for a in arrays
                  if a.ndim == 2 and len(a) >= 2 and a.shape[1] in (2, 3)]
        if arrays:
            ns = self._np_support
            points = vtk.vtkPoints()
            points.SetData(ns.numpy_to_vtk(np.concatenate(arrays), deep=True))
            lengths = np.array([len(a) for a in arrays], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            cells = vtk.vtkCellArray()
            cells.SetData(ns.numpy_to_vtkIdTypeArray(offsets, deep=True),
                          ns.numpy_to_vtkIdTypeArray(np.arange(offsets[-1], dtype=np.int64), deep=True))
            poly = vtk.vtkPolyData()
            poly.SetPoints(points)
            poly.SetLines(cells)
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputData(poly)
            actor = vtk.vtkActor()
            actor.SetMapper(mapper)
            actor.GetProperty().SetColor(*color)
            self.line_renderer.AddActor(actor)
            self._polylines[name] = actor
        self.schedule_render()

    def polyline_names(self) -> list[str]:
        return sorted(self._polylines)

    # --- slice planes ------------------------------------------------------------------------
    def set_bounds(self, corners: np.ndarray) -> None:
        """Outline the fixed image's physical extent (its 8 corner points, LPS mm)."""
        vtk = self._vtk
        if self._box_actor is not None:
            self.renderer.RemoveActor(self._box_actor)
        pts = np.asarray(corners, float)
        if pts.shape[1] == 2:
            pts = np.column_stack([pts, np.zeros(len(pts))])
        source = vtk.vtkOutlineSource()
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        source.SetBounds(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(source.GetOutputPort())
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.6, 0.6, 0.6)
        self.renderer.AddActor(actor)
        self._box_actor = actor
        if not self._camera_set:
            self._reset_camera()
        self.schedule_render()

    def _reset_camera(self) -> None:
        # Look at the patient from the front (anterior = −y in LPS), superior up.
        camera = self.renderer.GetActiveCamera()
        camera.SetPosition(0, -1, 0)
        camera.SetFocalPoint(0, 0, 0)
        camera.SetViewUp(0, 0, 1)
        camera.Azimuth(30)
        camera.Elevation(20)
        self.renderer.ResetCamera()
        self._camera_set = True

    def set_plane_image(self, key: str, plane: PlaneGeometry, depth: float, image: np.ndarray) -> None:
        """Texture the plane `key` at `depth` with a uint8 slice, grey (rows, cols) or RGB
        (rows, cols, 3). Kept until the next frame: a slice step or a snapshot redraws the
        2D views many times between two 3D frames, and only the last picture is uploaded."""
        if plane.dimension != 3:
            return
        self._pending[key] = (plane, depth, image)
        self.schedule_render()

    def _upload_planes(self) -> None:
        """Give VTK the newest picture of each plane (see `set_plane_image`)."""
        vtk = self._vtk
        pending, self._pending = self._pending, {}
        for key, (plane, depth, image) in pending.items():
            if key not in self._planes:
                source = vtk.vtkPlaneSource()
                texture = vtk.vtkTexture()
                texture.InterpolateOn()
                vtk_image = vtk.vtkImageData()
                texture.SetInputData(vtk_image)
                mapper = vtk.vtkPolyDataMapper()
                mapper.SetInputConnection(source.GetOutputPort())
                actor = vtk.vtkActor()
                actor.SetMapper(mapper)
                actor.SetTexture(texture)
                actor.GetProperty().LightingOff()
                self.renderer.AddActor(actor)
                self._planes[key] = (source, texture, vtk_image, actor)
            source, _texture, vtk_image, _actor = self._planes[key]
            rows, cols = plane.shape
            # Texture (0,0) is the first pixel in memory; VTK images grow upwards, so flip rows
            # and map the plane's first pixel to the source origin.
            p0 = plane.to_physical(-0.5, -0.5, depth)
            p1 = plane.to_physical(cols - 0.5, -0.5, depth)
            p2 = plane.to_physical(-0.5, rows - 0.5, depth)
            source.SetOrigin(*p0)
            source.SetPoint1(*p1)
            source.SetPoint2(*p2)
            data = np.ascontiguousarray(to_rgb(image)[..., :3], dtype=np.uint8)
            vtk_image.SetDimensions(data.shape[1], data.shape[0], 1)
            scalars = self._np_support.numpy_to_vtk(data.reshape(-1, 3), deep=True,
                                                    array_type=vtk.VTK_UNSIGNED_CHAR)
            vtk_image.GetPointData().SetScalars(scalars)
            vtk_image.Modified()

    def schedule_render(self) -> None:
        """Render once the 2D views are idle for a moment (software OpenGL takes tens of
        ms per frame; it must not compete with slice scrolling or dragging), but at
        least every half second while they keep changing -- and, while they do, never
        more than `RENDER_SHARE` of the GUI thread's time (a 40 ms frame: at most
        about one a second during a live run, whose snapshots come every 250 ms)."""
        now = time.monotonic()
        if not self._render_timer.isActive():
            self._first_request = now
        if now - self._first_request < 0.5:
            wait = max(0.12, self._next_render - now)
            self._render_timer.start(int(1000 * wait))

    def _render_now(self) -> None:
        if self.isVisible():
            start = time.monotonic()
            self._upload_planes()
            self.render_window.Render()
            cost = time.monotonic() - start
            # The first frame (building the scene, compiling shaders) can take seconds: it
            # says nothing about the next ones. Later frames keep to RENDER_SHARE, but never
            # leave the view more than MAX_RENDER_GAP_S behind.
            self.frames += 1
            gap = 0.0 if self.frames == 1 else min(cost / RENDER_SHARE, MAX_RENDER_GAP_S)
            self._next_render = start + gap

    def snapshot(self):
        """The rendered picture as a QImage (an OpenGL widget grabs as black), or None."""
        from PyQt6 import QtGui

        vtk = self._vtk
        try:
            self._upload_planes()
            self.render_window.Render()
            grab = vtk.vtkWindowToImageFilter()
            grab.SetInput(self.render_window)
            grab.ReadFrontBufferOff()
            grab.Update()
            out = grab.GetOutput()
            w, h, _ = out.GetDimensions()
            arr = self._np_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            return QtGui.QImage(arr.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()
        except Exception:  # noqa: BLE001
            return None

    def close_vtk(self) -> None:
        self._render_timer.stop()
        try:
            self.interactor.Finalize()
        except Exception:  # noqa: BLE001 - the GL context may already be gone
            pass


class LazyVolumeView(QtWidgets.QWidget):
    """The 3D view, made when it is first shown (implements `VolumeViewLike` meanwhile).

    VTK with software OpenGL costs about 170 MB and most of a second: a window that never
    shows the "3 views + 3D" layout does not pay it. What the panels set before (bounds,
    polylines, plane pictures) is kept and handed over; any other attribute (`render_window`,
    ...) makes the view at once. If VTK fails then, a label says why."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._real: VolumeView | None = None
        self._failed = ""
        self._bounds: np.ndarray | None = None
        self._lines: dict[str, tuple] = {}
        self._images: dict[str, tuple] = {}

    @property
    def created(self) -> bool:
        return self._real is not None

    def _make(self) -> VolumeView | None:
        if self._real is None and not self._failed:
            try:
                self._real = VolumeView(self)
            except Exception as exc:  # noqa: BLE001 - any VTK/GL failure must not stop the window
                self._failed = f"3D view unavailable: {exc}"
                label = _reason_label(self._failed, self)
                self._layout.addWidget(label)
                label.show()
                return None
            self._layout.addWidget(self._real)
            self._real.setGeometry(self.rect())  # now, not at the next layout pass (a snapshot may come first)
            self._real.show()  # a child added to a widget already shown stays hidden otherwise
            if self._bounds is not None:
                self._real.set_bounds(self._bounds)
            for name, (lines, color) in self._lines.items():
                self._real.set_polylines(name, lines, color)
            for key, args in self._images.items():
                self._real.set_plane_image(key, *args)
            self._bounds, self._lines, self._images = None, {}, {}
        return self._real

    def showEvent(self, ev) -> None:  # noqa: N802
        self._make()
        super().showEvent(ev)

    def __getattr__(self, name: str):  # only for what this class does not define: the real view's own
        if name.startswith("__") or name in ("_real", "_failed", "_layout", "_bounds", "_lines", "_images"):
            raise AttributeError(name)
        real = self._make()
        if real is None:
            raise AttributeError(f"{name}: {self._failed}")
        return getattr(real, name)

    # --- VolumeViewLike, kept until the view exists -----------------------------------------
    def set_polylines(self, name: str, lines, color: tuple[float, float, float] = (1, 1, 0)) -> None:
        if self._real is not None:
            self._real.set_polylines(name, lines, color)
        elif lines:
            self._lines[name] = (lines, color)
        else:
            self._lines.pop(name, None)

    def polyline_names(self) -> list[str]:
        return self._real.polyline_names() if self._real is not None else sorted(self._lines)

    def set_bounds(self, corners: np.ndarray) -> None:
        if self._real is not None:
            self._real.set_bounds(corners)
        else:
            self._bounds = np.asarray(corners, float)

    def set_plane_image(self, key: str, plane: PlaneGeometry, depth: float, image: np.ndarray) -> None:
        if self._real is not None:
            self._real.set_plane_image(key, plane, depth, image)
        else:
            self._images[key] = (plane, depth, image)

    def schedule_render(self) -> None:
        if self._real is not None:
            self._real.schedule_render()

    def snapshot(self):
        real = self._make()
        return real.snapshot() if real is not None else None

    def close_vtk(self) -> None:
        if self._real is not None:
            self._real.close_vtk()


def _reason_label(reason: str, parent: QtWidgets.QWidget | None) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(reason, parent)
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet("color: #999; background: #141418;")
    return label


def make_volume_view(parent: QtWidgets.QWidget | None = None) -> tuple[QtWidgets.QWidget, LazyVolumeView | None]:
    """A 3D view (made when first shown: `LazyVolumeView`), or a label saying why there is
    none (never raises)."""
    if os.environ.get("REGVIEWER_NO_3D") == "1":
        reason = "3D view turned off (REGVIEWER_NO_3D=1)"
    elif QtWidgets.QApplication.platformName() in ("offscreen", "minimal"):
        reason = "3D view needs a display (run under X or Xvfb with QT_QPA_PLATFORM=xcb)"
    else:
        view = LazyVolumeView(parent)
        return view, view
    return _reason_label(reason, parent), None
