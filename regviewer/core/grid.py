"""Deformation-grid geometry: how a regular grid on the fixed image bends under a transform.

A transform maps FIXED points to MOVING points (ITK's resampling direction). The grid
drawn here is a regular grid of lines on a fixed display plane (see
`regviewer.core.slicing.PlaneGeometry`); every grid point p is moved to T(p), so the
lines show where each fixed location is sampled from in the moving image. An identity
transform gives straight lines; a B-spline stage makes them bend.

The transform is evaluated in C++ (`sitk.TransformToDisplacementField` on a small
grid laid on the plane), so a few thousand points cost about a millisecond and the
functions are safe to call from a worker thread for each live snapshot.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from .errors import ParameterError
from .slicing import PlaneGeometry

# More lines than this per axis is unreadable and slow; the spacing is widened instead.
MAX_LINES_PER_AXIS = 200


def _grid_axis(extent_mm: float, spacing_mm: float, step_mm: float) -> tuple[float, int, int]:
    """(offset_mm, n_samples, samples_per_line_gap) for one plane axis.

    Lines are centred on the plane so the margins on both sides are equal.
    """
    n_gaps = int(np.floor(extent_mm / spacing_mm + 1e-9))
    covered = n_gaps * spacing_mm
    offset = (extent_mm - covered) / 2.0
    per_gap = int(round(spacing_mm / step_mm))
    return offset, n_gaps * per_gap + 1, per_gap


def _warped_plane_samples(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float,
    spacing_mm: float,
    points_per_cell: int,
) -> tuple[np.ndarray, int, int] | None:
    """Physical points T(p) on a sampling grid over the plane, shape (n_v, n_u, dim).

    Returns the warped points and the sample stride between grid lines along u and v,
    or None when the plane is too small to hold a single cell.
    """
    if not spacing_mm > 0:
        raise ParameterError(f"The grid spacing must be a positive number of millimetres, not {spacing_mm}")
    if points_per_cell < 1:
        raise ParameterError(f"points_per_cell must be at least 1, not {points_per_cell}")
    rows, cols = plane.shape
    extent_u = (cols - 1) * plane.spacing[0]
    extent_v = (rows - 1) * plane.spacing[1]
    spacing_mm = max(spacing_mm, max(extent_u, extent_v) / MAX_LINES_PER_AXIS)
    step = spacing_mm / points_per_cell
    off_u, n_u, per_u = _grid_axis(extent_u, spacing_mm, step)
    off_v, n_v, per_v = _grid_axis(extent_v, spacing_mm, step)
    if n_u < 2 and n_v < 2:
        return None
    # A single sample along an axis (plane thinner than one cell) still gives lines along the other.
    dim = plane.dimension
    u, v = np.asarray(plane.u, dtype=float), np.asarray(plane.v, dtype=float)
    origin = np.asarray(plane.origin, dtype=float) + off_u * u + off_v * v
    if dim == 3:
        n = np.asarray(plane.n, dtype=float)
        origin = origin + depth * n
        direction = np.column_stack([u, v, n]).ravel()
        size = [n_u, n_v, 1]
        spacing = [step, step, 1.0]
    else:
        direction = np.column_stack([u, v]).ravel()
        size = [n_u, n_v]
        spacing = [step, step]
    tx = transform if transform is not None else sitk.Transform(dim, sitk.sitkIdentity)
    if tx.GetDimension() != dim:
        raise ParameterError(f"A {tx.GetDimension()}D transform cannot warp a grid on a {dim}D image")
    field = sitk.TransformToDisplacementField(
        tx, sitk.sitkVectorFloat64, size, tuple(origin), spacing, tuple(direction)
    )
    displacement = sitk.GetArrayFromImage(field)  # (n_v, n_u, dim) in 2D, (1, n_v, n_u, dim) in 3D
    if dim == 3:
        displacement = displacement[0]
    iu = np.arange(n_u, dtype=float)[None, :, None] * step
    iv = np.arange(n_v, dtype=float)[:, None, None] * step
    points = origin[None, None, :] + iu * u[None, None, :] + iv * v[None, None, :]
    return points + displacement, per_u, per_v


def _lines_from_samples(warped: np.ndarray, per_u: int, per_v: int) -> list[np.ndarray]:
    """Rows of samples at every `per_v`-th row and columns at every `per_u`-th column."""
    n_v, n_u = warped.shape[:2]
    lines: list[np.ndarray] = []
    if n_u >= 2:
        lines.extend(warped[j] for j in range(0, n_v, per_v))
    if n_v >= 2:
        lines.extend(warped[:, i] for i in range(0, n_u, per_u))
    return [np.ascontiguousarray(line) for line in lines]


def warped_grid_lines(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float = 0.0,
    spacing_mm: float = 10.0,
    points_per_cell: int = 5,
) -> list[np.ndarray]:
    """The fixed-plane grid bent by `transform` (fixed → moving), in plane pixels.

    Lines are `spacing_mm` apart on the plane at `depth`; each is sampled
    `points_per_cell` times per cell, every sample p moved to T(p) and projected back
    on the plane. Returns (k, 2) arrays of (col, row) plane pixel coordinates, ready for
    a pyqtgraph item in a slice view's ViewBox (x = col, y = row). Out-of-plane motion
    is dropped by the projection; `warped_grid_lines_3d` keeps it.
    """
    samples = _warped_plane_samples(transform, plane, depth, spacing_mm, points_per_cell)
    if samples is None:
        return []
    warped, per_u, per_v = samples
    rel = warped - np.asarray(plane.origin, dtype=float)
    col = rel @ np.asarray(plane.u, dtype=float) / plane.spacing[0]
    row = rel @ np.asarray(plane.v, dtype=float) / plane.spacing[1]
    projected = np.stack([col, row], axis=-1)
    return _lines_from_samples(projected, per_u, per_v)


def warped_grid_lines_3d(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float = 0.0,
    spacing_mm: float = 10.0,
    points_per_cell: int = 5,
) -> list[np.ndarray]:
    """The same grid as `warped_grid_lines`, as (k, dim) physical LPS mm polylines.

    Points are T(p) without projection, so a 3D view shows the sheet bending out of
    the plane too.
    """
    samples = _warped_plane_samples(transform, plane, depth, spacing_mm, points_per_cell)
    if samples is None:
        return []
    warped, per_u, per_v = samples
    return _lines_from_samples(warped, per_u, per_v)


def flatten_transform(transform: sitk.Transform | None) -> list[sitk.Transform]:
    """The elementary transforms inside a (possibly nested) composite, in ITK's order."""
    if transform is None:
        return []
    if transform.GetTransformEnum() == sitk.sitkComposite:
        composite = sitk.CompositeTransform(transform)
        out: list[sitk.Transform] = []
        for i in range(composite.GetNumberOfTransforms()):
            out.extend(flatten_transform(composite.GetNthTransform(i)))
        return out
    return [transform]


def bspline_control_points(transform: sitk.Transform | None, displaced: bool = True) -> np.ndarray | None:
    """Physical positions (LPS mm) of the control points of the last B-spline in `transform`.

    Returns an (N, dim) array, or None when the transform holds no B-spline. The
    control grid is the geometry of the B-spline's coefficient images; with `displaced`
    each node is moved by its coefficient (fixed → moving), which is how the bent
    control lattice is usually shown.
    """
    splines = [t for t in flatten_transform(transform) if t.GetTransformEnum() == sitk.sitkBSplineTransform]
    if not splines:
        return None
    spline = sitk.BSplineTransform(splines[-1])
    coefficients = spline.GetCoefficientImages()
    ref = coefficients[0]
    dim = ref.GetDimension()
    size = ref.GetSize()
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in reversed(size)], indexing="ij")
    index_xyz = np.stack([g.ravel() for g in reversed(grids)], axis=1)  # (N, dim) in (x, y[, z])
    direction = np.asarray(ref.GetDirection(), dtype=float).reshape(dim, dim)
    spacing = np.asarray(ref.GetSpacing(), dtype=float)
    positions = np.asarray(ref.GetOrigin(), dtype=float) + (index_xyz * spacing) @ direction.T
    if displaced:
        offsets = np.stack([sitk.GetArrayViewFromImage(c).ravel() for c in coefficients], axis=1)
        positions = positions + offsets
    return positions


def points_near_plane(
    points: np.ndarray | Sequence[Sequence[float]] | None,
    plane: PlaneGeometry,
    depth: float,
    tolerance_mm: float,
) -> np.ndarray:
    """(col, row) plane pixels of the physical points within `tolerance_mm` of the slice.

    For showing 3D points (e.g. B-spline control points) in a 2D view; in 2D every
    point is kept.
    """
    if points is None:
        return np.zeros((0, 2))
    pts = np.asarray(points, dtype=float).reshape(-1, plane.dimension)
    rel = pts - np.asarray(plane.origin, dtype=float)
    col = rel @ np.asarray(plane.u, dtype=float) / plane.spacing[0]
    row = rel @ np.asarray(plane.v, dtype=float) / plane.spacing[1]
    if plane.dimension == 3:
        keep = np.abs(rel @ np.asarray(plane.n, dtype=float) - depth) <= tolerance_mm
        col, row = col[keep], row[keep]
    return np.stack([col, row], axis=1)


def pack_polylines(lines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (k, 2) polylines into x, y and a `connect` mask (1 = join to the next point).

    The format of pyqtgraph's `PlotCurveItem(x, y, connect=...)`: one item draws
    every line, so a grid costs one draw call. Prepared off the GUI thread.
    """
    if not lines:
        empty = np.zeros(0)
        return empty, empty, np.zeros(0, dtype=np.int32)
    xy = np.concatenate([np.asarray(ln, dtype=float)[:, :2] for ln in lines], axis=0)
    connect = np.ones(len(xy), dtype=np.int32)
    ends = np.cumsum([len(ln) for ln in lines]) - 1
    connect[ends] = 0
    return xy[:, 0].copy(), xy[:, 1].copy(), connect
