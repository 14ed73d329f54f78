"""The terms of a landmark-guided objective: an ITK image metric and a landmark distance.

Each term gives its value and its gradient with respect to the stage transform's own
parameters (the transform applied FIRST to a fixed point; `previous` follows it), so
`landmark_guided` can hand their weighted sum to scipy's L-BFGS-B.

Why the metric gradient comes from a one-iteration gradient descent: SimpleITK exposes
`MetricEvaluate` (value only), but ITK's v4 metrics compute value and derivative
together inside the optimiser. One `Execute` with plain gradient descent, one
iteration, a known learning rate and no learning-rate estimation moves the
parameters by exactly ``learning_rate * derivative``; reading the position back
gives ITK's own analytic derivative at the cost of one ITK iteration (plus ~0.1 s of
set-up per call on a 2 mm brain). Image-gradient filters are switched off: ITK then
differentiates the images at the sampled points, which agrees with finite
differences of the value to about 10-20 % (with the filters on, up to 4x off).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from regviewer.core.landmarks.warp import bspline_basis
from regviewer.core.registration.params import Stage
from regviewer.core.transforms.ops import copy_transform

_PROBE_RATE = 1e-6  # learning rate of the probing step; the update is linear in it, so any small value works


class ItkMetricTerm:
    """An ITK v4 image metric (Mattes MI, correlation, ...) on one pyramid level, set up exactly
    as a plain stage's ITK run of that level: the same level images, the same sampling grid
    (the fixed level image shrunk by `rest`), the same sample points.

    Why the shrunk grid is a virtual domain and not a shrunk fixed image: ITK samples the
    fixed image at random points of the shrunk grid's voxels and interpolates the level
    image there; a fixed image shrunk beforehand is interpolated across voxels `rest`
    times larger, a different (aliased) objective whose optimum was 1-2 mm off the plain
    stage's on the 2 mm brain (the cause of guided runs ending worse than plain ones).
    One ImageRegistrationMethod is kept per level and re-run, which saves its set-up.
    """

    def __init__(self, stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                 seed: int, fixed_mask: sitk.Image | None, moving_mask: sitk.Image | None, reproducible: bool,
                 rest: int = 1):
        self._args = (stage, fixed, moving, previous, seed, fixed_mask, moving_mask, reproducible, int(rest))
        self._method: sitk.ImageRegistrationMethod | None = None
        self._probe: sitk.Transform | None = None
        self.valid_points = 0

    @property
    def scale_floor(self) -> float:
        """The least |value| the objective is normalised by: a mean-squares start may be exactly 0
        (images already aligned), so 1 % of the fixed image's variance (half the mean squares of
        unrelated images) stands in; other metrics are of order 1."""
        stage, fixed = self._args[0], self._args[1]
        if stage.metric.kind != "mean_squares":
            return 1e-3
        stats = sitk.StatisticsImageFilter()
        stats.Execute(fixed)
        return max(0.01 * stats.GetVariance(), 1e-12)

    def _build(self, tx: sitk.Transform) -> None:
        from regviewer.core.registration.method_settings import set_inputs, set_metric, set_sampling, set_work_units

        stage, fixed, _moving, previous, seed, f_mask, m_mask, reproducible, rest = self._args
        method = sitk.ImageRegistrationMethod()
        set_work_units(method, stage, reproducible)
        set_metric(method, stage)
        one = dataclasses.replace(stage, pyramid=dataclasses.replace(stage.pyramid, shrink_factors=(rest,),
                                                                     smoothing_sigmas=(0.0,)))
        set_sampling(method, one, fixed, seed)
        method.SetMetricUseFixedImageGradientFilter(False)
        method.SetMetricUseMovingImageGradientFilter(False)
        method.SetShrinkFactorsPerLevel([1])
        method.SetSmoothingSigmasPerLevel([0.0])
        if rest > 1:
            method.SetVirtualDomainFromImage(sitk.Shrink(fixed, [min(rest, s) for s in fixed.GetSize()]))
        set_inputs(method, stage, f_mask, m_mask, previous)
        self._probe = copy_transform(tx)
        method.SetInitialTransform(self._probe, inPlace=True)
        method.SetOptimizerAsGradientDescent(learningRate=_PROBE_RATE, numberOfIterations=1,
                                             estimateLearningRate=method.Never)
        self._method = method

    def probe_centre(self) -> tuple[float, ...] | None:
        """The centre ITK left on the probed transform (see `landmark_guided._with_itk_centre`)."""
        return self._probe.GetCenter() if self._probe is not None and hasattr(self._probe, "GetCenter") else None

    def value_and_gradient(self, tx: sitk.Transform) -> tuple[float, np.ndarray]:
        """Metric value (lower is better) and d value / d parameters at `tx`'s parameters."""
        start = np.array(tx.GetParameters())
        if (self._probe is None or self._probe.GetName() != tx.GetName()
                or len(self._probe.GetParameters()) != len(start)
                or self._probe.GetFixedParameters() != tx.GetFixedParameters()):
            self._build(tx)
        self._probe.SetParameters(tuple(start))
        # again each time: a SimpleITK transform is copy-on-write, so once SetParameters has made the
        # probe unique, the method would update the copy it holds instead of this one
        self._method.SetInitialTransform(self._probe, inPlace=True)
        self._method.Execute(self._args[1], self._args[2])
        self.valid_points = self._method.GetMetricNumberOfValidPoints()
        derivative = (np.array(self._probe.GetParameters()) - start) / _PROBE_RATE  # ITK steps downhill
        return float(self._method.GetMetricValue()), -derivative


class LandmarkTerm:
    """Weighted mean squared distance (mm²) between previous(T(fixed_i)) and moving_i."""

    def __init__(self, fixed_pts: np.ndarray, moving_pts: np.ndarray, weights: np.ndarray,
                 previous: sitk.Transform | None):
        self.fixed = np.asarray(fixed_pts, float)
        self.moving = np.asarray(moving_pts, float)
        w = np.asarray(weights, float)
        self.weights = w / w.sum()
        self.previous = previous
        self._basis: np.ndarray | None = None  # B-spline weights of the fixed points (constant per grid)

    def residuals(self, tx: sitk.Transform) -> np.ndarray:
        """previous(T(fixed_i)) - moving_i, shape (n, dim)."""
        return self._full(self._stage_points(tx)) - self.moving

    def value_and_gradient(self, tx: sitk.Transform) -> tuple[float, np.ndarray]:
        inner = self._stage_points(tx)
        r = self._full(inner) - self.moving
        value = float(np.sum(self.weights * np.sum(r * r, axis=1)))
        # d/dT(x_i) of the term: 2 w_i J_prev(T(x_i))^T r_i, then chained with dT(x_i)/dp.
        g_inner = 2.0 * self.weights[:, None] * np.einsum("nij,ni->nj", self._previous_jacobians(inner), r)
        return value, self._chain(tx, g_inner)

    # --- pieces -------------------------------------------------------------------------------
    def _stage_points(self, tx: sitk.Transform) -> np.ndarray:
        return np.array([tx.TransformPoint(tuple(p)) for p in self.fixed])

    def _full(self, inner: np.ndarray) -> np.ndarray:
        if self.previous is None:
            return inner
        return np.array([self.previous.TransformPoint(tuple(p)) for p in inner])

    def _previous_jacobians(self, inner: np.ndarray, h: float = 0.5) -> np.ndarray:
        """d previous / dx at each point (central differences over ±h mm; exact for linear)."""
        n, dim = inner.shape
        if self.previous is None:
            return np.repeat(np.eye(dim)[None], n, axis=0)
        jac = np.empty((n, dim, dim))
        for a in range(dim):
            step = np.zeros(dim)
            step[a] = h
            jac[:, :, a] = (self._full(inner + step) - self._full(inner - step)) / (2 * h)
        return jac

    def _chain(self, tx: sitk.Transform, g_inner: np.ndarray) -> np.ndarray:
        """Sum_i g_inner_i . dT(x_i)/dp for the stage transform `tx`."""
        if tx.GetName() == "BSplineTransform":
            if self._basis is None or self._basis.shape[1] * g_inner.shape[1] != len(tx.GetParameters()):
                coeff = sitk.BSplineTransform(tx).GetCoefficientImages()[0]
                self._basis = bspline_basis(coeff, self.fixed)
            # displacement_d(x) = sum_k basis[x, k] c[d * K + k]: linear in the coefficients
            return np.concatenate([self._basis.T @ g_inner[:, d] for d in range(g_inner.shape[1])])
        return parameter_jacobian_t(tx, self.fixed, g_inner)


def parameter_jacobian_t(tx: sitk.Transform, points: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Sum_i g_i . dT(points_i)/dp for a linear transform, by central differences of its
    parameters (a handful of parameters; exact for affine, O(h²) for rotations)."""
    params = np.array(tx.GetParameters())
    probe = copy_transform(tx)
    out = np.empty(len(params))
    steps = 1e-4 * np.maximum(1.0, np.abs(params))
    for k, h in enumerate(steps):
        moved = []
        for sign in (1.0, -1.0):
            p = params.copy()
            p[k] += sign * h
            probe.SetParameters(tuple(p))
            moved.append(np.array([probe.TransformPoint(tuple(x)) for x in points]))
        out[k] = float(np.sum(g * (moved[0] - moved[1]))) / (2 * h)
    return out


def physical_scales(tx: sitk.Transform, reference: sitk.Image) -> np.ndarray:
    """How far (mm) a unit change of each parameter moves the reference's corners, at most
    (ITK's 'physical shift' estimate): dividing by it makes every optimisation variable a
    millimetre, which L-BFGS needs to treat rotations and shifts alike."""
    dim = reference.GetDimension()
    size = reference.GetSize()
    corners = np.array([reference.TransformContinuousIndexToPhysicalPoint(
        [float(c) * (s - 1) for c, s in zip(bits, size)]) for bits in np.ndindex(*([2] * dim))])
    params = np.array(tx.GetParameters())
    probe = copy_transform(tx)
    base = np.array([tx.TransformPoint(tuple(c)) for c in corners])
    scales = np.ones(len(params))
    h = 1e-3
    for k in range(len(params)):
        p = params.copy()
        p[k] += h
        probe.SetParameters(tuple(p))
        moved = np.array([probe.TransformPoint(tuple(c)) for c in corners])
        scales[k] = max(float(np.max(np.linalg.norm(moved - base, axis=1))) / h, 1e-6)
    return scales


def membrane_energy(tx: sitk.Transform) -> tuple[float, np.ndarray]:
    """Mean squared difference (mm²) of neighbouring B-spline coefficients along each axis, and
    its gradient: a smoothness penalty (zero for any translation of the whole grid)."""
    coeff = sitk.BSplineTransform(tx).GetCoefficientImages()
    dim = len(coeff)
    value, grads, count = 0.0, [], 0
    arrays = [sitk.GetArrayFromImage(c).astype(float) for c in coeff]
    for axis in range(dim):
        count += arrays[0].size - arrays[0].size // arrays[0].shape[axis]
    for c in arrays:
        g = np.zeros_like(c)
        for axis in range(dim):
            d = np.diff(c, axis=axis)
            value += float(np.sum(d * d))
            lo = [slice(None)] * dim
            hi = [slice(None)] * dim
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            g[tuple(hi)] += 2 * d
            g[tuple(lo)] -= 2 * d
        grads.append(g.ravel())
    count = max(count * dim, 1)
    return value / count, np.concatenate(grads) / count
