"""Fitting a transform to landmark pairs, with per-landmark error.

Every fit maps FIXED points to MOVING points (ITK's resampling direction), in
physical LPS millimetres: ``fit.transform.TransformPoint(fixed) ≈ moving``.

Models
  translation, rigid, similarity, affine
      closed-form weighted least squares (Umeyama / Kabsch for rigid and
      similarity), returned as the matching SimpleITK transform centred on the
      weighted centroid of the fixed points.
  tps
      thin-plate spline interpolating the pairs exactly. Returned as
      ``CompositeTransform([affine, displacement field])``: the least-squares affine
      plus the non-affine remainder sampled on a grid (the fixed image's extent when
      `reference` is given). Outside the grid only the affine applies.
  bspline
      cubic B-spline (control-point mesh `bspline_mesh_size` cells per axis) fitted by
      weighted least squares with a ridge (`bspline_smoothing`, 0 = exact minimum-norm
      fit) on top of the least-squares affine: ``CompositeTransform([affine, BSplineTransform])``.
      SimpleITK's `LandmarkBasedTransformInitializer` is not used for it: its
      scattered-data approximation misses even a pure translation by ~0.1 mm.

Errors
  residuals_mm   |T(fixed_i) - moving_i| for each pair used (fiducial registration error)
  loo_errors_mm  the same after refitting WITHOUT pair i (an estimate of target
                 registration error; NaN when the model is undetermined without it)
  flagged        likely misplaced pairs, judged with their leverage (externally
                 studentised residuals; see `diagnostics`), each with a reason in
                 `flag_reasons`
  warnings       sentences about directions the pairs cannot constrain (all fixed
                 points near one plane or line)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.landmarks import diagnostics, warp
from regviewer.core.errors import ImageWriteError, LandmarkFitCancelled, LandmarkFitError

MODELS = ("translation", "rigid", "similarity", "affine", "tps", "bspline")
_LINEAR = ("translation", "rigid", "similarity", "affine")



# --- results -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LandmarkFit:
    """A fitted fixed→moving transform and how well each landmark agrees with it.

    Arrays are aligned with `pair_indices` (indices into ``landmark_set.pairs`` of the
    enabled, complete, positive-weight pairs that were used); `flagged` holds indices
    into ``landmark_set.pairs`` too.
    """

    model: str
    transform: sitk.Transform
    pair_indices: tuple[int, ...]
    names: tuple[str, ...]
    residuals_mm: np.ndarray
    loo_errors_mm: np.ndarray
    flagged: tuple[int, ...] = field(default=())
    flag_reasons: tuple[str, ...] = field(default=())  # aligned with `flagged`: why, in one sentence
    warnings: tuple[str, ...] = field(default=())  # directions the pairs leave undetermined

    @property
    def rms_mm(self) -> float:
        """Root-mean-square residual (FRE) over the pairs used, mm."""
        return float(np.sqrt(np.mean(self.residuals_mm**2))) if len(self.residuals_mm) else 0.0

    @property
    def max_mm(self) -> float:
        return float(np.max(self.residuals_mm)) if len(self.residuals_mm) else 0.0

    @property
    def loo_rms_mm(self) -> float:
        """RMS leave-one-out error over the pairs where it is defined (NaN if none)."""
        finite = self.loo_errors_mm[np.isfinite(self.loo_errors_mm)]
        return float(np.sqrt(np.mean(finite**2))) if len(finite) else math.nan

    def residual_for(self, pair_index: int) -> float | None:
        """Residual of pair `pair_index` of the set, or None if the fit did not use it."""
        return _lookup(self.pair_indices, self.residuals_mm, pair_index)

    def loo_error_for(self, pair_index: int) -> float | None:
        return _lookup(self.pair_indices, self.loo_errors_mm, pair_index)

    def flag_reason_for(self, pair_index: int) -> str | None:
        """Why pair `pair_index` of the set is flagged, or None when it is not."""
        return dict(zip(self.flagged, self.flag_reasons)).get(pair_index)

    def save_transform(self, path: str | Path) -> None:
        """Write the fixed→moving transform (ITK .tfm/.txt/.h5) atomically."""
        from regviewer.core.imaging.io import write_transform

        if self.model in ("tps", "bspline") and Path(path).suffix.lower() not in (".h5", ".hdf5"):
            raise ImageWriteError(path, f"a {self.model} fit holds a deformation; save it as .h5")
        write_transform(self.transform, path)

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n_pairs": len(self.pair_indices),
            "rms_mm": self.rms_mm,
            "max_mm": self.max_mm,
            "loo_rms_mm": self.loo_rms_mm,
            "flagged": [int(i) for i in self.flagged],
            "flag_reasons": list(self.flag_reasons),
            "warnings": list(self.warnings),
        }


# --- fitting -----------------------------------------------------------------------------------
def fit(landmark_set, model: str, reference=None, *, bspline_mesh_size: int = 4,
        bspline_smoothing: float = 0.1, leave_one_out: bool = True,
        progress: Callable[[int, int], bool | None] | None = None) -> LandmarkFit:
    """Fit a fixed→moving `model` transform to the enabled, complete pairs.

    `reference` (a `Volume` or `sitk.Image`, normally the fixed image) is the grid
    the tps/bspline deformation is defined on; when None, a box around the fixed
    points with a 25 % margin. `bspline_mesh_size` (cells per axis) and
    `bspline_smoothing` (relative ridge; 0 = exact fit) shape the bspline model.
    `leave_one_out=False` skips the refits (loo_errors_mm all NaN, nothing flagged).
    `progress(done, total)` is called between leave-one-out folds (total = the pairs
    used), between the flag tests and between chunks of the TPS field; when it returns
    False the fit stops with `LandmarkFitCancelled` (a window's Cancel button).
    Raises `LandmarkFitError` for an unknown model or too few / degenerate points.
    """
    if model not in MODELS:
        raise LandmarkFitError(f"unknown landmark model {model!r}; choose one of {', '.join(MODELS)}")
    dim = landmark_set.dimension
    pairs = landmark_set.pairs
    used = [i for i, p in enumerate(pairs) if p.enabled and p.complete and p.weight > 0]
    fixed = np.array([pairs[i].fixed for i in used], dtype=float).reshape(-1, dim)
    moving = np.array([pairs[i].moving for i in used], dtype=float).reshape(-1, dim)
    weights = np.array([pairs[i].weight for i in used], dtype=float)
    half_made = sum(1 for p in pairs if p.enabled and not p.complete)
    _check_enough(model, fixed, dim, half_made)

    grid = None if model in _LINEAR else warp.grid_for(reference, fixed, dim)
    if not (math.isfinite(bspline_smoothing) and bspline_smoothing >= 0) or int(bspline_mesh_size) < 1:
        raise LandmarkFitError("bspline_mesh_size must be >= 1 and bspline_smoothing a number >= 0")
    spline = (int(bspline_mesh_size), float(bspline_smoothing))
    tick = _ticker(progress, len(used))
    tick(0)
    transform = _fit_transform(model, fixed, moving, weights, grid, spline, lambda: tick(0))
    mapped = np.array([transform.TransformPoint(tuple(p)) for p in fixed]).reshape(-1, dim)
    residuals = np.linalg.norm(mapped - moving, axis=1)

    loo = np.full(len(used), math.nan)
    flags: list[diagnostics.Flag] = []
    if leave_one_out:
        basis = None
        if model == "bspline":  # the control grid is fixed, so each pair's basis row is computed once
            basis = warp.bspline_basis(warp.bspline_for(grid, bspline_mesh_size).GetCoefficientImages()[0], fixed)
        loo = _leave_one_out(model, fixed, moving, weights, basis, spline[1], tick)
        flags = diagnostics.flag_pairs(model, fixed, moving, weights, _solve_linear,
                                       lambda f, m: _leave_one_out("tps", f, m, np.ones(len(f)), None, 0.0),
                                       check=lambda: tick(len(used)))
    return LandmarkFit(model, transform, tuple(used), tuple(pairs[i].name for i in used), residuals, loo,
                       tuple(used[f.position] for f in flags), tuple(f.reason for f in flags),
                       tuple(diagnostics.geometry_warnings(model, fixed)))


LOO_EXACT_MAX = 300  # above this many pairs, B-spline leave-one-out errors are computed in closed form


def _ticker(progress: Callable[[int, int], bool | None] | None, total: int) -> Callable[[int], None]:
    """`tick(done)`: report progress; raise `LandmarkFitCancelled` when the callback says stop."""
    def tick(done: int) -> None:
        if progress is not None and progress(done, total) is False:
            raise LandmarkFitCancelled(f"landmark fit cancelled ({total} pairs)")
    return tick


def _leave_one_out(model, fixed, moving, weights, basis, smoothing, tick=lambda done: None) -> np.ndarray:
    """|model fitted without pair k, at fixed_k - moving_k| for each k (NaN if undetermined).

    Up to `LOO_EXACT_MAX` pairs every model is refitted without each pair. Above it
    translation and affine use the regression deletion formula, the B-spline uses the closed-form downdate (`warp.bspline_leave_one_out`) and, with no
    smoothing (where that form does not exist), refits for an evenly spread sample of
    `LOO_EXACT_MAX` pairs only (the others NaN); the TPS always uses Rippa's formula."""
    n, dim = fixed.shape
    if model in ("translation", "affine") and n > LOO_EXACT_MAX:
        tick(0)
        return diagnostics.linear_leave_one_out(model, fixed, moving, weights)
    if model == "bspline" and n > LOO_EXACT_MAX and basis is not None:
        if smoothing > 0:
            return warp.bspline_leave_one_out(fixed, moving, weights, basis, smoothing)
        sample = np.unique(np.linspace(0, n - 1, LOO_EXACT_MAX).round().astype(int))
    else:
        sample = np.arange(n)
    if model == "tps":
        tick(0)
        loo = warp.tps_leave_one_out(fixed, moving)
        for k in range(n if n <= LOO_EXACT_MAX else 0):  # Rippa's formula gives numbers where the rest is degenerate
            tick(k)
            try:
                _check_enough(model, np.delete(fixed, k, axis=0), dim, 0)
            except LandmarkFitError:
                loo[k] = math.nan
        return loo
    loo = np.full(n, math.nan)
    for k in sample:
        tick(int(k))
        keep = np.arange(n) != k
        try:
            _check_enough(model, fixed[keep], dim, 0)
            predicted = _predict(model, fixed[keep], moving[keep], weights[keep], fixed[k:k + 1],
                                 None if basis is None else (basis[keep], basis[k:k + 1]), smoothing)
        except (LandmarkFitError, np.linalg.LinAlgError, ValueError):
            continue  # undetermined without this pair: NaN
        loo[k] = float(np.linalg.norm(predicted[0] - moving[k]))
    return loo


_NEEDS = {  # model -> (rank of centred fixed points needed, words) per dimension
    "translation": {2: (0, "1 landmark pair"), 3: (0, "1 landmark pair")},
    "rigid": {2: (1, "2 distinct landmark pairs in 2D"), 3: (2, "3 non-collinear landmark pairs in 3D")},
    "similarity": {2: (1, "2 distinct landmark pairs in 2D"), 3: (2, "3 non-collinear landmark pairs in 3D")},
    "affine": {2: (2, "3 non-collinear landmark pairs in 2D"), 3: (3, "4 non-coplanar landmark pairs in 3D")},
}
_NEEDS["tps"] = _NEEDS["affine"]
_NEEDS["bspline"] = _NEEDS["affine"]


def _check_enough(model: str, fixed: np.ndarray, dim: int, half_made: int) -> None:
    rank_needed, words = _NEEDS[model][dim]
    n = len(fixed)
    extra = f" ({half_made} more {'is' if half_made == 1 else 'are'} missing a point)" if half_made else ""
    if n < rank_needed + 1 or n == 0:
        raise LandmarkFitError(f"{model} needs at least {words}; {n} {'is' if n == 1 else 'are'} enabled{extra}")
    if _rank(fixed) < rank_needed:
        shape = {0: "all at the same place", 1: "on one line", 2: "in one plane"}[_rank(fixed)]
        raise LandmarkFitError(f"{model} needs at least {words}; the {n} enabled fixed points lie {shape}")


def _rank(points: np.ndarray) -> int:
    centred = points - points.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False)
    if len(s) == 0 or s[0] < 1e-9:
        return 0
    return int(np.sum(s > 1e-7 * s[0]))


def _solve_linear(model: str, fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares for ``moving ≈ A @ fixed + b``; returns (A, b)."""
    dim = fixed.shape[1]
    w = weights / weights.sum()
    mu_f, mu_m = w @ fixed, w @ moving
    x, y = fixed - mu_f, moving - mu_m
    if model == "translation":
        a = np.eye(dim)
    elif model in ("rigid", "similarity"):
        # Umeyama (1991): rotation from the SVD of the weighted cross-covariance.
        u, s, vt = np.linalg.svd((y * w[:, None]).T @ x)
        d = np.ones(dim)
        d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
        rotation = u @ np.diag(d) @ vt
        scale = float(s @ d) / float(w @ np.sum(x * x, axis=1)) if model == "similarity" else 1.0
        a = scale * rotation
    else:
        sw = np.sqrt(w)[:, None]
        solution, *_ = np.linalg.lstsq(x * sw, y * sw, rcond=None)
        a = solution.T
    return a, mu_m - a @ mu_f


def _linear_to_sitk(model: str, a: np.ndarray, b: np.ndarray, center: np.ndarray) -> sitk.Transform:
    """y = A x + b as the SimpleITK transform of that model, rotating about `center`."""
    dim = len(b)
    translation = tuple(float(v) for v in (b + a @ center - center))
    if model == "translation":
        return sitk.TranslationTransform(dim, tuple(float(v) for v in b))
    if model in ("rigid", "similarity"):
        scale = abs(np.linalg.det(a)) ** (1.0 / dim)
        rotation = a / scale
        if dim == 2:
            angle = math.atan2(rotation[1, 0], rotation[0, 0])
            tx = sitk.Euler2DTransform(tuple(center), angle, translation) if model == "rigid" else \
                sitk.Similarity2DTransform(scale, angle, translation, tuple(center))
            return tx
        versor = sitk.VersorRigid3DTransform()
        versor.SetMatrix(tuple(rotation.ravel()), 1e-6)
        if model == "rigid":
            tx = sitk.Euler3DTransform()
            tx.SetCenter(tuple(center))
            tx.SetMatrix(tuple(rotation.ravel()), 1e-6)
            tx.SetTranslation(translation)
            return tx
        return sitk.Similarity3DTransform(scale, versor.GetVersor(), translation, tuple(center))
    tx = sitk.AffineTransform(dim)
    tx.SetCenter(tuple(center))
    tx.SetMatrix(tuple(a.ravel()))
    tx.SetTranslation(translation)
    return tx


def _fit_transform(model, fixed, moving, weights, grid, spline: tuple[int, float],
                   check: Callable[[], None] = lambda: None) -> sitk.Transform:
    linear_model = model if model in _LINEAR else "affine"
    a, b = _solve_linear(linear_model, fixed, moving, weights)
    center = (weights / weights.sum()) @ fixed
    linear = _linear_to_sitk(linear_model, a, b, center)
    if model in _LINEAR:
        return linear
    # The deformation w is defined on the fixed side, inside the affine: T(x) = A(x + w(x)),
    # so w(x_i) = A^-1(moving_i) - x_i (zero for exactly affine data).
    a_inv = np.linalg.inv(a) if abs(np.linalg.det(a)) > 1e-12 else np.linalg.pinv(a)
    inner_targets = (moving - b) @ a_inv.T
    if model == "tps":
        deformation: sitk.Transform = warp.tps_field(fixed, inner_targets - fixed, grid, check)
    else:
        deformation = warp.fit_bspline(fixed, inner_targets - fixed, weights, grid, spline)
    return sitk.CompositeTransform([linear, deformation])  # applied last-first: w, then A


def _predict(model, fixed, moving, weights, points, bspline_rows=None, smoothing: float = 0.0) -> np.ndarray:
    """The model fitted to (fixed, moving) evaluated at `points`, without building a
    grid. For the B-spline, `bspline_rows` = (basis rows of `fixed`, basis rows of `points`)."""
    linear_model = model if model in _LINEAR else "affine"
    a, b = _solve_linear(linear_model, fixed, moving, weights)
    if model in _LINEAR:
        return points @ a.T + b
    inner = (moving - b) @ np.linalg.inv(a).T - fixed
    fixed_rows, point_rows = bspline_rows
    coefficients = warp.bspline_coefficients(fixed_rows, inner, weights, smoothing)
    return (points + point_rows @ coefficients) @ a.T + b


def _lookup(indices: Sequence[int], values: np.ndarray, pair_index: int) -> float | None:
    try:
        return float(values[list(indices).index(pair_index)])
    except ValueError:
        return None


__all__ = ["MODELS", "LandmarkFit", "fit"]
