"""A stage's parameters as settings of SimpleITK's ImageRegistrationMethod.

One place for the metric, its sample points and threads, the optimiser and its scales, the
interpolator, masks and earlier transforms, so a plain stage (`stages.py`), the landmark-guided
metric term (`guided_terms.py`) and the benchmark's plain script see the same objective.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.registration.params import Stage
from regviewer.core.transforms.resample import interpolator_id


def itk_seed(seed: int) -> int:
    """SimpleITK treats seed 0 as 'use the wall clock'; shift so every user seed is reproducible."""
    return int(seed) + 1


def set_inputs(method: sitk.ImageRegistrationMethod, stage: Stage, fixed_mask: sitk.Image | None,
               moving_mask: sitk.Image | None, previous: sitk.Transform | None) -> None:
    """The interpolator, the masks the stage uses and the transform before it: one place, so a
    plain stage and the landmark-guided metric term (`guided_terms`) see the same objective."""
    method.SetInterpolator(interpolator_id(stage.interpolator))
    if fixed_mask is not None and stage.use_fixed_mask:
        method.SetMetricFixedMask(fixed_mask)
    if moving_mask is not None and stage.use_moving_mask:
        method.SetMetricMovingMask(moving_mask)
    if previous is not None:
        method.SetMovingInitialTransform(previous)


# Work units for a reproducible metric whose threaded sums ITK reduces in a fixed order
# (per-work-unit partial sums added in unit order): any fixed count gives bit-identical
# results run after run. A constant, not the core count, so the answer does not depend on
# the machine's load or the thread pool's scheduling.
REPRODUCIBLE_WORK_UNITS = 8


def set_work_units(method: sitk.ImageRegistrationMethod, stage: Stage, reproducible: bool) -> None:
    """Threads for the metric: all cores, or a fixed split when results must repeat bit for bit.

    Measured (scripts/bench_engine.py --threads): correlation, mean squares and
    joint-histogram MI give identical results with a fixed number of work units;
    ITK's Mattes MI does not (its threads add their derivative buffers into one shared
    sum under a lock, in whatever order they arrive), so it runs as one unit here.
    """
    if not reproducible:
        return
    if stage.metric.kind == "mattes":
        method.SetNumberOfWorkUnits(1)
    else:
        method.SetNumberOfWorkUnits(REPRODUCIBLE_WORK_UNITS)


def set_metric(method: sitk.ImageRegistrationMethod, stage: Stage) -> None:
    m = stage.metric
    if m.kind == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=m.bins)
    elif m.kind == "joint_histogram":
        method.SetMetricAsJointHistogramMutualInformation(numberOfHistogramBins=m.bins, varianceForJointPDFSmoothing=1.5)
    elif m.kind == "correlation":
        method.SetMetricAsCorrelation()
    elif m.kind == "mean_squares":
        method.SetMetricAsMeanSquares()
    elif m.kind == "ants_nc":
        method.SetMetricAsANTSNeighborhoodCorrelation(m.radius)


def set_sampling(method: sitk.ImageRegistrationMethod, stage: Stage, fixed: sitk.Image, seed: int) -> bool:
    """Set the metric's sample points; True when the metric sees a subset of the voxels."""
    s = stage.sampling
    if s.strategy == "none" or stage.metric.kind == "ants_nc" and s.strategy == "random":
        # ANTS NC with random sampling is ill-defined in ITK (it needs neighbourhoods); use all voxels.
        method.SetMetricSamplingStrategy(method.NONE)
        return False
    method.SetMetricSamplingStrategy(method.RANDOM if s.strategy == "random" else method.REGULAR)
    if s.count > 0:
        n_voxels = float(np.prod(fixed.GetSize()))
        per_level = [min(1.0, s.count * f ** fixed.GetDimension() / n_voxels) for f in stage.pyramid.shrink_factors]
        method.SetMetricSamplingPercentagePerLevel(per_level, itk_seed(seed))
        return max(per_level) < 0.5
    method.SetMetricSamplingPercentage(float(s.percentage), itk_seed(seed))
    return s.percentage < 0.5


def set_optimizer(method: sitk.ImageRegistrationMethod, stage: Stage) -> None:
    o = stage.optimizer
    if o.kind == "regular_step":
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=o.learning_rate, minStep=o.min_step, numberOfIterations=o.iterations,
            relaxationFactor=o.relaxation, gradientMagnitudeTolerance=1e-8)
    elif o.kind == "gradient_descent_line_search":
        method.SetOptimizerAsGradientDescentLineSearch(
            learningRate=o.learning_rate, numberOfIterations=o.iterations,
            convergenceMinimumValue=o.convergence_tolerance, convergenceWindowSize=o.convergence_window)
    elif o.kind == "conjugate_gradient_line_search":
        method.SetOptimizerAsConjugateGradientLineSearch(
            learningRate=o.learning_rate, numberOfIterations=o.iterations,
            convergenceMinimumValue=o.convergence_tolerance, convergenceWindowSize=o.convergence_window)
    elif o.kind == "lbfgsb":
        method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=o.gradient_tolerance,
                                    numberOfIterations=o.iterations, maximumNumberOfCorrections=5,
                                    maximumNumberOfFunctionEvaluations=max(2000, 4 * o.iterations),
                                    costFunctionConvergenceFactor=1e7)
    elif o.kind == "lbfgs2":
        method.SetOptimizerAsLBFGS2(solutionAccuracy=o.gradient_tolerance, numberOfIterations=o.iterations,
                                    deltaConvergenceTolerance=o.convergence_tolerance)
    elif o.kind == "powell":
        method.SetOptimizerAsPowell(numberOfIterations=o.iterations, maximumLineIterations=20,
                                    stepLength=o.simplex_delta, stepTolerance=1e-4, valueTolerance=1e-6)
    elif o.kind == "amoeba":
        method.SetOptimizerAsAmoeba(simplexDelta=o.simplex_delta, numberOfIterations=o.iterations,
                                    parametersConvergenceTolerance=1e-6, functionConvergenceTolerance=1e-6)
    _set_scales(method, stage)


def _set_scales(method: sitk.ImageRegistrationMethod, stage: Stage) -> None:
    """Automatic scales, except where ITK cannot use them.

    L-BFGS-B keeps the scales it was given when the B-spline grid is refined, so the
    next level fails with "Size of scales (N) must equal number of local parameters
    (M)". B-spline and displacement-field parameters are all mm shifts of the same
    kind, so unit scales are exact for them: we simply do not estimate any.
    """
    scales = stage.optimizer.scales
    if scales == "none" or stage.transform.kind in ("bspline", "displacement"):
        return
    if scales == "physical_shift":
        method.SetOptimizerScalesFromPhysicalShift()
    elif scales == "index_shift":
        method.SetOptimizerScalesFromIndexShift()
    elif scales == "jacobian":
        method.SetOptimizerScalesFromJacobian()


__all__ = ["REPRODUCIBLE_WORK_UNITS", "itk_seed", "set_inputs", "set_metric", "set_optimizer", "set_sampling",
           "set_work_units"]
