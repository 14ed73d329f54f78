"""Mapping points through a registration result, in either direction, and point CSV files.

A registration transform T maps FIXED points to MOVING points (LPS mm). A point
found in the fixed image goes to the moving image as T(p). A point found in the
moving image goes back to the fixed image with the inverse, which is done like this:

* linear T (any matrix + offset, composites of them included): the exact inverse
  matrix, analytically;
* deformable T (B-spline, displacement field, composites with them): for each point
  q, Newton's method solves T(p) = q for p, with the Jacobian of T taken by central
  differences and a backtracking step. This is exact up to `tolerance_mm` at the point
  itself, unlike inverting a whole displacement field on a grid (whose error is set by
  the grid); the residual |T(p) - q| is returned so non-converged points are visible.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import LandmarkFileError


@dataclass(frozen=True)
class MappedPoints:
    """`points` (n, dim) in the target space; `residual_mm` is |T(p) - q| for the inverse
    direction (zeros for the forward one); `converged` flags each point."""

    points: np.ndarray
    residual_mm: np.ndarray
    converged: np.ndarray


def _apply(tx: sitk.Transform, pts: np.ndarray) -> np.ndarray:
    return np.array([tx.TransformPoint(p) for p in pts.tolist()], float).reshape(pts.shape)


def map_points(transform: sitk.Transform, points, to: str = "moving", tolerance_mm: float = 1e-4,
               max_iterations: int = 50) -> MappedPoints:
    """Map (n, dim) physical points. ``to="moving"``: the points are in fixed space, return
    T(p). ``to="fixed"``: the points are in moving space, return T^-1(q) (see module doc)."""
    from regviewer.core.transforms.ops import invert, is_linear

    pts = np.atleast_2d(np.asarray(points, float))
    if pts.shape[1] != transform.GetDimension():
        raise ValueError(f"the points are {pts.shape[1]}D but the transform is {transform.GetDimension()}D")
    n = len(pts)
    if to == "moving":
        return MappedPoints(_apply(transform, pts), np.zeros(n), np.ones(n, bool))
    if to != "fixed":
        raise ValueError(f"to must be 'moving' or 'fixed', not {to!r}")
    if is_linear(transform):
        inverse = invert(transform)
        mapped = _apply(inverse, pts)
        residual = np.linalg.norm(_apply(transform, mapped) - pts, axis=1)
        return MappedPoints(mapped, residual, residual <= max(tolerance_mm, 1e-6))
    return _newton_inverse(transform, pts, tolerance_mm, max_iterations)


def _newton_inverse(tx: sitk.Transform, targets: np.ndarray, tol: float, max_iterations: int) -> MappedPoints:
    dim = targets.shape[1]
    # Start from q - u(q): exact for a constant displacement, close for a smooth one.
    p = 2.0 * targets - _apply(tx, targets)
    h = 1e-3  # mm; the finite-difference step
    out = p.copy()
    residual = np.full(len(targets), np.inf)
    for i, (q, x) in enumerate(zip(targets, p)):
        f = np.asarray(tx.TransformPoint(x.tolist())) - q
        err = float(np.linalg.norm(f))
        for _ in range(max_iterations):
            if err <= tol:
                break
            jac = np.empty((dim, dim))
            for k in range(dim):
                e = np.zeros(dim)
                e[k] = h
                jac[:, k] = (np.asarray(tx.TransformPoint((x + e).tolist())) - np.asarray(tx.TransformPoint((x - e).tolist()))) / (2 * h)
            try:
                step = np.linalg.solve(jac, f)
            except np.linalg.LinAlgError:
                step = f  # fixed-point step where the Jacobian is singular
            t = 1.0
            while t > 1e-3:  # backtrack until the residual falls
                x_new = x - t * step
                f_new = np.asarray(tx.TransformPoint(x_new.tolist())) - q
                err_new = float(np.linalg.norm(f_new))
                if err_new < err:
                    break
                t *= 0.5
            else:
                break
            x, f, err = x_new, f_new, err_new
        out[i], residual[i] = x, err
    return MappedPoints(out, residual, residual <= tol)


# --- point CSV files ----------------------------------------------------------------
@dataclass
class PointTable:
    """Rows of a point CSV: `points` (n, dim) in LPS mm plus every other column kept as text."""

    header: list[str] | None
    rows: list[list[str]]
    coordinate_columns: list[int]

    @property
    def points(self) -> np.ndarray:
        return np.array([[float(r[c]) for c in self.coordinate_columns] for r in self.rows], float)

    def with_points(self, points: np.ndarray) -> "PointTable":
        rows = [list(r) for r in self.rows]
        for r, p in zip(rows, points):
            for c, v in zip(self.coordinate_columns, p):
                r[c] = repr(float(v))
        return PointTable(self.header, rows, self.coordinate_columns)

    def to_csv(self, extra: dict[str, list] | None = None) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        extra = extra or {}
        if self.header is not None or extra:
            header = self.header or [f"column{i + 1}" for i in range(len(self.rows[0]) if self.rows else 0)]
            w.writerow(header + list(extra))
        for i, r in enumerate(self.rows):
            w.writerow(r + [extra[k][i] for k in extra])
        return buf.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_point_csv(path: str | Path, dimension: int) -> PointTable:
    """Read physical points (LPS mm) from a CSV.

    With a header, the columns named x, y (and z) are the coordinates; without one,
    the last `dimension` columns are (a leading name column is allowed). Other columns
    (names, labels) are kept and written back unchanged.
    """
    p = Path(path)
    if not p.is_file():
        raise LandmarkFileError(p, "the file does not exist")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LandmarkFileError(p, "it is not a text (CSV) file") from None
    lines = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].lstrip().startswith("#")]
    if not lines:
        raise LandmarkFileError(p, "it holds no points")
    header = None
    names = ["x", "y", "z"][:dimension]
    first = [c.strip() for c in lines[0]]
    if not all(_is_number(c) for c in first[-dimension:]):
        header, lines = first, lines[1:]
        lower = [c.lower() for c in header]
        missing = [n for n in names if n not in lower]
        if missing:
            raise LandmarkFileError(p, f"the header has no column {', '.join(missing)}; name the coordinate columns "
                                    f"{', '.join(names)} (LPS mm)", line=1)
        columns = [lower.index(n) for n in names]
    else:
        columns = list(range(len(first) - dimension, len(first)))
    rows = []
    for i, row in enumerate(lines):
        row = [c.strip() for c in row]
        line_no = i + (2 if header else 1)
        if len(row) <= max(columns):
            raise LandmarkFileError(p, f"the row has {len(row)} columns; expected at least {max(columns) + 1}", line=line_no)
        bad = [row[c] for c in columns if not _is_number(row[c])]
        if bad:
            raise LandmarkFileError(p, f"'{bad[0]}' is not a number", line=line_no)
        rows.append(row)
    if not rows:
        raise LandmarkFileError(p, "it holds no points")
    return PointTable(header, rows, columns)


def is_landmark_file(path: str | Path) -> bool:
    """True for landmark-pair files (regviewer CSV with fixed_x..., .json, Slicer .fcsv/.mrk.json)
    rather than a plain x,y[,z] point list."""
    p = Path(path)
    if p.name.lower().endswith((".fcsv", ".json")):
        return True
    try:
        with p.open(encoding="utf-8-sig") as f:
            first = f.readline().lower()
    except (OSError, UnicodeDecodeError):
        return False
    return "fixed_x" in first.replace(" ", "")


def landmark_table_for(path: str | Path, to: str, dimension: int) -> tuple[PointTable, np.ndarray | None]:
    """The source points of a landmark file as a `PointTable` (columns name,x,y[,z]) and,
    where every pair has one, the points they should land on (None otherwise).

    ``to="moving"`` takes the fixed points (expected: the moving ones); ``to="fixed"``
    the moving points (expected: the fixed ones). Half-made pairs without a source point
    are left out.
    """
    from regviewer.core.landmarks.model import load_landmarks

    lm = load_landmarks(path)
    if lm.dimension != dimension:
        raise LandmarkFileError(path, f"the landmarks are {lm.dimension}D but the transform is {dimension}D")
    source = "fixed" if to == "moving" else "moving"
    pairs = [pr for pr in lm.pairs if getattr(pr, source) is not None]
    if not pairs:
        raise LandmarkFileError(path, f"it holds no {source} points")
    header = ["name", *"xyz"[:dimension]]
    rows = [[pr.name, *(repr(float(v)) for v in getattr(pr, source))] for pr in pairs]
    targets = [getattr(pr, to) for pr in pairs]
    expected = None if any(t is None for t in targets) else np.array(targets, float)
    return PointTable(header, rows, list(range(1, dimension + 1))), expected


__all__ = ["MappedPoints", "map_points", "PointTable", "read_point_csv", "is_landmark_file", "landmark_table_for"]
