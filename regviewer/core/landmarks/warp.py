"""The deformable parts of landmark fits: thin-plate spline and B-spline.

Used by `landmark_fit` (which holds the public `fit`). Everything here is in the
FIXED image's physical space (LPS mm): a deformation w(x) defined on a fixed-space
grid, which `landmark_fit` wraps inside the least-squares affine A as
T(x) = A(x + w(x)), fixed → moving.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import SimpleITK as sitk
from scipy.interpolate import RBFInterpolator

from regviewer.core.errors import LandmarkFitError

# Field grid for the TPS: at most this many nodes per axis (the TPS is smooth; a finer
# grid costs memory without changing the result by more than a fraction of a voxel).
TPS_MAX_NODES = {2: 256, 3: 64}
TPS_CHUNK_VALUES = 50_000_000  # kernel values per chunk of the TPS field (between cancel checks)


def tps_field(fixed: np.ndarray, displacement: np.ndarray, grid: sitk.Image,
              check=lambda: None) -> sitk.DisplacementFieldTransform:
    """The thin-plate spline through (fixed_i -> displacement_i), sampled on `grid`;
    `check()` runs between chunks of grid nodes (it raises to abandon the fit)."""
    interpolant = RBFInterpolator(fixed, displacement, kernel="thin_plate_spline", degree=1)
    nodes = grid_points(grid)
    step = max(1, TPS_CHUNK_VALUES // len(fixed))  # about as many kernel values per chunk at any size
    values = []
    for start in range(0, len(nodes), step):
        check()
        values.append(interpolant(nodes[start:start + step]))
    field = np.concatenate(values).reshape(tuple(reversed(grid.GetSize())) + (fixed.shape[1],))
    image = sitk.GetImageFromArray(field.astype(np.float64), isVector=True)
    image.CopyInformation(grid)
    return sitk.DisplacementFieldTransform(image)


TPS_LOO_EXACT_MAX = 1000  # above this many pairs, the leave-one-out error is computed for a sample


def tps_leave_one_out(fixed: np.ndarray, moving: np.ndarray, sample: int = TPS_LOO_EXACT_MAX) -> np.ndarray:
    """Leave-one-out errors of the interpolating thin-plate spline, without N refits.

    Rippa's formula (Adv. Comput. Math. 1999): for an interpolant with system matrix
    M, the error at x_i of the spline fitted without pair i is c_i / (M^-1)_ii. One LU
    factorisation gives c; the diagonal entries come from solves against unit vectors,
    for every pair up to `sample` pairs and for `sample` evenly spread pairs above that
    (the others are NaN): 5000 pairs cost seconds and the one (n+4)² system (0.2 GB)
    instead of minutes and ~2 GB. Same kernel (r² log r) and linear part as scipy's RBFInterpolator.
    """
    from scipy.spatial.distance import cdist

    n, dim = fixed.shape
    centred = fixed - fixed.mean(axis=0)
    x = centred / max(float(np.abs(centred).max()), 1e-12)  # scaling leaves the interpolant unchanged
    size = n + dim + 1
    system = np.zeros((size, size), order="F")  # LAPACK order, so lu_factor overwrites it instead of copying
    rows_per_block = max(1, 2_000_000 // n)  # kernel built in row blocks: no n × n temporaries
    for start in range(0, n, rows_per_block):
        stop = min(start + rows_per_block, n)
        r = cdist(x[start:stop], x)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.multiply(np.square(r), np.log(r), out=system[start:stop, :n], where=r > 0)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1:] = x
    system[n + 1:, :n] = x.T
    rows = np.arange(n) if n <= sample else np.unique(np.linspace(0, n - 1, sample).round().astype(int))
    try:
        with np.errstate(all="ignore"):
            lu = scipy.linalg.lu_factor(system, overwrite_a=True, check_finite=False)
            rhs = np.zeros((size, dim))
            rhs[:n] = moving
            coefficients = scipy.linalg.lu_solve(lu, rhs, check_finite=False)[:n]
            unit = np.zeros((size, len(rows)))
            unit[rows, np.arange(len(rows))] = 1.0
            diagonal = scipy.linalg.lu_solve(lu, unit, check_finite=False)[rows, np.arange(len(rows))]
    except (np.linalg.LinAlgError, ValueError):
        return np.full(n, math.nan)
    if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(diagonal))) or np.any(np.abs(np.diag(lu[0])) < 1e-300):
        return np.full(n, math.nan)
    loo = np.full(n, math.nan)
    loo[rows] = np.linalg.norm(coefficients[rows] / diagonal[:, None], axis=1)
    return loo


def bspline_leave_one_out(fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray, basis: np.ndarray,
                          smoothing: float) -> np.ndarray:
    """Leave-one-out errors of the affine + ridge B-spline fit, all pairs at once.

    Both parts are linear smoothers, so removing pair k is a rank-one downdate: the
    affine by the regression deletion formula, the spline by Sherman–Morrison on its
    normal matrix G = BᵀWB + λI (λ kept at the full set's value, a relative change of
    about 1/N). Exact refits cost N solves of the spline system (5000 pairs: minutes);
    this costs one. Needs `smoothing` > 0 (G invertible); NaN where a pair has
    leverage 1 (nothing else determines it).
    """
    n, dim = fixed.shape
    w = np.asarray(weights, dtype=float)
    # Affine without pair k: beta_k = beta - (XᵀWX)⁻¹ x_k w_k e_k / (1 - w_k x_kᵀ(XᵀWX)⁻¹x_k).
    x = np.hstack([fixed, np.ones((n, 1))])
    xtwx_inv = np.linalg.pinv((x * w[:, None]).T @ x)
    beta = xtwx_inv @ ((x * w[:, None]).T @ moving)
    residual = moving - x @ beta
    lever = np.einsum("ij,jk,ik->i", x, xtwx_inv, x) * w
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = (x @ xtwx_inv)[:, :, None] * (w / (1 - lever))[:, None, None] * residual[:, None, :]
    betas = beta[None] - shift  # (n, dim + 1, dim): rows of fixed's coefficients, then the translation
    a = np.transpose(betas[:, :dim, :], (0, 2, 1))  # moving ≈ a_k @ fixed + t_k
    t = betas[:, dim, :]
    with np.errstate(all="ignore"):
        a_inv = np.linalg.inv(a)
    # Spline targets without pair k: y_j^(k) = A_k⁻¹ (moving_j - t_k) - fixed_j.
    k = basis.shape[1]
    sw = np.sqrt(w)[:, None]
    ridge = smoothing * max(float(np.sum((basis * sw) ** 2)) / k, 1e-30)
    gram = (basis * w[:, None]).T @ basis + ridge * np.eye(k)
    u = scipy.linalg.solve(gram, basis.T, assume_a="pos")  # column k: G⁻¹ b_k
    h = np.einsum("ij,ji->i", basis, u) * w  # leverage of each pair in the spline
    bw = basis * w[:, None]
    p_m, q, p_f = u.T @ (bw.T @ moving), u.T @ bw.sum(axis=0), u.T @ (bw.T @ fixed)  # uₖᵀ BᵀW (moving, 1, fixed)
    with np.errstate(all="ignore"):
        # uₖᵀ BᵀW Y^(k), then without pair k's own term, then the Sherman–Morrison factor.
        y_k = np.einsum("kij,kj->ki", a_inv, moving - t) - fixed
        full = np.einsum("kij,kj->ki", a_inv, p_m - q[:, None] * t) - p_f
        inner = (full - h[:, None] * y_k) / (1 - h)[:, None]
        predicted = np.einsum("kij,kj->ki", a, fixed + inner) + t
        loo = np.linalg.norm(predicted - moving, axis=1)
    loo[~np.isfinite(loo) | (lever > 1 - 1e-9) | (h > 1 - 1e-9)] = math.nan
    return loo


# --- B-spline least squares ------------------------------------------------------------------
def fit_bspline(fixed: np.ndarray, displacement: np.ndarray, weights: np.ndarray, grid: sitk.Image,
                 spline: tuple[int, float]) -> sitk.BSplineTransform:
    """Cubic B-spline (ITK's BSplineTransform) with displacement(fixed_i) ≈ displacement_i,
    weighted least squares, minimum-norm coefficients when underdetermined."""
    tx = bspline_for(grid, spline[0])
    coefficients = tx.GetCoefficientImages()[0]
    basis = bspline_basis(coefficients, fixed)
    solution = bspline_coefficients(basis, displacement, weights, spline[1])
    tx.SetParameters(tuple(float(v) for v in solution.T.ravel()))  # all x coefficients, then y (then z)
    return tx


def bspline_coefficients(basis: np.ndarray, values: np.ndarray, weights: np.ndarray, smoothing: float) -> np.ndarray:
    """B-spline coefficients (n_coefficients, dim) for weighted least squares with a ridge.

    The ridge (`smoothing` × the mean diagonal of the normal matrix) pulls the
    coefficients toward zero, i.e. the deformation toward the affine: without it, a
    pair that only grazes a control point's support forces a huge coefficient to fit
    its noise, and the warp explodes between the landmarks (on the demo brain,
    100 noisy pairs: 25 mm mean error at 0, 0.6 mm at 0.1). Exactly affine data give
    zero coefficients either way. With `smoothing` 0: the exact minimum-norm least
    squares (LAPACK gelsy, rank-revealing QR).
    """
    n, k = basis.shape
    sw = np.sqrt(weights)[:, None]
    b, y = basis * sw, values * sw
    if smoothing == 0:
        solution, *_ = scipy.linalg.lstsq(b, y, lapack_driver="gelsy")
        return solution
    ridge = smoothing * max(float(np.sum(b * b)) / k, 1e-30)
    if n >= k:  # the smaller of the two equivalent systems
        return scipy.linalg.solve(b.T @ b + ridge * np.eye(k), b.T @ y, assume_a="pos")
    return b.T @ scipy.linalg.solve(b @ b.T + ridge * np.eye(n), y, assume_a="pos")


def bspline_for(grid: sitk.Image, mesh_size: int) -> sitk.BSplineTransform:
    """A zero cubic B-spline over the grid's physical extent with `mesh_size` cells per axis."""
    return sitk.BSplineTransformInitializer(grid, [int(mesh_size)] * grid.GetDimension(), 3)


def bspline_basis(coefficients: sitk.Image, points: np.ndarray) -> np.ndarray:
    """(n_points, n_coefficients) matrix of cubic B-spline weights, as ITK evaluates them.

    A point whose 4^dim support leaves the control grid gets an all-zero row (ITK
    gives it zero displacement).
    """
    points = np.asarray(points, dtype=float).reshape(-1, coefficients.GetDimension())
    n, dim = points.shape
    size = np.array(coefficients.GetSize())
    strides = np.cumprod(np.concatenate([[1], size[:-1]]))  # x fastest, as SetParameters expects
    basis = np.zeros((n, int(np.prod(size))))
    if n == 0:
        return basis
    # Physical point -> continuous index, as ITK computes it, for all points at once.
    direction = np.array(coefficients.GetDirection(), dtype=float).reshape(dim, dim)
    to_index = np.linalg.inv(direction * np.array(coefficients.GetSpacing(), dtype=float)[None, :])
    u = (points - np.array(coefficients.GetOrigin(), dtype=float)) @ to_index.T
    start = np.floor(u - 1.0).astype(int)
    inside = np.all((start >= 0) & (start + 3 < size), axis=1)
    rows = np.nonzero(inside)[0]
    taps = np.arange(4)
    axis_weights = [cubic_bspline(u[rows, a][:, None] - (start[rows, a][:, None] + taps)) for a in range(dim)]
    for offsets in np.ndindex(*([4] * dim)):
        value = np.prod([axis_weights[a][:, offsets[a]] for a in range(dim)], axis=0)
        columns = (start[rows] + np.array(offsets)) @ strides
        np.add.at(basis, (rows, columns), value)
    return basis


def cubic_bspline(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    return np.where(t < 1, 2.0 / 3.0 - t**2 + 0.5 * t**3, np.where(t < 2, (2.0 - t) ** 3 / 6.0, 0.0))


# --- grids ------------------------------------------------------------------------------------
def grid_for(reference, fixed: np.ndarray, dim: int) -> sitk.Image:
    """The fixed-space grid a deformation lives on: the reference image's extent
    (coarsened to at most TPS_MAX_NODES per axis) or a box around the fixed points."""
    max_nodes = TPS_MAX_NODES[dim]
    if reference is not None:
        image = getattr(reference, "sitk", reference)
        if not isinstance(image, sitk.Image) or image.GetDimension() != dim:
            raise LandmarkFitError(f"the reference grid must be a {dim}D image like the landmarks")
        size = np.array(image.GetSize())
        spacing = np.array(image.GetSpacing())
        extent = (size - 1) * spacing
        new_size = np.minimum(size, max_nodes)
        new_spacing = np.where(new_size > 1, extent / np.maximum(new_size - 1, 1), spacing)
        origin = np.array(image.GetOrigin())
        direction = image.GetDirection()
    else:
        low, high = fixed.min(axis=0), fixed.max(axis=0)
        margin = 0.25 * max(float((high - low).max()), 1.0)
        low, high = low - margin, high + margin
        new_size = np.full(dim, max_nodes)
        new_spacing = (high - low) / (max_nodes - 1)
        origin = low
        direction = tuple(np.eye(dim).ravel())
    grid = sitk.Image([int(s) for s in new_size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in new_spacing))
    grid.SetOrigin(tuple(float(o) for o in origin))
    grid.SetDirection(direction)
    return grid


def grid_points(grid: sitk.Image) -> np.ndarray:
    """Physical positions (LPS mm) of every grid node, in numpy (z, y, x) order, shape (n, dim)."""
    dim = grid.GetDimension()
    size = grid.GetSize()
    axes = np.meshgrid(*[np.arange(s, dtype=float) for s in reversed(size)], indexing="ij")
    index = np.stack([axes[dim - 1 - a].ravel() for a in range(dim)], axis=1)  # (x, y[, z]) per node
    direction = np.array(grid.GetDirection()).reshape(dim, dim)
    return np.array(grid.GetOrigin()) + (index * np.array(grid.GetSpacing())) @ direction.T
