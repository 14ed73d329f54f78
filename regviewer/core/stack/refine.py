"""Deformable refinement of an aligned stack, against each section's neighbours' mean.

Chaining deformable registrations section to section would let every local distortion
carry on through the stack. Instead, once the linear joint fit has put every section in
place, each section is warped (B-spline) onto the mean of its two aligned neighbours:
tears, folds and uneven shrinkage are undone locally, while the anatomy's true change
from section to section averages out over k-1 and k+1 and nothing accumulates.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import RegviewerError
from regviewer.core.registration.params import Pipeline
from regviewer.core.stack.result import resample_section


def bspline_only(pipeline: Pipeline) -> Pipeline | None:
    """The deformable stages of `pipeline` (None when it has none)."""
    stages = tuple(s for s in pipeline.stages if s.transform.kind in ("bspline", "displacement", "demons", "flow"))
    return dataclasses.replace(pipeline, stages=stages, name=pipeline.name + "-refine") if stages else None


def linear_only(pipeline: Pipeline) -> Pipeline | None:
    """The linear stages of `pipeline` (what neighbour pairs are registered with)."""
    from regviewer.core.registration.params import LINEAR_TRANSFORMS

    stages = tuple(s for s in pipeline.stages if s.transform.kind in LINEAR_TRANSFORMS)
    return dataclasses.replace(pipeline, stages=stages) if stages else None


def refine_on_neighbours(order: list[int], anchor: int, norm: dict[int, sitk.Image],
                         transforms: dict[int, sitk.Transform], grid: sitk.Image, pipeline: Pipeline,
                         seed: int = 0, cancel=None) -> dict[int, sitk.Transform]:
    """New output -> section transforms: the linear one followed by a B-spline found by
    registering each section (all but the anchor) onto its neighbours' mean."""
    from regviewer.core.registration.engine import register

    aligned = {k: resample_section(norm[k], grid, transforms[k]) for k in order}
    out = dict(transforms)
    for i, k in enumerate(order):
        if k == anchor or (cancel is not None and cancel.cancelled):
            continue
        around = [aligned[order[j]] for j in (i - 1, i + 1) if 0 <= j < len(order)]
        mean = sitk.GetImageFromArray(np.mean([sitk.GetArrayViewFromImage(a) for a in around], axis=0))
        mean.CopyInformation(grid)
        try:
            result = register(mean, norm[k], params=pipeline, initial_transform=transforms[k], seed=seed,
                              cancel=cancel)
        except (RegviewerError, RuntimeError):  # keep the linear result for this section
            continue
        if not result.cancelled:
            out[k] = result.transform
    return out


__all__ = ["refine_on_neighbours", "bspline_only", "linear_only"]
