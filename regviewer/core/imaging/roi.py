"""A region of interest drawn on the fixed image, and the mask a registration uses from it.

The region lives in FIXED physical space (LPS mm), not in voxels, so it survives
resampling and is drawn the same in every view: a box whose edges follow the display
planes' axes (`core.imaging.slicing`) and/or painted balls (centre, radius). In 3D those
axes are the LPS axes (an oblique image is resliced), so the box is an LPS box; a 2D image
is shown on its own pixel grid, which may be rotated, so its box follows that grid
(`box_axes`), and a drag on screen is the rectangle on screen. A voxel of the fixed grid
is inside when its centre is in the box or in any ball, so the outline is where the mask is.

`rasterise` makes the mask (UInt8, 1 inside, on the fixed image's grid); every run uses it
as the fixed mask, so the metric only looks there (the prostate, not the whole pelvis).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ParameterError

Point = tuple[float, ...]


@dataclass(frozen=True)
class RegionOfInterest:
    """`box`: (lower, upper) corners (lower <= upper on every axis) in the box's frame, or
    None; `box_axes`: that frame's axes, orthonormal LPS rows (a point p has coordinates
    box_axes @ p), None for the LPS axes themselves; `balls`: painted (centre LPS mm,
    radius mm). Empty when neither box nor ball is set."""

    box: tuple[Point, Point] | None = None
    balls: tuple[tuple[Point, float], ...] = ()
    box_axes: tuple[Point, ...] | None = None

    @property
    def is_empty(self) -> bool:
        return self.box is None and not self.balls

    def frame(self, dimension: int) -> np.ndarray:
        """The box's axes as a matrix (rows); the identity for an LPS box."""
        return np.eye(dimension) if self.box_axes is None else np.asarray(self.box_axes, float)

    def with_box(self, a: Sequence[float], b: Sequence[float],
                 axes: Sequence[Sequence[float]] | None = None) -> "RegionOfInterest":
        """The same region with the box spanning LPS corners `a` and `b` (any order), its
        edges along `axes` (orthonormal rows; default the LPS axes)."""
        frame = None if axes is None else tuple(tuple(float(x) for x in row) for row in axes)
        if frame is not None:
            m = np.asarray(frame)
            if m.shape != (len(a), len(a)) or not np.allclose(m @ m.T, np.eye(len(a)), atol=1e-6):
                raise ParameterError(f"The box axes of a region of interest must be orthonormal, not {frame}")
        r = np.eye(len(a)) if frame is None else np.asarray(frame)
        qa, qb = r @ np.asarray(a, float), r @ np.asarray(b, float)
        lo = tuple(float(min(x, y)) for x, y in zip(qa, qb))
        hi = tuple(float(max(x, y)) for x, y in zip(qa, qb))
        return replace(self, box=(lo, hi), box_axes=frame)

    def with_box_in_plane(self, a: Sequence[float], b: Sequence[float], in_plane: Sequence[Sequence[float]],
                          full_extent: tuple[Sequence[float], Sequence[float]]) -> "RegionOfInterest":
        """Set the box's extent along the two LPS axes of a view plane (`in_plane`: its
        unit u and v) from a drag from `a` to `b`, keeping its extent along the third
        axis (the whole of `full_extent`, the image's LPS bounds, when there is no box yet).
        A plane whose axes are not LPS axes (a rotated 2D image) gives a box along them
        (3D display planes are always LPS-aligned: `slicing.planes_for`)."""
        if not all(np.isclose(np.max(np.abs(axis)), 1.0) for axis in in_plane):
            if len(in_plane) != len(a):
                raise ParameterError("A box can be drawn only on display planes along the LPS axes")
            return self.with_box(a, b, in_plane)
        box = self.box if self.box_axes is None else None  # an earlier box along other axes: start afresh
        lo = np.array(box[0] if box else full_extent[0], float)
        hi = np.array(box[1] if box else full_extent[1], float)
        a, b = np.asarray(a, float), np.asarray(b, float)
        for axis_vector in in_plane:
            axis = int(np.argmax(np.abs(axis_vector)))
            lo[axis], hi[axis] = min(a[axis], b[axis]), max(a[axis], b[axis])
        return self.with_box(lo, hi)

    def with_ball(self, centre: Sequence[float], radius_mm: float) -> "RegionOfInterest":
        if not radius_mm > 0:
            raise ParameterError(f"A painted region needs a positive radius, not {radius_mm} mm")
        return replace(self, balls=self.balls + ((tuple(float(x) for x in centre), float(radius_mm)),))

    def to_json(self) -> dict[str, Any]:
        out = {"box": None if self.box is None else [list(self.box[0]), list(self.box[1])],
               "balls": [{"centre": list(c), "radius_mm": r} for c, r in self.balls]}
        if self.box_axes is not None:
            out["box_axes"] = [list(row) for row in self.box_axes]
        return out

    @classmethod
    def from_json(cls, data: Any) -> "RegionOfInterest":
        """Read `to_json`'s output; a malformed entry raises ParameterError naming it."""
        if not data:
            return cls()
        try:
            box = data.get("box")
            box = None if box is None else (tuple(float(x) for x in box[0]), tuple(float(x) for x in box[1]))
            balls = tuple((tuple(float(x) for x in b["centre"]), float(b["radius_mm"])) for b in data.get("balls", ()))
            axes = data.get("box_axes")
            axes = None if axes is None else tuple(tuple(float(x) for x in row) for row in axes)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise ParameterError(f"The saved region of interest is malformed: {exc}") from exc
        roi = cls(balls=balls)
        if box is None:
            return roi
        if axes is None:
            return roi.with_box(*box)
        if np.asarray(axes).shape != (len(box[0]),) * 2:
            raise ParameterError(f"The saved region of interest is malformed: box axes {axes}")
        checked = roi.with_box(box[0], box[1], axes)  # checks the axes; the corners are box coordinates:
        lo = tuple(min(x, y) for x, y in zip(*box))
        hi = tuple(max(x, y) for x, y in zip(*box))
        return replace(checked, box=(lo, hi))


def outline_on_plane(roi: RegionOfInterest, plane: Any, depth: float
                     ) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """Where the region crosses one display plane (a `slicing.PlaneGeometry` at `depth` mm):
    the box's closed outline as (col, row) plane pixels (empty when the plane misses the box),
    and each painted ball's cut as (col, row, diameter in plane pixels)."""
    corners: list[tuple[float, float]] = []
    if roi.box is not None:
        lo, hi = np.asarray(roi.box[0]), np.asarray(roi.box[1])
        frame = roi.frame(plane.dimension)
        q0 = frame @ np.asarray(plane.to_physical(0, 0, depth))  # a point of the plane, box coordinates
        in_axes = [0, 1]
        crosses = True
        if plane.dimension == 3:
            alignment = np.abs(frame @ np.asarray(plane.n))
            n_axis = int(np.argmax(alignment))
            # A box whose axes are not the plane's (only a script makes one) is not outlined.
            crosses = alignment[n_axis] > 1 - 1e-6 and lo[n_axis] - 1e-6 <= q0[n_axis] <= hi[n_axis] + 1e-6
            in_axes = [i for i in range(3) if i != n_axis]
        if crosses:
            a_axis, b_axis = in_axes
            for ca, cb in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)):
                q = q0.copy()
                q[a_axis] = (lo, hi)[ca][a_axis]
                q[b_axis] = (lo, hi)[cb][b_axis]
                col, row = plane.to_plane(frame.T @ q)[:2]
                corners.append((float(col), float(row)))
    cuts: list[tuple[float, float, float]] = []
    for centre, radius in roi.balls:
        col, row, ball_depth = plane.to_plane(centre)
        if abs(ball_depth - depth) < radius:
            r = np.sqrt(radius ** 2 - (ball_depth - depth) ** 2)
            cuts.append((float(col), float(row), float(2 * r / plane.spacing[0])))
    return corners, cuts


def voxel_centres(reference: sitk.Image) -> np.ndarray:
    """Physical LPS centres of every voxel of `reference`, shaped (*numpy shape, dim)."""
    dim = reference.GetDimension()
    size = reference.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in reversed(size)], indexing="ij")[::-1], axis=-1)
    direction = np.asarray(reference.GetDirection(), float).reshape(dim, dim)
    scaled = index * np.asarray(reference.GetSpacing(), float)
    return scaled @ direction.T + np.asarray(reference.GetOrigin(), float)


def rasterise(roi: RegionOfInterest, reference: sitk.Image) -> sitk.Image:
    """The region as a UInt8 mask (1 inside) on `reference`'s grid (the fixed image)."""
    if roi.is_empty:
        raise ParameterError("The region of interest is empty: draw a box or paint in a slice view first")
    points = voxel_centres(reference)
    dim = points.shape[-1]
    inside = np.zeros(points.shape[:-1], bool)
    if roi.box is not None:
        lo, hi = np.asarray(roi.box[0][:dim]), np.asarray(roi.box[1][:dim])
        q = points @ roi.frame(dim).T  # box coordinates of every voxel centre
        inside |= np.all((q >= lo) & (q <= hi), axis=-1)
    for centre, radius in roi.balls:
        inside |= np.sum((points - np.asarray(centre[:dim])) ** 2, axis=-1) <= radius ** 2
    if not inside.any():
        raise ParameterError("The region of interest holds no voxel of the fixed image")
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(reference)
    return mask


def write_mask(roi: RegionOfInterest, reference: sitk.Image, path: str | Path) -> Path:
    """Rasterise and write the mask (any SimpleITK format; .nii.gz recommended)."""
    from regviewer.core.imaging.io import write_image

    path = Path(path)
    write_image(rasterise(roi, reference), path)
    return path
