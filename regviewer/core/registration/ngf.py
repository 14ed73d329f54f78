"""Normalised gradient fields (NGF): a metric that asks edges to agree in direction.

Haber & Modersitzki (2006): with n_I = grad I / sqrt(|grad I|² + eps²),

    NGF = -mean over x of (n_F(x) . n_R(x))²,   R = moving resampled through the transform,

which is -1 where every edge of one image lies along an edge of the other (with either
sign, so dark-to-bright in one modality may be bright-to-dark in the other) and 0 where
the gradients are unrelated. It ignores the intensity mapping entirely, so it suits
multi-modal pairs (optical / radar, T1 / T2) and is the gradient-direction term of the
landmark-guided objective.

ITK has no NGF metric, so this is numpy/scipy on each pyramid level's full fixed grid
(the sampling settings do not apply): value and analytic gradient for linear models and
B-splines (whose weights are separable on the grid, so the gradient is three small
matrix products). The moving image is resampled once per level through the earlier
stages' transform onto the fixed grid; the stage transform then moves points on it.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from regviewer.core.landmarks.warp import cubic_bspline
from regviewer.core.transforms.ops import copy_transform, matrix_offset

EPS_FRACTION = 0.1  # eps = this fraction of the image's mean gradient magnitude over its non-flat voxels


class NgfTerm:
    """NGF between `fixed` (one pyramid level) and `moving` seen through `previous`."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                 fixed_mask: sitk.Image | None = None):
        self.previous = previous
        dim = fixed.GetDimension()
        self.dim = dim
        self.shape = tuple(reversed(fixed.GetSize()))  # numpy order (z, y, x)
        self.spacing = np.array(fixed.GetSpacing())
        self.direction = np.array(fixed.GetDirection()).reshape(dim, dim)
        self.origin = np.array(fixed.GetOrigin())
        self.grid = fixed
        through = previous if previous is not None else sitk.Transform(dim, sitk.sitkIdentity)
        warped = sitk.Resample(sitk.Cast(moving, sitk.sitkFloat64), fixed, through, sitk.sitkLinear, 0.0)
        self.moving = sitk.GetArrayFromImage(warped)
        self.moving_grad = self._physical_gradient(self.moving)
        # forward differences M[i+1] - M[i] along each index axis (x, y, z): the exact slopes of
        # the linear interpolant, so the gradient below is that of the objective actually computed
        self.forward = [np.diff(self.moving, axis=dim - 1 - a, append=0.0) for a in range(dim)]
        f_grad = self._physical_gradient(sitk.GetArrayFromImage(sitk.Cast(fixed, sitk.sitkFloat64)))
        eps_f = _eps(f_grad)
        self.eps_m = _eps(self.moving_grad)
        self.n_fixed = f_grad / np.sqrt(np.sum(f_grad**2, axis=0) + eps_f**2)
        idx = np.indices(self.shape).reshape(dim, -1)[::-1].T  # (x, y, z) index per voxel, z slowest
        self.points = self.origin + (idx * self.spacing) @ self.direction.T
        inside = np.zeros(self.shape, bool)
        inside[(slice(1, -1),) * dim] = True  # border voxels have no central difference
        if fixed_mask is not None:
            m = sitk.Resample(fixed_mask, fixed, sitk.Transform(dim, sitk.sitkIdentity), sitk.sitkNearestNeighbor, 0)
            inside &= sitk.GetArrayViewFromImage(m) > 0
        self.region = inside
        self.valid_points = 0
        self._bspline_axes: list[np.ndarray] | None = None

    # --- value and gradient --------------------------------------------------------------------
    def value_and_gradient(self, tx: sitk.Transform) -> tuple[float, np.ndarray]:
        mapped = self._map(tx)
        cont = self._to_index(mapped)  # continuous (x, y, z) index on the fixed grid
        coords = cont[:, ::-1].T  # map_coordinates wants (z, y, x) rows
        r = map_coordinates(self.moving, coords, order=1, mode="constant", cval=0.0).reshape(self.shape)
        inside_moving = np.all((cont >= 0) & (cont <= np.array(self.shape[::-1]) - 1), axis=1).reshape(self.shape)
        omega = self.region & inside_moving
        self.valid_points = int(omega.sum())
        if self.valid_points == 0:
            return 0.0, np.zeros(len(tx.GetParameters()))
        count = max(int(self.region.sum()), 1)  # a fixed divisor: points leaving the overlap add 0, no jump
        g = self._physical_gradient(r)
        denom = np.sum(g * g, axis=0) + self.eps_m**2
        dot = np.sum(g * self.n_fixed, axis=0)
        q = dot**2 / denom
        value = -float(q[omega].sum()) / count
        # d value / d g (physical), then back through the central differences to d value / d R
        dg = -(2 * dot / denom * self.n_fixed - 2 * dot**2 / denom**2 * g) * omega / count
        d_index = np.einsum("ij,i...->j...", self.direction, dg) / self._per_axis(self.spacing)
        d_r = self._central_adjoint(d_index)
        # chain: dR(x)/dp = grad Mp(T(x)) . dT(x)/dp
        grad_m = self._interpolant_gradient(coords)  # (dim, N)
        v = (d_r.ravel()[None, :] * grad_m).T  # (N, dim)
        return value, self._chain(tx, v)

    def _interpolant_gradient(self, coords: np.ndarray) -> np.ndarray:
        """Physical gradient of the linearly interpolated moving image at `coords` ((z, y, x) rows)."""
        d_index = []
        for a in range(self.dim):
            row = self.dim - 1 - a
            c = coords.copy()
            c[row] = np.floor(c[row])  # along axis a the slope is the forward difference of the cell
            d_index.append(map_coordinates(self.forward[a], c, order=1, mode="constant", cval=0.0))
        d_index = np.array(d_index) / self.spacing[:, None]
        return self.direction @ d_index

    def _map(self, tx: sitk.Transform) -> np.ndarray:
        if tx.GetName() == "BSplineTransform":
            field = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, self.grid.GetSize(),
                                                      self.grid.GetOrigin(), self.grid.GetSpacing(),
                                                      self.grid.GetDirection())
            return self.points + sitk.GetArrayFromImage(field).reshape(-1, self.dim)
        a, b = matrix_offset(tx)
        return self.points @ a.T + b

    def _to_index(self, points: np.ndarray) -> np.ndarray:
        return ((points - self.origin) @ self.direction) / self.spacing

    def _chain(self, tx: sitk.Transform, v: np.ndarray) -> np.ndarray:
        if tx.GetName() == "BSplineTransform":
            return self._bspline_chain(tx, v)
        params = np.array(tx.GetParameters())
        probe = copy_transform(tx)
        vx = v.T @ self.points  # sum_x v x^T
        vs = v.sum(axis=0)
        out = np.empty(len(params))
        for k in range(len(params)):
            h = 1e-4 * max(1.0, abs(params[k]))
            mats = []
            for sign in (1.0, -1.0):
                p = params.copy()
                p[k] += sign * h
                probe.SetParameters(tuple(p))
                mats.append(matrix_offset(probe))
            da = (mats[0][0] - mats[1][0]) / (2 * h)
            db = (mats[0][1] - mats[1][1]) / (2 * h)
            out[k] = float(np.sum(da * vx) + db @ vs)
        return out

    def _bspline_chain(self, tx: sitk.Transform, v: np.ndarray) -> np.ndarray:
        """d/dc of sum_x v(x) . displacement(x): separable weights W_x, W_y, W_z per grid axis."""
        coeff = sitk.BSplineTransform(tx).GetCoefficientImages()[0]
        if self._bspline_axes is None or self._bspline_axes[0].shape[1] != coeff.GetSize()[0]:
            self._bspline_axes = self._axis_weights(coeff)
        w = self._bspline_axes  # w[a]: (grid size along axis a, coefficients along axis a)
        out = []
        for d in range(self.dim):
            t = v[:, d].reshape(self.shape)  # (z, y, x)
            for a in range(self.dim):  # contract x first (the last numpy axis), then y, then z
                t = np.tensordot(t, w[a], axes=([self.dim - 1 - a], [0]))
                t = np.moveaxis(t, -1, self.dim - 1 - a)
            out.append(t.ravel())  # (cz, cy, cx) flattened: x fastest, as SetParameters expects
        return np.concatenate(out)

    def _axis_weights(self, coeff: sitk.Image) -> list[np.ndarray]:
        relative = np.array(coeff.GetDirection()).reshape(self.dim, self.dim).T @ self.direction
        if not np.allclose(np.abs(relative), np.eye(self.dim), atol=1e-6):  # axes may flip, not turn
            raise ValueError("NGF with a B-spline needs the control grid aligned with the fixed image")
        size_c = coeff.GetSize()
        out = []
        for a in range(self.dim):
            n = self.grid.GetSize()[a]
            w = np.zeros((n, size_c[a]))
            for i in range(n):
                index = [0.0] * self.dim
                index[a] = float(i)
                u = coeff.TransformPhysicalPointToContinuousIndex(self.grid.TransformContinuousIndexToPhysicalPoint(index))[a]
                start = int(np.floor(u - 1.0))
                if start < 0 or start + 3 >= size_c[a]:
                    continue  # ITK gives such points no displacement
                w[i, start:start + 4] = cubic_bspline(u - (start + np.arange(4)))
            out.append(w)
        return out

    # --- finite differences --------------------------------------------------------------------
    def _physical_gradient(self, image: np.ndarray) -> np.ndarray:
        """Central differences (zero on the border) turned into physical-space gradients (dim, *shape)."""
        diffs = np.stack([_central(image, self.dim - 1 - a) for a in range(self.dim)])  # d/d index x, y, z
        diffs /= self._per_axis(self.spacing)
        return np.einsum("ij,j...->i...", self.direction, diffs)

    def _per_axis(self, values: np.ndarray) -> np.ndarray:
        return values.reshape((self.dim,) + (1,) * self.dim)

    def _central_adjoint(self, d_index: np.ndarray) -> np.ndarray:
        """Adjoint of the index-space central differences applied to per-axis weights."""
        out = np.zeros(self.shape)
        for a in range(self.dim):
            axis = self.dim - 1 - a
            v = np.moveaxis(d_index[a], axis, 0)
            o = np.moveaxis(out, axis, 0)
            o[2:] += 0.5 * v[1:-1]
            o[:-2] -= 0.5 * v[1:-1]
        return out


def _central(image: np.ndarray, axis: int) -> np.ndarray:
    out = np.zeros_like(image, dtype=float)
    src = np.moveaxis(image, axis, 0)
    dst = np.moveaxis(out, axis, 0)
    dst[1:-1] = 0.5 * (src[2:] - src[:-2])
    return out


def _eps(grad: np.ndarray) -> float:
    mag = np.sqrt(np.sum(grad**2, axis=0))
    active = mag[mag > 1e-12]
    return float(EPS_FRACTION * active.mean()) if active.size else 1.0
