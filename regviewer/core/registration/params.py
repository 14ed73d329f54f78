"""Registration parameters as data: a `Pipeline` of `Stage`s, all frozen dataclasses.

Every field carries metadata for generated parameter panels:
``field.metadata`` has ``help`` (one line, user's words), optionally ``choices``,
``min``/``max``, ``unit`` and ``advanced`` (fold it away by default). Adding a
parameter is one line here; the GUI panel and JSON follow.

Defaults work on the demo data (affine, Mattes MI, 4/2/1 pyramid, 10 % sampling).
Transform direction: every stage estimates a transform mapping FIXED points to
MOVING points (ITK's resampling direction); stages compose, later stages applied
first to a fixed point (see `engine.register`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from regviewer.core.errors import ParameterError

TRANSFORMS = ("translation", "rigid", "versor", "similarity", "affine", "bspline", "displacement", "demons", "flow")
LINEAR_TRANSFORMS = ("translation", "rigid", "versor", "similarity", "affine")
METRICS = ("mattes", "joint_histogram", "correlation", "mean_squares", "ants_nc", "ngf")
OPTIMIZERS = ("regular_step", "gradient_descent_line_search", "lbfgsb", "lbfgs2", "conjugate_gradient_line_search",
              "powell", "amoeba")
INITIALIZERS = ("none", "geometry", "moments", "landmarks", "search")
INTERPOLATORS = ("nearest", "linear", "bspline", "gaussian", "lanczos")
SAMPLING = ("none", "regular", "random")
SCALES = ("physical_shift", "index_shift", "jacobian", "none")
DEMONS = ("fast_symmetric", "diffeomorphic", "symmetric", "classic")


def _f(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None, max: float | None = None,
       unit: str | None = None, advanced: bool = False, models: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with the GUI metadata (immutable defaults only). `models`: the
    transform kinds the field means something for (None: all); the panel hides it otherwise."""
    meta: dict[str, Any] = {"help": help, "advanced": advanced}
    if models is not None:
        meta["models"] = models
    if choices is not None:
        meta["choices"] = choices
    if min is not None:
        meta["min"] = min
    if max is not None:
        meta["max"] = max
    if unit is not None:
        meta["unit"] = unit
    return field(default=default, metadata=meta)


def applies_to(f: dataclasses.Field, transform_kind: str) -> bool:
    """Whether a parameter field means anything for a stage estimating `transform_kind`."""
    models = f.metadata.get("models")
    return models is None or transform_kind in models


@dataclass(frozen=True)
class TransformParams:
    """The model one stage estimates (fixed -> moving)."""

    kind: str = _f("affine", "What may change: translation, rigid (Euler), versor (3D rigid), similarity, affine, "
                   "B-spline (smooth deformation), displacement field, demons (same-modality deformation) or flow "
                   "(dense optical flow, same-modality 2D photographs and micrographs)",
                   choices=TRANSFORMS)
    grid_spacing_mm: float = _f(30.0, "B-spline control-point spacing at the finest level: smaller follows finer "
                                "deformations but is slower and less smooth", min=1.0, max=500.0, unit="mm",
                                models=("bspline",))
    refine_grid: bool = _f(True, "B-spline: start with a coarser control grid and halve its spacing at each "
                           "pyramid level (coarse-to-fine)", advanced=True, models=("bspline",))
    field_smoothing_mm: float = _f(1.5, "Displacement field / demons: Gaussian smoothing of the total field; larger "
                                   "is smoother (regularisation)", min=0.0, max=50.0, unit="mm",
                                   models=("displacement", "demons"))
    update_smoothing_mm: float = _f(1.0, "Displacement field / demons: Gaussian smoothing of each update "
                                    "(fluid-like regularisation)", min=0.0, max=50.0, unit="mm", advanced=True,
                                    models=("displacement", "demons"))
    smoothness: float = _f(0.0, "B-spline with landmark guidance or ngf: weight of a smoothness penalty (mean "
                           "squared difference of neighbouring control points, mm²); keeps the metric from "
                           "over-fitting its samples", min=0.0, max=1e6, advanced=True, models=("bspline",))
    demons_variant: str = _f("fast_symmetric", "Demons flavour: symmetric forces are inverse-consistent; "
                             "diffeomorphic keeps the field invertible", choices=DEMONS, advanced=True,
                             models=("demons",))


@dataclass(frozen=True)
class MetricParams:
    """How similarity is measured between fixed and resampled moving intensities."""

    kind: str = _f("mattes", "Similarity: Mattes mutual information (any modalities), joint-histogram MI, "
                   "correlation or mean squares (same modality), ANTs neighbourhood correlation, "
                   "normalised gradient fields (edges that agree in direction; any modalities)",
                   choices=METRICS)
    bins: int = _f(50, "Histogram bins for mutual information", min=4, max=256, advanced=True)
    radius: int = _f(2, "Neighbourhood radius for ANTs neighbourhood correlation", min=1, max=10, unit="voxels",
                     advanced=True)


@dataclass(frozen=True)
class OptimizerParams:
    """How the transform parameters are searched. Scales are estimated automatically."""

    kind: str = _f("regular_step", "Search method: regular-step gradient descent (robust default), gradient "
                   "descent with line search, L-BFGS-B, L-BFGS2, conjugate gradient, or derivative-free "
                   "Powell / Amoeba", choices=OPTIMIZERS)
    iterations: int = _f(200, "Maximum iterations per pyramid level", min=1, max=10000)
    learning_rate: float = _f(1.0, "Initial step (gradient methods), in scaled parameter units", min=1e-6,
                              max=1000.0, advanced=True)
    min_step: float = _f(1e-4, "Regular-step: stop when the step shrinks below this", min=0.0, max=10.0,
                         advanced=True)
    relaxation: float = _f(0.5, "Regular-step: step shrink factor on direction change", min=0.01, max=0.99,
                           advanced=True)
    coarse_min_step: bool = _f(False, "Regular-step: a coarser pyramid level stops at a minimum step as many "
                               "times larger as its shrink factor is (its voxels are that much larger; the "
                               "finer levels refine)", advanced=True)
    regrow_step: bool = _f(False, "Regular-step, linear transforms: when the step has shrunk to a quarter or "
                           "less and the optimiser keeps walking the same way, start the level again from "
                           "there with a step up to 8 times longer (it never grows back by itself)", advanced=True,
                           models=LINEAR_TRANSFORMS)
    convergence_window: int = _f(10, "Stop when the metric changed less than the tolerance over this many "
                                 "iterations", min=2, max=100, advanced=True)
    convergence_tolerance: float = _f(1e-6, "Relative metric change regarded as converged", min=0.0, max=1.0,
                                      advanced=True)
    gradient_tolerance: float = _f(1e-5, "L-BFGS: stop when the gradient is this small", min=0.0, max=1.0,
                                   advanced=True)
    simplex_delta: float = _f(1.0, "Amoeba / Powell: initial step in scaled parameter units", min=1e-6,
                              max=1000.0, advanced=True)
    scales: str = _f("physical_shift", "How parameter scales are estimated so rotations and mm shifts are "
                     "comparable", choices=SCALES, advanced=True)


@dataclass(frozen=True)
class PyramidParams:
    """Coarse-to-fine levels: one shrink factor and one smoothing sigma per level."""

    shrink_factors: tuple[int, ...] = _f((4, 2, 1), "Down-sampling per level, coarse to fine", min=1, max=64)
    smoothing_sigmas: tuple[float, ...] = _f((2.0, 1.0, 0.0), "Gaussian smoothing per level", min=0.0, max=64.0)
    sigmas_in_mm: bool = _f(False, "Smoothing sigmas are in mm (otherwise in voxels)", advanced=True)


@dataclass(frozen=True)
class SamplingParams:
    """Which fixed-image points the metric looks at."""

    strategy: str = _f("random", "Points used by the metric: all voxels (none), a regular grid or random",
                       choices=SAMPLING)
    percentage: float = _f(0.10, "Fraction of voxels sampled (0-1)", min=0.0001, max=1.0)
    count: int = _f(0, "Fixed number of samples instead of a fraction (0: use the fraction)", min=0,
                    max=100_000_000, advanced=True)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline (e.g. rigid, then affine, then B-spline)."""

    name: str = _f("affine", "A label shown in progress and logs")
    transform: TransformParams = field(default_factory=TransformParams, metadata={"help": "Transform model"})
    metric: MetricParams = field(default_factory=MetricParams, metadata={"help": "Similarity metric"})
    optimizer: OptimizerParams = field(default_factory=OptimizerParams, metadata={"help": "Optimiser"})
    pyramid: PyramidParams = field(default_factory=PyramidParams, metadata={"help": "Multi-resolution pyramid"})
    sampling: SamplingParams = field(default_factory=SamplingParams, metadata={"help": "Metric sampling"})
    interpolator: str = _f("linear", "How the moving image is interpolated while optimising",
                           choices=INTERPOLATORS, advanced=True)
    initializer: str = _f("none", "Starting alignment (first stage only): none, image centres (geometry), "
                          "centres of mass (moments), landmarks, or search (centres, then a coarse search over "
                          "rotations and zoom: survives large misalignment)", choices=INITIALIZERS)
    use_fixed_mask: bool = _f(True, "Only compare inside the fixed mask (when one is given)")
    use_moving_mask: bool = _f(False, "Only compare inside the moving mask (when one is given)", advanced=True)
    landmark_weight: float = _f(0.0, "Landmark-guided: weight of the mean squared landmark distance (mm²) added "
                                "to the metric (scaled to 1 at the start); 0 uses landmarks only to start. "
                                "Try 0.001-0.01", min=0.0, max=1e6)

    def validate(self, index: int = 0) -> None:
        where = f"stages[{index}] ('{self.name}')"
        _check_choice(f"{where}.transform.kind", self.transform.kind, TRANSFORMS)
        _check_choice(f"{where}.transform.demons_variant", self.transform.demons_variant, DEMONS)
        _check_choice(f"{where}.metric.kind", self.metric.kind, METRICS)
        _check_choice(f"{where}.optimizer.kind", self.optimizer.kind, OPTIMIZERS)
        _check_choice(f"{where}.optimizer.scales", self.optimizer.scales, SCALES)
        _check_choice(f"{where}.sampling.strategy", self.sampling.strategy, SAMPLING)
        _check_choice(f"{where}.interpolator", self.interpolator, INTERPOLATORS)
        _check_choice(f"{where}.initializer", self.initializer, INITIALIZERS)
        for owner, prefix in ((self.transform, "transform"), (self.metric, "metric"), (self.optimizer, "optimizer"),
                              (self.sampling, "sampling")):
            _check_ranges(owner, f"{where}.{prefix}")
        if not self.landmark_weight >= 0:  # also catches NaN
            raise ParameterError(f"{where}.landmark_weight is {self.landmark_weight}; it must be 0 or more")
        p = self.pyramid
        if not p.shrink_factors:
            raise ParameterError(f"{where}.pyramid.shrink_factors is empty; give at least one level, e.g. [1]")
        if len(p.shrink_factors) != len(p.smoothing_sigmas):
            raise ParameterError(f"{where}.pyramid: {len(p.shrink_factors)} shrink factors but "
                                 f"{len(p.smoothing_sigmas)} smoothing sigmas; give one sigma per level")
        if any(int(s) != s or s < 1 for s in p.shrink_factors):
            raise ParameterError(f"{where}.pyramid.shrink_factors must be whole numbers >= 1, got {p.shrink_factors}")
        if any(s < 0 for s in p.smoothing_sigmas):
            raise ParameterError(f"{where}.pyramid.smoothing_sigmas must be >= 0, got {p.smoothing_sigmas}")
        if index > 0 and self.initializer not in ("none",):
            raise ParameterError(f"{where}.initializer is '{self.initializer}', but only the first stage can have "
                                 "an initializer; later stages start from the previous result (use 'none')")


@dataclass(frozen=True)
class Pipeline:
    """Stages run in order; the result composes all of them (fixed -> moving)."""

    stages: tuple[Stage, ...] = field(default_factory=lambda: (Stage(initializer="moments"),),
                                      metadata={"help": "Stages, run in order"})
    symmetric: bool = _f(False, "Inverse-consistent mode: the result does not depend on which image is called "
                         "fixed (roughly doubles the run time)")
    reproducible: bool = _f(True, "Same seed, same result, bit for bit: the metric's threads get a fixed "
                            "split (Mattes MI, whose threaded sums vary in the last digits, runs as one "
                            "work unit; can be slower)", advanced=True)
    name: str = _f("custom", "Preset or pipeline name", advanced=True)
    description: str = _f("", "One-line description", advanced=True)

    def validate(self) -> None:
        """Raise `ParameterError` naming the first invalid field."""
        if not self.stages:
            raise ParameterError("stages is empty; a pipeline needs at least one stage")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise ParameterError(f"stages[{i}] is not a Stage")
            stage.validate(i)

    # --- JSON ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Pipeline":
        return _from_plain(cls, data, "pipeline")

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "Pipeline":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"The parameters are not valid JSON: {exc.msg} (line {exc.lineno})") from None
        return cls.from_dict(data)


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ParameterError(f"{name} is '{value}'; choose one of: {', '.join(choices)}")


def _check_ranges(obj: Any, prefix: str) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise ParameterError(f"{prefix}.{f.name} is {value}; it must be between {lo} and {hi}")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _from_plain(cls: type, data: Any, where: str) -> Any:
    """Build dataclass `cls` from plain JSON data; unknown keys are errors (typos must not pass silently)."""
    if not isinstance(data, dict):
        raise ParameterError(f"{where} should be a JSON object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ParameterError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}; "
                             f"known fields: {', '.join(known)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ParameterError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        return _from_plain(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParameterError(f"{where} should be a list, got {value!r}")
        inner = hint.__args__[0]
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ParameterError(f"{where} should be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ParameterError(f"{where} should be a whole number, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{where} should be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParameterError(f"{where} should be text, got {value!r}")
        return value
    return value


def replace(obj: Any, **changes: Any) -> Any:
    """`dataclasses.replace`, re-exported so callers need one import."""
    return dataclasses.replace(obj, **changes)


__all__ = ["Pipeline", "Stage", "TransformParams", "applies_to", "MetricParams", "OptimizerParams", "PyramidParams",
           "SamplingParams", "replace", "TRANSFORMS", "LINEAR_TRANSFORMS", "METRICS", "OPTIMIZERS",
           "INITIALIZERS", "INTERPOLATORS", "SAMPLING"]
