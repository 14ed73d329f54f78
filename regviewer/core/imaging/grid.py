"""Deformation-grid geometry: how a regular grid on the fixed image bends under a transform.

A transform maps FIXED points to MOVING points (ITK's resampling direction). The grid
drawn here is a regular grid of lines on a fixed display plane (see
`regviewer.core.imaging.slicing.PlaneGeometry`); every grid point p is moved to T(p), so the
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

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.slicing import PlaneGeometry
from regviewer.core.transforms.storable import elementary_transforms

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


def _field_on(tx: sitk.Transform, origin: np.ndarray, axes: tuple[np.ndarray, np.ndarray], steps: tuple[float, float],
              counts: tuple[int, int], normal: np.ndarray | None) -> np.ndarray:
    """T(p) for p on a (counts[1] x counts[0]) lattice of the plane, shape (n_b, n_a, dim)."""
    a, b = axes
    if normal is not None:
        direction = np.column_stack([a, b, normal]).ravel()
        size, spacing = [counts[0], counts[1], 1], [steps[0], steps[1], 1.0]
    else:
        direction = np.column_stack([a, b]).ravel()
        size, spacing = [counts[0], counts[1]], [steps[0], steps[1]]
    field = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, size, tuple(origin), spacing,
                                              tuple(direction))
    displacement = sitk.GetArrayFromImage(field)
    if normal is not None:
        displacement = displacement[0]
    ia = np.arange(counts[0], dtype=float)[None, :, None] * steps[0]
    ib = np.arange(counts[1], dtype=float)[:, None, None] * steps[1]
    return origin[None, None, :] + ia * a[None, None, :] + ib * b[None, None, :] + displacement


def _warped_polylines(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float,
    spacing_mm: float,
    points_per_cell: int,
) -> list[np.ndarray]:
    """The grid's polylines as physical points T(p), each (k, dim).

    Only points on the lines are transformed (two thin lattices: the lines along u and
    the lines along v), which matters for B-splines where each point costs ~1 us.
    """
    if not spacing_mm > 0:
        raise ParameterError(f"The grid spacing must be a positive number of millimetres, not {spacing_mm}")
    if points_per_cell < 1:
        raise ParameterError(f"points_per_cell must be at least 1, not {points_per_cell}")
    dim = plane.dimension
    tx = transform if transform is not None else sitk.Transform(dim, sitk.sitkIdentity)
    if tx.GetDimension() != dim:
        raise ParameterError(f"A {tx.GetDimension()}D transform cannot warp a grid on a {dim}D image")
    rows, cols = plane.shape
    extent_u = (cols - 1) * plane.spacing[0]
    extent_v = (rows - 1) * plane.spacing[1]
    spacing_mm = max(spacing_mm, max(extent_u, extent_v) / MAX_LINES_PER_AXIS)
    step = spacing_mm / points_per_cell
    off_u, n_u, _ = _grid_axis(extent_u, spacing_mm, step)
    off_v, n_v, _ = _grid_axis(extent_v, spacing_mm, step)
    lines_u = int(round((n_u - 1) / points_per_cell)) + 1  # number of lines across u (vertical lines)
    lines_v = int(round((n_v - 1) / points_per_cell)) + 1
    u, v = np.asarray(plane.u, dtype=float), np.asarray(plane.v, dtype=float)
    origin = np.asarray(plane.origin, dtype=float) + off_u * u + off_v * v
    normal = None
    if dim == 3:
        normal = np.asarray(plane.n, dtype=float)
        origin = origin + depth * normal
    lines: list[np.ndarray] = []
    if n_u >= 2:  # lines running along u, one every spacing_mm along v
        along_u = _field_on(tx, origin, (u, v), (step, spacing_mm), (n_u, lines_v), normal)
        lines.extend(np.ascontiguousarray(along_u[j]) for j in range(lines_v))
    if n_v >= 2:  # lines running along v, one every spacing_mm along u
        along_v = _field_on(tx, origin, (v, u), (step, spacing_mm), (n_v, lines_u), normal)
        lines.extend(np.ascontiguousarray(along_v[i]) for i in range(lines_u))
    return lines


def _project(lines: list[np.ndarray], plane: PlaneGeometry) -> list[np.ndarray]:
    origin = np.asarray(plane.origin, dtype=float)
    u, v = np.asarray(plane.u, dtype=float), np.asarray(plane.v, dtype=float)
    out = []
    for line in lines:
        rel = line - origin
        out.append(np.stack([rel @ u / plane.spacing[0], rel @ v / plane.spacing[1]], axis=1))
    return out


def warped_grid(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float = 0.0,
    spacing_mm: float = 10.0,
    points_per_cell: int = 4,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Both forms at the cost of one: (plane-pixel (k, 2) lines, physical (k, dim) lines)."""
    physical = _warped_polylines(transform, plane, depth, spacing_mm, points_per_cell)
    return _project(physical, plane), physical


def warped_grid_lines(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float = 0.0,
    spacing_mm: float = 10.0,
    points_per_cell: int = 4,
) -> list[np.ndarray]:
    """The fixed-plane grid bent by `transform` (fixed → moving), in plane pixels.

    Lines are `spacing_mm` apart on the plane at `depth`; each is sampled
    `points_per_cell` times per cell, every sample p moved to T(p) and projected back
    on the plane. Returns (k, 2) arrays of (col, row) plane pixel coordinates, ready for
    a pyqtgraph item in a slice view's ViewBox (x = col, y = row). Out-of-plane motion
    is dropped by the projection; `warped_grid_lines_3d` keeps it.
    """
    return _project(_warped_polylines(transform, plane, depth, spacing_mm, points_per_cell), plane)


def warped_grid_lines_3d(
    transform: sitk.Transform | None,
    plane: PlaneGeometry,
    depth: float = 0.0,
    spacing_mm: float = 10.0,
    points_per_cell: int = 4,
) -> list[np.ndarray]:
    """The same grid as `warped_grid_lines`, as (k, dim) physical LPS mm polylines.

    Points are T(p) without projection, so a 3D view shows the sheet bending out of
    the plane too.
    """
    return _warped_polylines(transform, plane, depth, spacing_mm, points_per_cell)


def flatten_transform(transform: sitk.Transform | None) -> list[sitk.Transform]:
    """The elementary transforms inside a (possibly nested) composite, in ITK's order."""
    return [] if transform is None else elementary_transforms(transform)


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
