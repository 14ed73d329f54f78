"""Registering one 2D section onto another (or onto its reference plane).

Each section has its own brightness and contrast (stain, exposure, section thickness),
so both images are first normalised (1st-99th percentile to 0-1) and compared with
correlation between neighbours, or Mattes mutual information against a reference of
another kind (blockface photograph). Sections also arrive turned by any angle on the
slide, which a gradient optimiser started at 0 degrees cannot undo; a coarse search
over angles (every 10 degrees, on a small copy, centres of mass aligned) gives the start.

The result maps FIXED section points to MOVING section points (physical units of each
section's own frame), the convention everywhere in regviewer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import RegviewerError
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams,
                                                SamplingParams, Stage, TransformParams)
from regviewer.core.transforms.ops import matrix_offset, to_affine

STACK_PRESET = "auto"


@dataclass(frozen=True)
class PairResult:
    """One pairwise registration: an affine fixed -> moving, its quality, and why it failed."""

    matrix: np.ndarray | None
    offset: np.ndarray | None
    ncc: float
    error: str | None = None
    transform: sitk.Transform | None = None  # the full result when it is not linear (deformable)

    @property
    def ok(self) -> bool:
        return self.matrix is not None


def normalise(image: sitk.Image) -> sitk.Image:
    """Float32 copy with the 1st-99th percentile mapped to 0-1 (clipped): each section's own
    brightness and contrast no longer matter, and a few saturated pixels do not either."""
    arr = sitk.GetArrayViewFromImage(image).astype(np.float32)
    lo, hi = np.percentile(arr, (1.0, 99.0))
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max()) or 1.0
    out = sitk.GetImageFromArray(np.clip((arr - lo) / max(hi - lo, 1e-12), 0.0, 1.0).astype(np.float32))
    out.CopyInformation(image)
    return out


def _shrinks(image: sitk.Image, finest: int = 1) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Pyramid from about 48 px on the short side down to `finest`."""
    short = min(image.GetSize())
    top = 1
    while short / (top * 2) >= 48 and top < 32:
        top *= 2
    levels = []
    f = top
    while f >= finest:
        levels.append(f)
        f //= 2
    levels = levels or [finest]
    return tuple(levels), tuple(float(s) / 2.0 if s > 1 else 0.0 for s in levels)


def stack_pipeline(image: sitk.Image, metric: str = "correlation", deformable: bool = False,
                   grid_spacing: float | None = None) -> Pipeline:
    """Rigid then affine (then B-spline when `deformable`), pyramid sized to the image.

    The affine stage only runs on the two finest levels: it refines what the rigid
    stage found and must not wander at coarse levels where shear is poorly seen."""
    shrink, sigma = _shrinks(image)
    m = MetricParams(kind=metric, bins=32)
    # At most about 20 000 samples per level are plenty for 6 affine parameters; a 2 000 px
    # slide level at 25 % would take a million per iteration.
    n_pixels = int(np.prod(image.GetSize()))
    sampling = SamplingParams(strategy="random", percentage=0.25,
                              count=20000 if n_pixels * 0.25 > 20000 else 0)
    rigid = Stage(name="rigid", transform=TransformParams(kind="rigid"), metric=m,
                  optimizer=OptimizerParams(kind="regular_step", iterations=200, learning_rate=1.0, min_step=1e-4),
                  pyramid=PyramidParams(shrink_factors=shrink, smoothing_sigmas=sigma), sampling=sampling)
    affine = Stage(name="affine", transform=TransformParams(kind="affine"), metric=m,
                   optimizer=OptimizerParams(kind="regular_step", iterations=200, learning_rate=0.5, min_step=1e-5),
                   pyramid=PyramidParams(shrink_factors=shrink[-2:], smoothing_sigmas=sigma[-2:]), sampling=sampling)
    stages = [rigid, affine]
    if deformable:
        extent = min(s * n for s, n in zip(image.GetSpacing(), image.GetSize()))
        spacing = grid_spacing or extent / 3.0
        stages.append(Stage(name="bspline", transform=TransformParams(kind="bspline", grid_spacing_mm=max(1.0, spacing)),
                            metric=m, optimizer=OptimizerParams(kind="lbfgsb", iterations=100),
                            pyramid=PyramidParams(shrink_factors=shrink[-2:], smoothing_sigmas=sigma[-2:]),
                            sampling=sampling))
    return Pipeline(stages=tuple(stages), name="stack", description="serial sections: rigid, affine")


def pipeline_for(preset: str | None, params: Pipeline | None, image: sitk.Image, metric: str,
                 deformable: bool) -> Pipeline:
    """The pairwise pipeline: explicit `params`, else a named preset, else the stack default.

    'auto' (or None) means the stack default: the generic 'auto' preset does not know
    that sections are 2D, cut from one block, and each with its own brightness."""
    if params is not None:
        return params
    if preset in (None, "", STACK_PRESET, "auto-deformable"):
        return stack_pipeline(image, metric, deformable or preset == "auto-deformable")
    from regviewer.core.registration.presets import load_preset

    return load_preset(preset)


def _small(image: sitk.Image, side: int = 96) -> sitk.Image:
    f = max(1, int(max(image.GetSize()) // side))
    smooth = sitk.SmoothingRecursiveGaussian(image, [0.5 * f * s for s in image.GetSpacing()]) if f > 1 else image
    return sitk.Shrink(smooth, [f, f]) if f > 1 else image


def foreground_weights(arr: np.ndarray) -> np.ndarray:
    """How much each pixel differs from the background, taken as the median of the image
    border: tissue may be brighter (fluorescence, blockface on black) or darker (bright-
    field histology) than the glass around it."""
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    w = np.abs(arr - np.median(border))
    return w if w.sum() > 0 else np.ones_like(arr)


def _centroid(image: sitk.Image) -> np.ndarray:
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    w = foreground_weights(arr)
    ys, xs = np.indices(arr.shape)
    idx = (float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum()))
    return np.array(image.TransformContinuousIndexToPhysicalPoint(idx))


def rotation_search(fixed: sitk.Image, moving: sitk.Image, metric: str, scale: float = 1.0,
                    step_deg: float = 10.0) -> sitk.Transform:
    """Best start over all angles: a similarity about the fixed centroid with the
    centroids matched, scored by the metric on ~96 px copies. Normalised inputs."""
    f, m = _small(fixed), _small(moving)
    cf, cm = _centroid(f), _centroid(m)
    method = _scorer(metric)
    best, best_value = None, math.inf
    for angle in np.arange(-180.0, 180.0, step_deg):
        tx = sitk.Similarity2DTransform(scale, math.radians(angle), (cm - cf).tolist(), cf.tolist())
        method.SetInitialTransform(tx, inPlace=False)
        try:
            value = method.MetricEvaluate(f, m)
        except RuntimeError:  # too little overlap at this angle
            continue
        if value < best_value:
            best, best_value = tx, value
    if best is None:
        best = sitk.Similarity2DTransform(scale, 0.0, (cm - cf).tolist(), cf.tolist())
    return best


def _scorer(metric: str) -> sitk.ImageRegistrationMethod:
    """What scores a start on the ~96 px copies: Mattes MI (32 bins) or correlation, linear."""
    method = sitk.ImageRegistrationMethod()
    if metric == "mattes":
        method.SetMetricAsMattesMutualInformation(32)
    else:
        method.SetMetricAsCorrelation()
    method.SetInterpolator(sitk.sitkLinear)
    return method


def start_cost(fixed: sitk.Image, moving: sitk.Image, metric: str, transform: sitk.Transform) -> float:
    """The metric (lower is better) of a start transform on the ~96 px copies that
    `rotation_search` scores on, so starts from different searches can be compared."""
    method = _scorer(metric)
    method.SetInitialTransform(transform, inPlace=False)
    try:
        return float(method.MetricEvaluate(_small(fixed), _small(moving)))
    except RuntimeError:  # too little overlap
        return math.inf


def ncc(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform | None) -> float:
    """Pearson correlation of fixed and moving-through-transform where both have data."""
    tx = transform if transform is not None else sitk.Transform(2, sitk.sitkIdentity)
    moved = sitk.Resample(moving, fixed, tx, sitk.sitkLinear, math.nan, sitk.sitkFloat32)
    a = sitk.GetArrayViewFromImage(fixed).ravel()
    b = sitk.GetArrayViewFromImage(moved).ravel()
    inside = np.isfinite(b)
    if inside.sum() < 16:
        return 0.0
    a, b = a[inside].astype(np.float64), b[inside].astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def register_pair(fixed: sitk.Image, moving: sitk.Image, params: Pipeline, metric: str = "correlation",
                  initial: sitk.Transform | None = None, search: bool = True, seed: int = 0,
                  cancel=None) -> PairResult:
    """Register normalised `moving` onto normalised `fixed`; never raises for a failed run.

    `initial` (fixed -> moving) skips the angle search. The result is checked: a
    registration whose correlation is below its start is not kept (the start is)."""
    from regviewer.core.registration.engine import register

    try:
        start = initial if initial is not None else (rotation_search(fixed, moving, metric) if search else None)
        result = register(fixed, moving, params=params, initial_transform=start, seed=seed, cancel=cancel)
        tx = result.transform
        value = ncc(fixed, moving, tx)
        if start is not None:
            before = ncc(fixed, moving, start)
            if before > value + 0.02:  # worse than its start: keep the start
                tx, value = start, before
        try:
            a, t = matrix_offset(to_affine(tx))
            return PairResult(a, t, value)
        except RegviewerError:  # deformable: keep the whole transform, and its affine part
            linear = _linear_part(tx)
            a, t = matrix_offset(linear)
            return PairResult(a, t, value, transform=tx)
    except RegviewerError as exc:
        return PairResult(None, None, 0.0, error=str(exc))
    except RuntimeError as exc:
        return PairResult(None, None, 0.0, error=str(exc).strip().splitlines()[-1][:200])


def timed_register_pair(fixed: sitk.Image, moving: sitk.Image, params: Pipeline, metric: str,
                        initial: sitk.Transform | None, seed: int = 0, cancel=None) -> tuple[PairResult, float]:
    """`register_pair` and its wall time (s); a plain function so a process pool or a Dask
    worker can run it."""
    import time

    t0 = time.perf_counter()
    result = register_pair(fixed, moving, params, metric, initial=initial, seed=seed, cancel=cancel)
    return result, time.perf_counter() - t0


def _linear_part(tx: sitk.Transform) -> sitk.Transform:
    """The composite's linear transforms only (what a B-spline stage was added on top of)."""
    comp = sitk.CompositeTransform(tx) if tx.GetName() == "CompositeTransform" else None
    out = sitk.CompositeTransform(2)
    if comp is None:
        return sitk.Transform(2, sitk.sitkIdentity)
    for i in range(comp.GetNumberOfTransforms()):
        part = comp.GetNthTransform(i)
        if part.GetName() not in ("BSplineTransform", "DisplacementFieldTransform"):
            out.AddTransform(part)
    return out if out.GetNumberOfTransforms() else sitk.Transform(2, sitk.sitkIdentity)


__all__ = ["PairResult", "timed_register_pair", "normalise", "stack_pipeline", "pipeline_for", "register_pair", "rotation_search", "start_cost", "ncc"]
