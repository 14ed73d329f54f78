"""Demons stage: a dense displacement field for SAME-modality images.

Runs SimpleITK's demons filters coarse-to-fine on the fixed grid. The moving image
is first resampled through the earlier stages (`previous`) and histogram-matched to
the fixed image; the field u found here is applied to a fixed point first:
full mapping x -> previous(x + u(x)), fixed -> moving.

Regularisation in the user's terms: `field_smoothing_mm` (Gaussian on the total
field: elastic-like, larger = smoother) and `update_smoothing_mm` (on each update:
fluid-like). ITK takes these sigmas in voxels; we convert per level.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.registration.run_state import RunState
from regviewer.core.errors import RegistrationFailed
from regviewer.core.registration.params import Stage

# Iterations per filter call while someone watches: the snapshot refreshes this often.
# Each call re-initialises the filter, so without a progress callback a level runs in one call.
CHUNK = 15


def _make_filter(variant: str):
    if variant == "fast_symmetric":
        return sitk.FastSymmetricForcesDemonsRegistrationFilter()
    if variant == "diffeomorphic":
        return sitk.DiffeomorphicDemonsRegistrationFilter()
    if variant == "symmetric":
        return sitk.SymmetricForcesDemonsRegistrationFilter()
    return sitk.DemonsRegistrationFilter()


def _level_image(image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool) -> sitk.Image:
    if sigma > 0:
        sigma_mm = sigma if sigma_in_mm else sigma * float(np.mean(image.GetSpacing()))
        image = sitk.SmoothingRecursiveGaussian(image, sigma_mm)
    if shrink > 1:
        image = sitk.Shrink(image, [int(shrink)] * image.GetDimension())
    return image


def run_demons_stage(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                     run: RunState) -> sitk.Transform:
    """Return a DisplacementFieldTransform on the fixed grid (applied before `previous`)."""
    dim = fixed.GetDimension()
    identity = sitk.Transform(dim, sitk.sitkIdentity)
    warped = sitk.Resample(moving, fixed, previous if previous is not None else identity, sitk.sitkLinear, 0.0,
                           sitk.sitkFloat32)
    try:
        warped = sitk.HistogramMatching(warped, fixed, numberOfHistogramLevels=256, numberOfMatchPoints=15,
                                        thresholdAtMeanIntensity=True)
    except RuntimeError:
        pass  # e.g. a constant image; demons will then do little, which is the honest outcome
    p = stage.pyramid
    n_levels = len(p.shrink_factors)
    field: sitk.Image | None = None
    snapshot_cache: dict = {}
    total_iterations = 0
    for level, (shrink, sigma) in enumerate(zip(p.shrink_factors, p.smoothing_sigmas)):
        if run.cancelled:
            break
        f_l = _level_image(fixed, shrink, sigma, p.sigmas_in_mm)
        m_l = _level_image(warped, shrink, sigma, p.sigmas_in_mm)
        if field is None:
            field = sitk.Image(f_l.GetSize(), sitk.sitkVectorFloat64, dim)
            field.CopyInformation(f_l)
        else:
            field = sitk.Resample(field, f_l, identity, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        spacing = float(np.mean(f_l.GetSpacing()))
        demons = _make_filter(stage.transform.demons_variant)
        demons.SetUseImageSpacing(True)
        sd = stage.transform.field_smoothing_mm / spacing
        demons.SetSmoothDisplacementField(sd > 0)
        if sd > 0:
            demons.SetStandardDeviations(sd)
        su = stage.transform.update_smoothing_mm / spacing
        demons.SetSmoothUpdateField(su > 0)
        if su > 0:
            demons.SetUpdateFieldStandardDeviations(su)
        done = 0
        state = {"level": level, "offset": 0}

        def on_iteration() -> None:
            snapshot = None
            if run.progress is not None:
                snapshot = lambda: _snapshot(previous, snapshot_cache)  # noqa: E731
            run.record(state["level"], n_levels, state["offset"] + demons.GetElapsedIterations(),
                       demons.GetMetric(), snapshot)
            if run.cancelled:
                demons.StopRegistration()

        demons.AddCommand(sitk.sitkIterationEvent, on_iteration)
        while done < stage.optimizer.iterations and not run.cancelled:
            chunk = CHUNK if run.progress is not None else stage.optimizer.iterations
            n = min(chunk, stage.optimizer.iterations - done)
            demons.SetNumberOfIterations(n)
            state["offset"] = done
            if run.progress is not None:  # the field is locked while the filter runs: copy it now
                current = sitk.Image(field)
                current.MakeUnique()
                snapshot_cache["tx"] = sitk.DisplacementFieldTransform(current)
            try:
                field = demons.Execute(f_l, m_l, field)
            except RuntimeError as exc:
                raise RegistrationFailed(f"Stage '{stage.name}' (demons) failed: "
                                         f"{str(exc).strip().splitlines()[-1][:200]}") from None
            done += max(1, demons.GetElapsedIterations())
            total_iterations += demons.GetElapsedIterations()
            if demons.GetElapsedIterations() < n:
                break  # converged (RMS change below threshold)
    run.stop_reasons.append(f"{stage.name}: demons ran {total_iterations} iterations over {n_levels} levels"
                            + (" (cancelled)" if run.cancelled else ""))
    if field is None:
        field = sitk.Image(fixed.GetSize(), sitk.sitkVectorFloat64, dim)
        field.CopyInformation(fixed)
    elif field.GetSize() != fixed.GetSize():
        field = sitk.Resample(field, fixed, identity, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(sitk.Image(field))


def _snapshot(previous: sitk.Transform | None, cache: dict) -> sitk.Transform:
    """previous ∘ (field at the start of this chunk): copying a field every iteration is wasteful."""
    current = cache["tx"]
    if previous is None:
        return sitk.DisplacementFieldTransform(current)
    comp = sitk.CompositeTransform(current.GetDimension())
    comp.AddTransform(previous)
    comp.AddTransform(current)
    return comp
