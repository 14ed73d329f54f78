"""The `auto` and `auto-deformable` presets: look at the pair, then build the pipeline.

A fixed preset is tuned on the images it was made for; `auto` reads what it needs
from the pair itself (`inspect_pair`): dimension, size in voxels, spacing and
anisotropy, colour, pixel type and intensity range, how much the fields of view
overlap, and whether the two images are the same modality. Modality is decided by
trying: the coarse pose search (`search.py`, mutual information) finds the best pose;
there, the same modality shows a clearly positive correlation r whose r² is close to
the correlation ratio eta² (a straight line explains the intensities as well as any
curve); inverted contrast gives r < 0, another modality r² well below eta². `build_pipeline` then chooses:

- pyramid depth from the image size (the coarsest level keeps about 48 voxels across);
- sampling as a *count* that bounds the cost of one iteration (every pixel of a small
  image; 5 000 points in 2D, 20 000 in 3D otherwise);
- the metric by modality (correlation for the same modality, Mattes MI otherwise);
- rigid (similarity in 2D, for zoomed photographs) from the pose search, then affine
  on the two finest levels with a smaller step (a full step of shear from a good start
  overshoots into a wrong optimum on photographs);
- `auto-deformable` adds the deformable stage that suits the pair: a dense optical
  flow for same-modality 2D, a B-spline otherwise.

The resolved `Pipeline` is an ordinary one: it is stored with the run and Copy as
Python / command line reproduce it exactly, without inspecting again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams,
                                                SamplingParams, Stage, TransformParams)

from regviewer.core.registration.presets import AUTO_PRESET_NAMES as AUTO_PRESETS
COARSEST_ACROSS = 48  # voxels along the longest axis at the coarsest pyramid level
SAMPLES = {2: 5_000, 3: 20_000}  # metric points per iteration (the cost bound)
# Above this many voxels along the longest axis the linear stages stop at half resolution: ITK's cost is per
# sample, the finest level adds time but no accuracy a linear model can use (well under a voxel either way).
FULL_RESOLUTION_UP_TO = {2: 512, 3: 160}
SAME_MODALITY_CORRELATION = 0.5
SAME_MODALITY_LINEARITY = 0.9  # r² / eta²: a line explains the intensity relation about as well as any curve


@dataclass(frozen=True)
class PairInfo:
    """What `auto` saw in a pair (all plain values, for the description and the tests)."""

    dimension: int
    fixed_size: tuple[int, ...]
    moving_size: tuple[int, ...]
    fixed_spacing: tuple[float, ...]
    moving_spacing: tuple[float, ...]
    anisotropy: float  # largest / smallest spacing over both images
    colour: tuple[bool, bool]  # fixed, moving RGB
    float_pixels: tuple[bool, bool]
    intensity_range: tuple[tuple[float, float], tuple[float, float]]
    same_modality: bool
    correlation: float  # at the best coarse pose (near -1: inverted contrast)
    linearity: float  # r² / eta² there (1: a straight intensity relation, same modality)
    overlap: float  # fraction of the fixed image's extent that the moving one covers (as the headers place them)

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.fixed_size))

    def describe(self) -> str:
        size = "×".join(map(str, self.fixed_size)) + " vs " + "×".join(map(str, self.moving_size))
        colour = {(True, True): ", colour", (True, False): ", colour vs grey", (False, True): ", grey vs colour"}
        modality = ("same modality" if self.same_modality else
                    "inverted contrast" if self.correlation < -SAME_MODALITY_CORRELATION else "different modalities")
        aniso = f", anisotropy {self.anisotropy:.1f}" if self.anisotropy > 1.5 else ""
        overlap = f", headers overlap {self.overlap:.0%}" if self.overlap < 0.9 else ""
        return (f"{self.dimension}D {size}{colour.get(self.colour, '')}{aniso}, {modality} "
                f"(correlation {self.correlation:+.2f}, linearity {self.linearity:.2f} at the best coarse pose)"
                f"{overlap}")


def is_auto(params: Pipeline) -> bool:
    """True for an unchanged `auto` / `auto-deformable` preset, still to be resolved against images."""
    from regviewer.core.registration.presets import load_preset

    return params.name in AUTO_PRESETS and params == load_preset(params.name)


def inspect_pair(fixed: Volume, moving: Volume) -> PairInfo:
    """Measure the pair (the coarse pose search it runs is cached for the engine's initializer)."""
    from regviewer.core.registration.search import search_pose

    f, m = fixed.scalar(), moving.scalar()
    dim = f.GetDimension()
    try:
        pose = search_pose(f, m, "similarity" if dim == 2 else "rigid")
        corr, linearity = pose.correlation, pose.linearity
    except RuntimeError:  # a degenerate image: modality unknown, so the metric that tolerates anything (MI)
        corr, linearity = float("nan"), 0.0
    spacings = list(f.GetSpacing()) + list(m.GetSpacing())
    corr = corr if math.isfinite(corr) else 0.0
    return PairInfo(
        dimension=dim, fixed_size=tuple(f.GetSize()), moving_size=tuple(m.GetSize()),
        fixed_spacing=tuple(round(s, 4) for s in f.GetSpacing()),
        moving_spacing=tuple(round(s, 4) for s in m.GetSpacing()),
        anisotropy=float(max(spacings) / min(spacings)), colour=(fixed.is_rgb, moving.is_rgb),
        float_pixels=(_is_float(fixed), _is_float(moving)),
        intensity_range=(_range(f), _range(m)),
        same_modality=corr > SAME_MODALITY_CORRELATION and linearity > SAME_MODALITY_LINEARITY,
        correlation=float(corr), linearity=float(linearity), overlap=_overlap(fixed, moving))


def build_pipeline(info: PairInfo, deformable: bool = False) -> Pipeline:
    """The pipeline `auto` (or `auto-deformable`) runs on a pair like `info`."""
    dim = info.dimension
    n_levels = max(1, min(4, 1 + int(math.floor(math.log2(max(info.fixed_size) / COARSEST_ACROSS)))))
    finest = 1 if max(info.fixed_size) <= FULL_RESOLUTION_UP_TO[dim] or n_levels == 1 else 2
    shrink = tuple(2 ** k for k in range(n_levels - 1, -1, -1) if 2 ** k >= finest)
    thin = min(info.fixed_size + info.moving_size) < 4  # ITK cannot smooth an axis of fewer than 4 voxels
    sigmas = tuple(s / 2.0 if s > 1 and not thin else 0.0 for s in shrink)
    count = SAMPLES[dim]
    sampling = (SamplingParams(strategy="none") if info.n_voxels <= count
                else SamplingParams(strategy="random", count=count))
    metric = MetricParams(kind="correlation") if info.same_modality else MetricParams(kind="mattes", bins=32)
    first = "similarity" if dim == 2 else "rigid"
    flow = deformable and uses_flow(info)
    # linear stages' levels: all used levels (rigid), the two finest (affine); before a dense flow, which
    # recovers the rest at full resolution, only a rough affine is needed: one coarse level each
    rigid_levels, affine_levels, iterations = slice(None), slice(-2, None), (60, 100)
    if flow:
        coarse = [i for i, s in enumerate(shrink) if s >= 4] or [0]
        rigid_levels, affine_levels, iterations = slice(coarse[0], coarse[0] + 1), slice(coarse[-1], coarse[-1] + 1), (30, 30)
    stages = [
        Stage(name=first, transform=TransformParams(kind=first), metric=metric,
              optimizer=OptimizerParams(kind="regular_step", iterations=iterations[0], min_step=1e-3, regrow_step=True),
              pyramid=PyramidParams(shrink_factors=shrink[rigid_levels], smoothing_sigmas=sigmas[rigid_levels]),
              sampling=sampling, initializer="search"),
        Stage(name="affine", transform=TransformParams(kind="affine"), metric=metric,
              optimizer=OptimizerParams(kind="regular_step", iterations=iterations[1], min_step=1e-4,
                                        learning_rate=0.25, regrow_step=True),
              pyramid=PyramidParams(shrink_factors=shrink[affine_levels], smoothing_sigmas=sigmas[affine_levels]),
              sampling=sampling),
    ]
    if deformable:
        stages.append(_deformable_stage(info, metric, sampling))
    words = " then ".join(s.name for s in stages)
    what = "correlation" if info.same_modality else "Mattes MI"
    samples = "every pixel" if sampling.strategy == "none" else f"{sampling.count} samples"
    samples += "" if finest == 1 else ", linear stages down to half resolution"
    name = "auto-deformable" if deformable else "auto"
    return Pipeline(stages=tuple(stages), name=name,
                    description=f"{name}: {info.describe()} → {words} (pose search first), {what}, "
                                f"{n_levels}-level pyramid, {samples}")


def uses_flow(info: PairInfo) -> bool:
    """A dense optical flow suits same-modality 2D pairs (photographs, micrographs)."""
    return info.dimension == 2 and info.same_modality


def _deformable_stage(info: PairInfo, metric: MetricParams, sampling: SamplingParams) -> Stage:
    if uses_flow(info):
        return Stage(name="flow", transform=TransformParams(kind="flow", field_smoothing_mm=0.0),
                     metric=MetricParams(kind="mean_squares"),
                     pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,)),
                     sampling=SamplingParams(strategy="none"))
    extent = max((n - 1) * s for n, s in zip(info.fixed_size, info.fixed_spacing))
    count = SAMPLES[info.dimension] // 2
    return Stage(name="bspline", transform=TransformParams(kind="bspline", grid_spacing_mm=round(extent / 8.0, 2)),
                 metric=metric, optimizer=OptimizerParams(kind="lbfgsb", iterations=30),
                 pyramid=PyramidParams(shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0)),
                 sampling=SamplingParams(strategy="random", count=count) if sampling.strategy != "none" else sampling)


def resolve(params: Pipeline, fixed: Volume, moving: Volume) -> tuple[Pipeline, str]:
    """An unchanged auto preset resolved against the pair (and the sentence saying what it chose)."""
    if not is_auto(params):
        return params, ""
    info = inspect_pair(fixed, moving)
    pipeline = build_pipeline(info, deformable=params.name == "auto-deformable")
    return pipeline, pipeline.description


def _is_float(volume: Volume) -> bool:
    return volume.sitk.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64, sitk.sitkVectorFloat32,
                                         sitk.sitkVectorFloat64)


def _range(image: sitk.Image) -> tuple[float, float]:
    a = sitk.GetArrayViewFromImage(image)
    return float(np.nanmin(a)), float(np.nanmax(a))


def _overlap(fixed: Volume, moving: Volume) -> float:
    """Fraction of the fixed bounding box (physical, as the headers place it) inside the moving one's."""
    f, m = fixed.corners_physical(), moving.corners_physical()
    lo, hi = np.maximum(f.min(0), m.min(0)), np.minimum(f.max(0), m.max(0))
    inter = np.prod(np.clip(hi - lo, 0, None))
    whole = np.prod(np.maximum(f.max(0) - f.min(0), 1e-9))
    return float(min(1.0, inter / whole))


__all__ = ["AUTO_PRESETS", "PairInfo", "inspect_pair", "build_pipeline", "resolve", "is_auto"]
