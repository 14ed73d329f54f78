"""Landmark-guided intensity registration: image metric + landmark distance, one objective.

A stage whose ``landmark_weight`` is above 0 (and landmarks were given), or whose
metric is ``ngf``, runs here instead of ITK's own optimiser loop. Per pyramid level
(images from the run's shared pyramid, the metric sampled exactly as a plain stage's
level) it minimises

    f(p) = metric(p) / |metric(p_start)|  +  landmark_weight * sum_i w_i |previous(T_p(x_i)) - y_i|²

where T_p is the stage transform (applied first to a fixed point), ``previous`` the
earlier stages, (x_i, y_i) the enabled landmark pairs (fixed, moving; LPS mm) and
w_i their weights normalised to sum 1: the landmark term is a mean squared distance
in mm², so weight 0.01 makes a 3 mm mean miss cost about as much as a tenth of the
metric. Linear models are optimised in millimetre units (parameters divided by their
physical shift) so rotations and shifts are comparable; a B-spline's coefficients
are millimetres already. The optimiser follows the stage's: a linear stage set to
``regular_step`` takes ITK's regular steps (see `regular_step`), everything else uses
scipy's L-BFGS-B. Runs are live like any other stage: one progress event per
iteration with a snapshot of the full transform, cancel within one iteration
(the best transform so far is kept), and a level never ends worse than it started.

Why not ITK's optimiser with an extra term: SimpleITK cannot add a term to an ITK
metric; the value and derivative of ITK's metric are taken one call at a time
(see `guided_terms.ItkMetricTerm`) and the sum is optimised here.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import SimpleITK as sitk

from regviewer.core.errors import ParameterError, RegistrationFailed
from regviewer.core.registration.creep import MAX_RESTARTS, CreepWatch
from regviewer.core.registration.guided_terms import ItkMetricTerm, LandmarkTerm, membrane_energy, physical_scales
from regviewer.core.registration.params import Stage
from regviewer.core.registration.run_state import RunState
from regviewer.core.transforms.ops import copy_transform, make_linear, matrix_offset

GUIDED_KINDS = ("translation", "rigid", "versor", "similarity", "affine", "bspline")


class _Stop(Exception):
    """Raised from the L-BFGS callback to end a level on cancel."""


def needs_guided(stage: Stage, landmarks) -> bool:
    """True when `stage` must run here: NGF metric, or landmarks with a positive weight."""
    return stage.metric.kind == "ngf" or (landmarks is not None and stage.landmark_weight > 0)


def landmark_arrays(landmarks, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(fixed, moving, weights) of the enabled, complete, positively weighted pairs, or None."""
    if landmarks is None:
        return None
    pairs = [p for p in landmarks if p.enabled and p.complete and p.weight > 0]
    if not pairs:
        return None
    fixed = np.array([p.fixed for p in pairs], float).reshape(-1, dim)
    moving = np.array([p.moving for p in pairs], float).reshape(-1, dim)
    return fixed, moving, np.array([p.weight for p in pairs], float)


def run_guided_stage(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                     run: RunState, seed: int, fixed_mask: sitk.Image | None, moving_mask: sitk.Image | None,
                     initial: sitk.Transform | None, reproducible: bool, landmarks) -> sitk.Transform:
    """Optimise one stage level by level; return its own transform (not composed with `previous`)."""
    from regviewer.core.registration.bspline_grid import mesh_for_spacing, refine_bspline
    from regviewer.core.registration.stage_errors import explain_failure
    from regviewer.core.registration.stages import _grid_center

    kind = stage.transform.kind
    if kind not in GUIDED_KINDS:
        raise ParameterError(f"stage '{stage.name}': landmark guidance and the ngf metric work with "
                             f"{', '.join(GUIDED_KINDS)} stages, not '{kind}'")
    dim = fixed.GetDimension()
    if kind in ("versor", "similarity") and dim == 3:
        # ITK updates versors by composition, not addition; the Euler / affine model is additive.
        kind = "rigid" if kind == "versor" else "affine"
    points = landmark_arrays(landmarks, dim) if stage.landmark_weight > 0 else None
    levels, sigmas = stage.pyramid.shrink_factors, stage.pyramid.smoothing_sigmas
    n = len(levels)
    if kind == "bspline":
        final_mesh = mesh_for_spacing(fixed, stage.transform.grid_spacing_mm)
        refine = stage.transform.refine_grid
        start = [max(1, int(round(m / 2 ** (n - 1)))) for m in final_mesh] if refine else final_mesh
        tx = sitk.BSplineTransformInitializer(fixed, start, 3)
    else:
        refine = False
        tx = copy_transform(initial) if initial is not None and initial.GetName() == make_linear(
            kind, dim).GetName() else make_linear(kind, dim, _grid_center(fixed))
        if initial is not None and initial.GetName() != tx.GetName():
            raise ParameterError(f"stage '{stage.name}': a guided {kind} stage cannot start from a "
                                 f"{initial.GetName()} initializer")
    reasons = []
    in_mm = bool(stage.pyramid.sigmas_in_mm)
    for k in range(n):
        if run.cancelled:
            break
        fixed_l, rest = run.pyramid.level(fixed, levels[k], sigmas[k], in_mm)
        moving_l, _ = run.pyramid.level(moving, levels[k], sigmas[k], in_mm)
        if stage.metric.kind == "ngf":
            from regviewer.core.registration.ngf import NgfTerm

            grid = sitk.Shrink(fixed_l, [min(rest, s) for s in fixed_l.GetSize()]) if rest > 1 else fixed_l
            metric = NgfTerm(grid, moving_l, previous, fixed_mask if stage.use_fixed_mask else None)
        else:
            metric = ItkMetricTerm(stage, fixed_l, moving_l, previous, seed, fixed_mask, moving_mask, reproducible,
                                   rest)
        lm = LandmarkTerm(*points, previous) if points is not None else None
        if k == 0 and kind != "bspline" and isinstance(metric, ItkMetricTerm):
            tx = _with_itk_centre(tx, metric)
        try:
            tx, reason = _optimise_level(stage, tx, metric, lm, fixed, run, k, n)
        except RuntimeError as exc:
            raise RegistrationFailed(explain_failure(stage, exc, run.stage_name)) from None
        reasons.append(reason)
        if refine and k < n - 1 and not run.cancelled:
            tx = refine_bspline(tx, fixed)
    if reasons:
        run.stop_reasons.append(f"{stage.name}: {reasons[-1]}" + (f" (level {len(reasons)} of {n})" if n > 1 else ""))
    return tx


def _optimise_level(stage: Stage, tx: sitk.Transform, metric, lm: LandmarkTerm | None, fixed: sitk.Image,
                    run: RunState, level: int, n_levels: int) -> tuple[sitk.Transform, str]:
    from regviewer.core.registration.stages import _compose_snapshot, level_optimizer

    previous = getattr(metric, "previous", None) if lm is None else lm.previous
    p0 = np.array(tx.GetParameters())
    scales = np.ones(len(p0)) if tx.GetName() == "BSplineTransform" else physical_scales(tx, fixed)
    probe = copy_transform(tx)
    weight = float(stage.landmark_weight) if lm is not None else 0.0
    smooth = float(stage.transform.smoothness) if tx.GetName() == "BSplineTransform" else 0.0
    m0, _ = metric.value_and_gradient(tx)
    if metric.valid_points == 0:
        raise RegistrationFailed(f"Stage '{stage.name}' failed: no sampled point of the fixed image falls inside "
                                 "the moving image under the current transform. Start from a better alignment.")
    norm = max(abs(m0), getattr(metric, "scale_floor", 1e-12))
    best = {"f": math.inf, "p": p0.copy(), "last": math.inf}

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        p = p0 + z / scales
        probe.SetParameters(tuple(p))
        value, grad = metric.value_and_gradient(probe)
        f, g = value / norm, grad / norm
        if lm is not None:
            lv, lg = lm.value_and_gradient(probe)
            f, g = f + weight * lv, g + weight * lg
        if smooth > 0:
            sv, sg = membrane_energy(probe)
            f, g = f + smooth * sv, g + smooth * sg
        if not (math.isfinite(f) and np.all(np.isfinite(g))):
            return math.inf, np.zeros_like(z)
        best["last"] = f
        if f < best["f"]:
            best["f"], best["p"] = f, p.copy()
        return f, g / scales

    iteration = [0]

    def callback(z: np.ndarray) -> None:
        iteration[0] += 1
        p = p0 + z / scales
        snapshot = None
        if run.progress is not None:
            current = copy_transform(probe)
            current.SetParameters(tuple(p))
            snapshot = lambda: _compose_snapshot(previous, current)  # noqa: E731
        run.record(level, n_levels, iteration[0], best["last"], snapshot)
        if run.cancelled:
            raise _Stop

    o = level_optimizer(stage, level)
    try:
        if o.kind == "regular_step" and tx.GetName() != "BSplineTransform":
            reason = regular_step(objective, len(p0), o.learning_rate, o.min_step, o.relaxation, int(o.iterations),
                                  callback, regrow=o.regrow_step)
        else:
            res = scipy.optimize.minimize(objective, np.zeros(len(p0)), jac=True, method="L-BFGS-B",
                                          callback=callback,
                                          options={"maxiter": int(o.iterations), "maxfun": 2 * int(o.iterations) + 20,
                                                   "gtol": float(o.gradient_tolerance), "maxcor": 10})
            reason = f"L-BFGS-B: {res.message}"
    except _Stop:
        reason = "cancelled"
    out = copy_transform(tx)
    out.SetParameters(tuple(best["p"]))  # the start is evaluated first, so never worse than the start
    return out, reason


def _with_itk_centre(tx: sitk.Transform, metric: ItkMetricTerm) -> sitk.Transform:
    """The stage transform re-centred where ITK puts it.

    Given a moving-initial transform with a centre, ITK's registration method moves the
    optimised transform's centre there during Execute. The probe's parameters (and so the
    derivative) then refer to that centre, not to the stage transform's: the matrix
    gradient was wrong by the translation gradient times the centre shift, and a guided
    affine stage ended 1.5 mm (at 600 brain points) from the truth where ITK's own stage,
    from the same start, ended 0.7 mm. Re-centring the mapping once, before the first
    level, keeps both parametrisations the same.
    """
    if not hasattr(tx, "GetCenter"):
        return tx
    metric.value_and_gradient(tx)
    centre = np.array(metric.probe_centre())
    old = np.array(tx.GetCenter())
    if np.allclose(centre, old):
        return tx
    a, t = matrix_offset(tx)  # x -> a x + t: the mapping to keep
    out = copy_transform(tx)
    out.SetCenter(tuple(centre))
    out.SetTranslation(tuple(t + a @ centre - centre))
    return out


def regular_step(objective, n: int, step: float, min_step: float, relaxation: float, iterations: int,
                 callback, regrow: bool = False) -> str:
    """Regular-step gradient descent, as ITK's: move `step` (mm, the variables are scaled to mm)
    along the steepest descent; shrink the step by `relaxation` whenever the gradient turns back.

    Why not always L-BFGS: ITK's sampled metric derivative is that of the image, not of the
    interpolated value (they differ by 10-20 %), and on a rigid or affine stage L-BFGS's line
    search then stops early (a guided affine stage ended at twice the error of ITK's own
    regular-step run from the same start, even with the landmark term off). A fixed-length
    step needs only the gradient's direction. With `regrow`, a creeping step is lengthened as
    the plain stage's restart does (`creep.py`), here without a restart.
    """
    z = np.zeros(n)
    f, g = objective(z)
    previous = None
    watch = _creep_watch(step, z) if regrow else None
    regrowths = 0
    for _ in range(iterations):
        norm = float(np.linalg.norm(g))
        if not norm > 1e-12:
            return "regular step: gradient vanished"
        if previous is not None and float(g @ previous) < 0:
            step *= relaxation
        if step < min_step:
            return "regular step: step below the minimum"
        previous = g
        z = z - step * g / norm
        f, g = objective(z)
        callback(z)
        if watch is not None and watch.update(z, f):
            step, previous, regrowths = watch.regrown_rate(), None, regrowths + 1
            watch = _creep_watch(step, z) if regrowths < MAX_RESTARTS else None
    return "regular step: maximum iterations"


def _creep_watch(step: float, z: np.ndarray) -> CreepWatch:
    watch = CreepWatch(step)
    watch.begin(z)
    return watch
