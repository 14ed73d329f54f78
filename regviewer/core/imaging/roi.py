"""A region of interest drawn on the fixed image, and the mask a registration uses from it.

The region lives in FIXED physical space (LPS mm), not in voxels, so it survives
resampling and is drawn the same in every view: a box whose edges follow the LPS axes
(the display planes' axes, `core.imaging.slicing`) and/or painted balls (centre, radius).
A voxel of the fixed grid is inside when its centre is in the box or in any ball.

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
    """`box`: (lower, upper) LPS corners (lower <= upper on every axis), or None;
    `balls`: painted (centre LPS mm, radius mm). Empty when neither is set."""

    box: tuple[Point, Point] | None = None
    balls: tuple[tuple[Point, float], ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.box is None and not self.balls

    def with_box(self, a: Sequence[float], b: Sequence[float]) -> "RegionOfInterest":
        """The same region with the box spanning corners `a` and `b` (any order)."""
        lo = tuple(float(min(x, y)) for x, y in zip(a, b))
        hi = tuple(float(max(x, y)) for x, y in zip(a, b))
        return replace(self, box=(lo, hi))

    def with_box_in_plane(self, a: Sequence[float], b: Sequence[float], in_plane: Sequence[Sequence[float]],
                          full_extent: tuple[Sequence[float], Sequence[float]]) -> "RegionOfInterest":
        """Set the box's extent along the two LPS axes of a view plane (`in_plane`: its
        unit u and v) from a drag from `a` to `b`, keeping its extent along the third
        axis (the whole of `full_extent`, the image's LPS bounds, when there is no box yet)."""
        lo = np.array(self.box[0] if self.box else full_extent[0], float)
        hi = np.array(self.box[1] if self.box else full_extent[1], float)
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
        return {"box": None if self.box is None else [list(self.box[0]), list(self.box[1])],
                "balls": [{"centre": list(c), "radius_mm": r} for c, r in self.balls]}

    @classmethod
    def from_json(cls, data: Any) -> "RegionOfInterest":
        """Read `to_json`'s output; a malformed entry raises ParameterError naming it."""
        if not data:
            return cls()
        try:
            box = data.get("box")
            box = None if box is None else (tuple(float(x) for x in box[0]), tuple(float(x) for x in box[1]))
            balls = tuple((tuple(float(x) for x in b["centre"]), float(b["radius_mm"])) for b in data.get("balls", ()))
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise ParameterError(f"The saved region of interest is malformed: {exc}") from exc
        roi = cls(balls=balls)
        return roi.with_box(*box) if box is not None else roi


def outline_on_plane(roi: RegionOfInterest, plane: Any, depth: float
                     ) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """Where the region crosses one display plane (a `slicing.PlaneGeometry` at `depth` mm):
    the box's closed outline as (col, row) plane pixels (empty when the plane misses the box),
    and each painted ball's cut as (col, row, diameter in plane pixels)."""
    corners: list[tuple[float, float]] = []
    if roi.box is not None:
        lo, hi = np.asarray(roi.box[0]), np.asarray(roi.box[1])
        on_plane = np.asarray(plane.to_physical(0, 0, depth))
        n_axis = int(np.argmax(np.abs(plane.n))) if plane.dimension == 3 else None
        if n_axis is None or lo[n_axis] - 1e-6 <= on_plane[n_axis] <= hi[n_axis] + 1e-6:
            u_axis, v_axis = int(np.argmax(np.abs(plane.u))), int(np.argmax(np.abs(plane.v)))
            for cu, cv in ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)):
                p = on_plane.copy()
                p[u_axis] = (lo, hi)[cu][u_axis]
                p[v_axis] = (lo, hi)[cv][v_axis]
                col, row = plane.to_plane(p)[:2]
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
        inside |= np.all((points >= lo) & (points <= hi), axis=-1)
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
