"""Inverse-consistent ("symmetric") registration.

The pipeline runs twice, A->B and B->A, with the same seed. Both results estimate the
same fixed -> moving mapping (the second after inversion) and are averaged:

* linear results: geodesic mean in the matrix-log domain,
  T = exp((log T_AB + log T_BA^-1) / 2). Swapping the images gives exactly T^-1,
  so the result does not depend on which image is called fixed.
* deformable results: the displacement fields of T_AB and T_BA^-1 (both sampled
  on the fixed grid) are averaged. This is symmetric to first order and in
  practice reduces the inverse-consistency error ||T_AB(T_BA(x)) - x|| markedly.
"""

from __future__ import annotations

import SimpleITK as sitk

from regviewer.core.registration.run_state import RunState
from regviewer.core.registration.verify import Evaluation, StageVerifier
from regviewer.core.imaging.image import Volume
from regviewer.core.transforms.ops import invert, is_linear, linear_log_average, to_displacement_field


def run_symmetric(params, fixed: Volume, moving: Volume, fixed_mask, moving_mask, initial_transform, landmarks,
                  run: RunState, seed: int) -> tuple[sitk.Transform, dict]:
    from regviewer.core.registration.engine import _landmark_initial, run_pipeline

    if initial_transform is None and landmarks is not None:
        initial_transform = _landmark_initial(landmarks, params.stages[0].transform.kind)
    f, m = fixed.scalar(), moving.scalar()
    forward = run_pipeline(params, f, m, fixed_mask, moving_mask, initial_transform, landmarks, run, seed)
    if run.cancelled:
        return forward, {"symmetric": "cancelled during the forward pass; forward result returned"}
    back_initial = None
    if initial_transform is not None:
        back_initial = invert(initial_transform, reference=moving.sitk)
    back_run = RunState(run.progress and _backward_progress(run, forward), run.cancel, start=run.start,
                        stage_offset=len(params.stages))
    from dataclasses import replace

    swapped = None if landmarks is None else [replace(p, fixed=p.moving, moving=p.fixed) for p in landmarks]
    backward = run_pipeline(params, m, f, moving_mask, fixed_mask, back_initial, swapped, back_run, seed)
    run.history.extend(back_run.history)
    run.stop_reasons.extend(f"backward {r}" for r in back_run.stop_reasons)
    run.warnings.extend(f"Backward pass: {w}" for w in back_run.warnings)
    if run.cancelled:
        return forward, {"symmetric": "cancelled during the backward pass; forward result returned"}
    averaged = average_forward_backward(forward, backward, f)
    # The average is a new transform: judged like every result, against the run's start.
    verifier = StageVerifier(Evaluation(f, m, fixed_mask))
    verifier.begin(initial_transform)
    ok, score = verifier.finish(initial_transform, averaged)
    if not ok:
        run.warnings.append("The forward/backward average did not improve on the starting alignment; the "
                            "forward result is kept (not inverse-consistent).")
        return forward, {"symmetric": "average worse than the start; forward result returned"}
    run.verification = dict(run.verification, final=round(score, 6), final_is="forward/backward average")
    return averaged, {"symmetric": "forward/backward average"}


def _backward_progress(run: RunState, forward: sitk.Transform):
    """Backward-pass events reach the caller with stage indices after the forward ones.
    Their snapshot must still map fixed -> moving: a linear one is inverted; a deformable
    one (costly to invert each iteration) is replaced by the finished forward result."""

    def forward_progress(p):
        from dataclasses import replace

        tx = invert(p.transform) if is_linear(p.transform) else forward
        run.progress(replace(p, transform=tx, stage_name=f"{p.stage_name} (backward)"))

    return forward_progress


def average_forward_backward(forward: sitk.Transform, backward: sitk.Transform, fixed: sitk.Image) -> sitk.Transform:
    """Symmetric estimate from T_AB (fixed -> moving) and T_BA (moving -> fixed)."""
    if is_linear(forward) and is_linear(backward):
        return linear_log_average(forward, invert(backward))
    u_forward = to_displacement_field(forward, fixed)
    back_on_fixed = to_displacement_field(backward, fixed)
    u_back_inverse = sitk.InvertDisplacementField(back_on_fixed, maximumNumberOfIterations=30,
                                                  maxErrorToleranceThreshold=0.01,
                                                  meanErrorToleranceThreshold=0.0001, enforceBoundaryCondition=False)
    mean = sitk.Compose([0.5 * (sitk.VectorIndexSelectionCast(u_forward, c, sitk.sitkFloat64)
                                + sitk.VectorIndexSelectionCast(u_back_inverse, c, sitk.sitkFloat64))
                         for c in range(fixed.GetDimension())])
    mean.CopyInformation(fixed)
    return sitk.DisplacementFieldTransform(sitk.Cast(mean, sitk.sitkVectorFloat64))
