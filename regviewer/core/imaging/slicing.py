"""Display planes of the fixed image and reslicing any image through them.

A view shows a plane of *physical* space (LPS mm), not a slab of voxels: the three
planes are axis-aligned in LPS, so an image with oblique direction cosines is
resliced rather than shown in voxel order. Screen conventions follow ITK-SNAP's
radiological display: axial and coronal show the patient's right on the screen's
left; sagittal shows anterior on the left; superior and anterior are at the top.

A 2D image has one plane: its own pixel grid, shown upright.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume

ORIENTATIONS = ("axial", "coronal", "sagittal")

# (screen-right axis u, screen-down axis v, normal n) in LPS for each 3D orientation.
_PLANE_AXES = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}
_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}

_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


def orientation_letter(direction: Sequence[float]) -> str:
    """The anatomical letter (L/R/A/P/S/I) a physical LPS direction points towards."""
    d = np.asarray(direction, dtype=float)
    if d.size == 2:
        d = np.append(d, 0.0)
    axis = int(np.argmax(np.abs(d)))
    return _LETTERS[(axis, 1 if d[axis] > 0 else -1)]


@dataclass(frozen=True)
class PlaneGeometry:
    """A pixel grid on a physical plane: pixel (col, row) sits at
    ``origin + col*spacing[0]*u + row*spacing[1]*v + depth*n``.

    `depth` is the signed distance along the normal `n` of the slice being shown;
    `depth_range` and `depth_step` say where slices exist and how far a scroll moves.
    """

    orientation: str
    origin: tuple[float, ...]
    u: tuple[float, ...]
    v: tuple[float, ...]
    n: tuple[float, ...]
    spacing: tuple[float, float]
    shape: tuple[int, int]  # (height, width) = (rows, cols), the numpy shape of a slice
    depth_range: tuple[float, float]
    depth_step: float

    @property
    def dimension(self) -> int:
        return len(self.origin)

    def to_physical(self, col: float, row: float, depth: float = 0.0) -> tuple[float, ...]:
        p = (
            np.asarray(self.origin)
            + col * self.spacing[0] * np.asarray(self.u)
            + row * self.spacing[1] * np.asarray(self.v)
        )
        if self.dimension == 3:
            p = p + depth * np.asarray(self.n)
        return tuple(float(x) for x in p)

    def to_plane(self, point: Sequence[float]) -> tuple[float, float, float]:
        """Physical point → (col, row, depth) on this plane (continuous pixels)."""
        rel = np.asarray(point, dtype=float) - np.asarray(self.origin)
        col = float(rel @ np.asarray(self.u)) / self.spacing[0]
        row = float(rel @ np.asarray(self.v)) / self.spacing[1]
        depth = float(rel @ np.asarray(self.n)) if self.dimension == 3 else 0.0
        return col, row, depth

    def depth_of(self, point: Sequence[float]) -> float:
        return self.to_plane(point)[2]

    def edge_letters(self) -> dict[str, str]:
        """Letters for the left, right, top and bottom edges of the view."""
        u, v = np.asarray(self.u), np.asarray(self.v)
        return {
            "left": orientation_letter(-u),
            "right": orientation_letter(u),
            "top": orientation_letter(-v),
            "bottom": orientation_letter(v),
        }


def planes_for(reference: Volume) -> dict[str, PlaneGeometry]:
    """The display planes of a fixed image: axial/coronal/sagittal in 3D, one in 2D."""
    if reference.dimension == 2:
        return {"axial": _plane_2d(reference)}
    return {name: _plane_3d(reference, name) for name in ORIENTATIONS}


def _plane_2d(reference: Volume) -> PlaneGeometry:
    d = reference.direction
    width, height = reference.size
    return PlaneGeometry(
        orientation="axial",
        origin=reference.origin,
        u=tuple(d[:, 0]),
        v=tuple(d[:, 1]),
        n=(0.0, 0.0),
        spacing=(reference.spacing[0], reference.spacing[1]),
        shape=(height, width),
        depth_range=(0.0, 0.0),
        depth_step=1.0,
    )


def _axis_spacing(reference: Volume, axis: np.ndarray) -> float:
    """Voxel spacing along a physical axis: that of the index axis best aligned to it."""
    alignment = np.abs(reference.direction.T @ axis)
    return float(reference.spacing[int(np.argmax(alignment))])


def _plane_3d(reference: Volume, orientation: str) -> PlaneGeometry:
    u, v, n = (np.asarray(a) for a in _PLANE_AXES[orientation])
    corners = reference.corners_physical()
    su, sv, sn = (_axis_spacing(reference, a) for a in (u, v, n))
    cu, cv, cn = corners @ u, corners @ v, corners @ n
    width = int(round((cu.max() - cu.min()) / su)) + 1
    height = int(round((cv.max() - cv.min()) / sv)) + 1
    origin = cu.min() * u + cv.min() * v  # depth 0 is the plane through the LPS origin
    return PlaneGeometry(
        orientation=orientation,
        origin=tuple(float(x) for x in origin),
        u=tuple(u),
        v=tuple(v),
        n=tuple(n),
        spacing=(su, sv),
        shape=(height, width),
        depth_range=(float(cn.min()), float(cn.max())),
        depth_step=sn,
    )


def reslice(
    image: sitk.Image,
    plane: PlaneGeometry,
    depth: float = 0.0,
    transform: sitk.Transform | None = None,
    interpolator: str = "linear",
    default_value: float = 0.0,
    threads: int | None = None,
) -> np.ndarray:
    """Sample `image` on the plane's pixel grid at `depth`, under `transform`.

    `transform` maps fixed (plane) points to the image's points, the resampling
    direction of every registration result. Returns (rows, cols) float32 for a scalar
    image, (rows, cols, channels) uint8-range float32 for RGB. `threads`: ITK threads for
    this call on a 3D plane (None: the global default), e.g. 1 for a background job that
    should leave the other cores to the engine and the GUI.
    """
    tx = transform if transform is not None else sitk.Transform(plane.dimension, sitk.sitkIdentity)
    interp = _INTERPOLATORS[interpolator]
    rows, cols = plane.shape
    n_comp = image.GetNumberOfComponentsPerPixel()
    pixel_type = sitk.sitkVectorFloat32 if n_comp > 1 else sitk.sitkFloat32
    if plane.dimension == 2:
        direction = np.column_stack([plane.u, plane.v]).ravel()
        out = sitk.Resample(
            image, [cols, rows], tx, interp, plane.origin, plane.spacing, tuple(direction), default_value, pixel_type
        )
        return sitk.GetArrayFromImage(out)
    origin = np.asarray(plane.origin) + depth * np.asarray(plane.n)
    direction = np.column_stack([plane.u, plane.v, plane.n]).ravel()
    if threads is not None:
        resampler = sitk.ResampleImageFilter()
        resampler.SetSize([cols, rows, 1])
        resampler.SetTransform(tx)
        resampler.SetInterpolator(interp)
        resampler.SetOutputOrigin(tuple(origin))
        resampler.SetOutputSpacing((plane.spacing[0], plane.spacing[1], 1.0))
        resampler.SetOutputDirection(tuple(direction))
        resampler.SetDefaultPixelValue(default_value)
        resampler.SetOutputPixelType(pixel_type)
        resampler.SetNumberOfThreads(int(threads))
        return sitk.GetArrayFromImage(resampler.Execute(image))[0]
    out = sitk.Resample(
        image,
        [cols, rows, 1],
        tx,
        interp,
        tuple(origin),
        (plane.spacing[0], plane.spacing[1], 1.0),
        tuple(direction),
        default_value,
        pixel_type,
    )
    return sitk.GetArrayFromImage(out)[0]
