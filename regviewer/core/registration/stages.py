"""One optimisation stage with SimpleITK's ImageRegistrationMethod.

Handles linear models, B-splines (control grid refined per level) and dense
displacement fields with Gaussian regularisation. Every stage estimates a transform
that is applied to a fixed point FIRST, followed by the transform of the earlier
stages (`previous`, passed as ITK's moving-initial transform), so the full
fixed -> moving mapping is ``previous(stage(x))``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import RegistrationFailed
from regviewer.core.registration.bspline_grid import mesh_for_spacing, refine_bspline
from regviewer.core.registration.creep import MAX_RESTARTS, CreepWatch, regrows
from regviewer.core.registration.drift import LAGGING_OPTIMIZERS, BestPosition
from regviewer.core.registration.method_settings import (set_inputs, set_metric, set_optimizer, set_sampling,
                                                        set_work_units)
from regviewer.core.registration.run_state import RunState
from regviewer.core.registration.stage_errors import explain_failure
from regviewer.core.registration.params import LINEAR_TRANSFORMS, Stage
from regviewer.core.transforms.ops import copy_transform, make_linear


def run_method_stage(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                     run: RunState, seed: int, fixed_mask: sitk.Image | None = None,
                     moving_mask: sitk.Image | None = None, initial: sitk.Transform | None = None,
                     reproducible: bool = True) -> sitk.Transform:
    """Optimise one stage; return its own transform (not composed with `previous`).

    `initial`, when given, is this stage's starting transform (e.g. set by an
    initialiser); otherwise an identity of the stage's model is used.
    On cancel the transform reached so far is returned (the caller checks `run.cancelled`).
    """
    if stage.transform.kind == "displacement":
        return _execute(stage, fixed, moving, previous, run, seed, fixed_mask, moving_mask, initial,
                        reproducible=reproducible)
    return _run_levels(stage, fixed, moving, previous, run, seed, fixed_mask, moving_mask, initial, reproducible)


def prefetch_first_level(stage: Stage, fixed: sitk.Image, moving: sitk.Image, run: RunState) -> None:
    """Start making the first level's images of a stage `_run_levels` will run (e.g. while the
    initializer runs)."""
    if stage.transform.kind in ("displacement", "demons", "flow"):
        return
    shrink, sigma = stage.pyramid.shrink_factors[0], stage.pyramid.smoothing_sigmas[0]
    for image in (fixed, moving):
        run.pyramid.prefetch(image, shrink, sigma, bool(stage.pyramid.sigmas_in_mm))


def level_optimizer(stage: Stage, k: int):
    """The optimiser settings of pyramid level `k`: with `coarse_min_step`, a regular-step optimiser
    on a coarser level stops at a minimum step as many times larger as the level is coarser (the
    plain and the landmark-guided loops both use this, so the same preset optimises alike)."""
    opt, levels = stage.optimizer, stage.pyramid.shrink_factors
    if opt.coarse_min_step and opt.kind == "regular_step":
        return dataclasses.replace(opt, min_step=opt.min_step * levels[k] / levels[-1])
    return opt


def _run_levels(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                run: RunState, seed: int, fixed_mask: sitk.Image | None, moving_mask: sitk.Image | None,
                initial: sitk.Transform | None, reproducible: bool) -> sitk.Transform:
    """The pyramid as one ImageRegistrationMethod run per level, coarse to fine.

    Why not ITK's own multi-level loop: (1) a cancel must return within a second, but
    ITK sets up every remaining level (seconds each on a 1 mm brain) even after
    StopRegistration; between our levels we simply stop. (2) ITK's L-BFGS-B keeps the
    scales and bounds sized for the first level's B-spline grid, so built-in grid
    refinement fails with "Size of scales (N) must equal number of local parameters
    (M)"; we refine the grid ourselves, exactly (B-spline subdivision), for every
    optimiser. (3) ITK would smooth the full-size images again at every level of every
    stage; the smoothed images come from the run's shared `PyramidCache` (made once).
    """
    levels = stage.pyramid.shrink_factors
    sigmas = stage.pyramid.smoothing_sigmas
    n_levels = len(levels)
    tx = initial
    refine = stage.transform.kind == "bspline" and stage.transform.refine_grid
    if stage.transform.kind == "bspline":
        final_mesh = mesh_for_spacing(fixed, stage.transform.grid_spacing_mm)
        start = [max(1, int(round(m / 2 ** (n_levels - 1)))) for m in final_mesh] if refine else final_mesh
        tx = sitk.BSplineTransformInitializer(fixed, start, 3)
    first_reason = len(run.stop_reasons)
    in_mm = bool(stage.pyramid.sigmas_in_mm)
    for k in range(n_levels):
        # The level's images come from the run's shared cache (made once); ITK only
        # shrinks its sampling grid by what the cache has not (see `pyramid.py`).
        fixed_k, rest = run.pyramid.level(fixed, levels[k], sigmas[k], in_mm)
        moving_k, _ = run.pyramid.level(moving, levels[k], sigmas[k], in_mm)
        if k + 1 < n_levels:  # made on the other core while this level is optimised
            run.pyramid.prefetch(fixed, levels[k + 1], sigmas[k + 1], in_mm)
            run.pyramid.prefetch(moving, levels[k + 1], sigmas[k + 1], in_mm)
        opt = level_optimizer(stage, k)
        one = dataclasses.replace(
            stage, pyramid=dataclasses.replace(stage.pyramid, shrink_factors=(rest,), smoothing_sigmas=(0.0,)),
            transform=dataclasses.replace(stage.transform, refine_grid=False), optimizer=opt)
        tx = _run_level(one, fixed_k, moving_k, previous, run, seed, fixed_mask, moving_mask, tx, k, n_levels,
                        reproducible, fixed, regrow=regrows(stage))
        if run.cancelled:
            break
        if refine and k < n_levels - 1:
            tx = refine_bspline(tx, fixed)
    reasons = run.stop_reasons[first_reason:]
    del run.stop_reasons[first_reason:]
    if reasons:
        run.stop_reasons.append(reasons[-1] + (f" (level {len(reasons)} of {n_levels})" if len(reasons) > 1 else ""))
    return tx


def _run_level(one: Stage, fixed_k: sitk.Image, moving_k: sitk.Image, previous: sitk.Transform | None,
               run: RunState, seed: int, fixed_mask: sitk.Image | None, moving_mask: sitk.Image | None,
               tx: sitk.Transform | None, k: int, n_levels: int, reproducible: bool, domain: sitk.Image,
               regrow: bool) -> sitk.Transform:
    """One pyramid level (`one`: the stage as this level runs it): one ImageRegistrationMethod run,
    or with `regrow` several, each starting where the one before crept, with a longer step."""
    opt = one.optimizer
    first, restarts = len(run.history), 0
    while True:
        watch = CreepWatch(one.optimizer.learning_rate) if regrow and restarts < MAX_RESTARTS else None
        done = len(run.history) - first  # the level's iterations so far: a restarted level counts on
        tx = _execute(one, fixed_k, moving_k, previous, run, seed, fixed_mask, moving_mask, tx, level_offset=k,
                      n_levels=n_levels, reproducible=reproducible, domain=domain, creep=watch,
                      first_iteration=done)
        done = len(run.history) - first
        if watch is None or not watch.creeping or run.cancelled:
            break
        if done >= opt.iterations:
            run.stop_reasons.append(f"{one.name}: maximum iterations ({opt.iterations}) reached while creeping")
            break
        restarts += 1
        one = dataclasses.replace(one, optimizer=dataclasses.replace(
            opt, learning_rate=watch.regrown_rate(), iterations=opt.iterations - done))
    if restarts and run.stop_reasons:  # the last run's own words count only its own iterations
        run.stop_reasons[-1] += f" (the level: {done} iterations, {restarts} restarts)"
    return tx


def _execute(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
             run: RunState, seed: int, fixed_mask: sitk.Image | None, moving_mask: sitk.Image | None,
             initial: sitk.Transform | None, level_offset: int = 0, n_levels: int | None = None,
             reproducible: bool = True, domain: sitk.Image | None = None, creep: CreepWatch | None = None,
             first_iteration: int = 0) -> sitk.Transform:
    """One ImageRegistrationMethod run: one pyramid level (see `_run_levels`), or all
    levels of a displacement-field stage, whose field ITK resamples per level itself.
    `domain` (default `fixed`): the full-size fixed image new transforms are defined on."""
    kind = stage.transform.kind
    levels = stage.pyramid.shrink_factors
    n_levels = n_levels or len(levels)
    method = sitk.ImageRegistrationMethod()
    set_work_units(method, stage, reproducible)
    set_metric(method, stage)
    if set_sampling(method, stage, fixed, seed):
        # Sampled metrics: image gradients by central differences at the sampled points only,
        # not a smoothed gradient image of the whole image per level (half the affine time
        # on the 2 mm brain, and no full-size vector image in memory).
        method.SetMetricUseFixedImageGradientFilter(False)
        method.SetMetricUseMovingImageGradientFilter(False)
    method.SetShrinkFactorsPerLevel([int(s) for s in levels])
    method.SetSmoothingSigmasPerLevel([float(s) for s in stage.pyramid.smoothing_sigmas])
    method.SetSmoothingSigmasAreSpecifiedInPhysicalUnits(bool(stage.pyramid.sigmas_in_mm))
    set_inputs(method, stage, fixed_mask, moving_mask, previous)

    builder = _TransformBuilder(stage, fixed if domain is None else domain, initial)
    method.SetInitialTransform(builder.transform, inPlace=True)
    set_optimizer(method, stage)
    if creep is not None:
        creep.begin(builder.transform.GetParameters())

    state = {"level": -1}
    want_best = kind != "displacement"  # a dense field is too big to copy each iteration
    lags = stage.optimizer.kind in LAGGING_OPTIMIZERS
    watch = BestPosition(builder.transform.GetParameters() if want_best and lags else None, lags)

    def on_level() -> None:
        if state["level"] >= 0:
            watch.new_level()
        state["level"] = level_offset if state["level"] < 0 else state["level"] + 1
        if run.cancelled:
            method.StopRegistration()

    def on_iteration() -> None:
        metric = method.GetMetricValue()
        level = max(state["level"], level_offset)
        wandered = want_best and watch.update(level, metric, method.GetOptimizerPosition())
        snapshot = None
        if run.progress is not None:
            position = method.GetOptimizerPosition()
            snapshot = lambda: _compose_snapshot(previous, builder.at(level, position))  # noqa: E731
        run.record(level, n_levels, first_iteration + method.GetOptimizerIteration(), metric, snapshot)
        if run.cancelled or wandered or creep is not None and creep.update(method.GetOptimizerPosition(), metric):
            method.StopRegistration()

    method.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    method.AddCommand(sitk.sitkIterationEvent, on_iteration)
    try:
        result = method.Execute(fixed, moving)
    except RuntimeError as exc:
        raise RegistrationFailed(explain_failure(stage, exc, run.stage_name)) from None
    reason = method.GetOptimizerStopConditionDescription()
    creeping = creep is not None and creep.creeping
    kept_best = want_best and not creeping and not run.cancelled and watch.best is not None
    if method.GetMetricNumberOfValidPoints() == 0 and kept_best:  # it had overlap, then stepped off the image
        run.stop_reasons.append(f"{stage.name}: {reason}; it stepped off the moving image, so its best position "
                                f"(metric {watch.best_metric:.4g}) is kept")
        return builder.at(*watch.best)
    if method.GetMetricNumberOfValidPoints() == 0:
        raise RegistrationFailed(f"Stage '{stage.name}' failed: no sampled point of the fixed image falls inside "
                                 "the moving image (the images do not overlap under the current transform). "
                                 "Start from a better alignment (initializer 'moments', landmarks or a manual "
                                 f"alignment). The optimiser said: {reason}")
    if not creeping:  # a level restarted for creeping says why it stops next time
        run.stop_reasons.append(f"{stage.name}: {reason}")
    final_metric = method.GetMetricValue()
    if not np.isfinite(final_metric) or not np.all(np.isfinite(result.GetParameters())):
        raise RegistrationFailed(f"Stage '{stage.name}' diverged (metric {final_metric}); the optimiser said: "
                                 f"{reason}. Try a smaller learning rate or a better initial alignment.")
    if run.cancelled:
        return _cancelled_transform(builder, watch)
    if kept_best and watch.worse_than_best(final_metric):
        run.stop_reasons[-1] += (f"; it ended worse than where it had been (metric {watch.best_metric:.4g} -> "
                                 f"{final_metric:.4g}), so its best position is kept")
        return builder.at(*watch.best)
    return copy_transform(builder.transform)


def _cancelled_transform(builder: "_TransformBuilder", watch: BestPosition) -> sitk.Transform:
    """The best transform of the current level when cancelled (else where the optimiser stood)."""
    if watch.best is not None:
        return builder.at(*watch.best)
    return copy_transform(builder.transform)


def _compose_snapshot(previous: sitk.Transform | None, current: sitk.Transform) -> sitk.Transform:
    if previous is None:
        return current
    comp = sitk.CompositeTransform(current.GetDimension())
    comp.AddTransform(copy_transform(previous))
    comp.AddTransform(current)
    return comp


class _TransformBuilder:
    """The stage's optimisable transform (one pyramid level, or a displacement field's
    whole run), and how to rebuild it from an optimiser position for snapshots."""

    def __init__(self, stage: Stage, fixed: sitk.Image, initial: sitk.Transform | None) -> None:
        kind = stage.transform.kind
        dim = fixed.GetDimension()
        self.kind = kind
        if kind in LINEAR_TRANSFORMS:
            self.transform = initial if initial is not None else make_linear(kind, dim, _grid_center(fixed))
        elif kind == "bspline":
            self.transform = initial if initial is not None else sitk.BSplineTransformInitializer(
                fixed, mesh_for_spacing(fixed, stage.transform.grid_spacing_mm), 3)
        elif kind == "displacement":
            field = sitk.Image(fixed.GetSize(), sitk.sitkVectorFloat64, dim)
            field.CopyInformation(fixed)
            tx = sitk.DisplacementFieldTransform(field)
            tx.SetSmoothingGaussianOnUpdate(_variance_vox(stage.transform.update_smoothing_mm, fixed),
                                            _variance_vox(stage.transform.field_smoothing_mm, fixed))
            self.transform = tx
        else:
            raise RegistrationFailed(f"stage kind '{kind}' is not run by ImageRegistrationMethod")

    def at(self, level: int, position: tuple[float, ...]) -> sitk.Transform:
        """A fresh transform with the optimiser `position` (`level` is kept for callers' records)."""
        tx = copy_transform(self.transform)
        if len(position) == len(tx.GetParameters()):
            tx.SetParameters(position)
        return tx


def _grid_center(image: sitk.Image) -> list[float]:
    return list(image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()]))


def _variance_vox(sigma_mm: float, image: sitk.Image) -> float:
    """DisplacementFieldTransform smooths with a variance in voxel units (squared)."""
    sigma_vox = sigma_mm / float(np.mean(image.GetSpacing()))
    return float(sigma_vox**2)
