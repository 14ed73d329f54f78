"""The registration engine: two images and a `Pipeline` in, a fixed -> moving transform out.

The GUI, the CLI and the Python API all call `register()`. It runs the pipeline's
stages in order (SimpleITK's ImageRegistrationMethod for linear, B-spline and
displacement-field stages; SimpleITK's demons filters for demons stages), reports
each iteration through a `progress` callback and honours a `CancelToken`.

Direction: ``result.transform`` maps FIXED points to MOVING points (LPS mm), i.e.
``moving_resampled(x) = moving(result.transform(x))``. It is a CompositeTransform
holding the initial transform and then each stage; ITK applies the last stage
first to a fixed point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import SimpleITK as sitk

from regviewer.core.registration.run_state import CancelToken, HistoryEntry, Progress, RunState
from regviewer.core.errors import IncompatibleImagesError, ParameterError, RegistrationFailed
from regviewer.core.imaging.image import Volume, as_volume
from regviewer.core.imaging.io import check_compatible
from regviewer.core.imaging.moments import intensity_centroid
from regviewer.core.registration.params import LINEAR_TRANSFORMS, Pipeline
from regviewer.core.registration.presets import DEFAULT_PRESET
from regviewer.core.registration.pose_check import WrongOptimumCheck
from regviewer.core.registration.pyramid import in_background
from regviewer.core.registration.verify import Evaluation, StageVerifier
from regviewer.core.registration.auto import resolve as resolve_auto
from regviewer.core.transforms.resample import resample_moving
from regviewer.core.transforms.ops import copy_transform, make_linear, transform_points

__all__ = ["register", "run_pipeline", "RegistrationResult", "Progress", "CancelToken", "HistoryEntry"]


@dataclass
class RegistrationResult:
    """What `register()` returns.

    transform: fixed -> moving (composite of the initial transform and all stages).
    resampled: the moving image resampled onto the fixed grid through `transform`.
    history:   metric per iteration (stage, level, iteration, metric, elapsed s).
    stop_reason: the optimiser's own words for why each stage stopped.
    cancelled: True when a CancelToken stopped the run; `transform` is then the best
               transform reached so far (never an exception).
    warnings:  plain sentences for the person: stages undone by the verification (see
               `verify.py`), a result no better than its start. Empty when all is well.
    details["verification"]: the fixed evaluation's scores (start, final, per stage);
               History compares runs by ``evaluation`` (higher is more similar).
    """

    transform: sitk.Transform
    _resampled: "sitk.Image | Callable[[], sitk.Image]" = field(repr=False)
    history: list[HistoryEntry]
    stop_reason: str
    elapsed: float
    params: Pipeline
    cancelled: bool = False
    details: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def resampled(self) -> sitk.Image:
        """The moving image on the fixed grid, made on first use: through a B-spline it
        costs about a second on the 2 mm demo brain, and the window never needs it."""
        if callable(self._resampled):
            self._resampled = self._resampled()
        return self._resampled

    @property
    def final_metric(self) -> float | None:
        return self.history[-1].metric if self.history else None

    @property
    def evaluation(self) -> float | None:
        """The run's fixed evaluation of the final transform (higher is more similar; see `verify.py`)."""
        return (self.details.get("verification") or {}).get("final")


def register(fixed, moving, preset: str | None = DEFAULT_PRESET, params: Pipeline | None = None,
             initial_transform: sitk.Transform | None = None, fixed_mask=None, moving_mask=None,
             progress: Callable[[Progress], None] | None = None, cancel: CancelToken | None = None,
             seed: int = 0, landmarks=None) -> RegistrationResult:
    """Register `moving` onto `fixed`; return a fixed -> moving transform and more.

    fixed, moving, masks: paths, `Volume`s or SimpleITK images (RGB is registered on
    its luminance). `params` overrides `preset`. The default preset, `auto`, builds
    the pipeline from the pair (`auto.py`); `result.params` is that resolved pipeline. `initial_transform` (fixed -> moving,
    e.g. a manual alignment) is the starting point and replaces the first stage's
    initializer; `landmarks` (a `LandmarkSet`) likewise, fitted with the first stage's
    model (rigid or affine). `progress` is called once per optimiser iteration with a
    `Progress` (throttle in the caller if needed). `cancel`: a `CancelToken`; cancelling
    returns a result with ``cancelled=True`` within about a second. `seed` fixes the
    random sampling: same seed, same result, bit for bit, on one machine.

    Raises `ParameterError` (bad parameters or preset name), `IncompatibleImagesError`
    (2D vs 3D, mask grid mismatch) and `RegistrationFailed` (with the optimiser's reason).
    """
    if params is None:
        from regviewer.core.registration.presets import load_preset

        params = load_preset(preset or DEFAULT_PRESET)
    if not isinstance(params, Pipeline):
        raise ParameterError(f"params must be a Pipeline, got {type(params).__name__}")
    params.validate()
    if int(seed) < 0:
        raise ParameterError(f"seed must be >= 0, got {seed}")
    fixed_v, moving_v = as_volume(fixed), as_volume(moving)
    check_compatible(fixed_v, moving_v)
    f_mask = _mask(fixed_mask, fixed_v, "fixed")
    m_mask = _mask(moving_mask, moving_v, "moving")
    if initial_transform is not None and initial_transform.GetDimension() != fixed_v.dimension:
        raise IncompatibleImagesError(f"The initial transform is {initial_transform.GetDimension()}D but the images "
                                      f"are {fixed_v.dimension}D")
    details: dict = {}
    params, chosen = resolve_auto(params, fixed_v, moving_v)
    if chosen:
        details["auto"] = chosen
    run = RunState(progress, cancel)
    if params.symmetric:
        from regviewer.core.registration.symmetric import run_symmetric

        transform, details = run_symmetric(params, fixed_v, moving_v, f_mask, m_mask, initial_transform,
                                           landmarks, run, int(seed))
    else:
        transform = run_pipeline(params, fixed_v.scalar(), moving_v.scalar(), f_mask, m_mask,
                                 initial_transform, landmarks, run, int(seed))
    def resampled() -> sitk.Image:
        return resample_moving(moving_v, fixed_v, transform)

    stop = "cancelled by the user" if run.cancelled else "; ".join(run.stop_reasons)
    details.setdefault("verification", run.verification)
    return RegistrationResult(transform, resampled, run.history, stop, run.elapsed(), params, run.cancelled,
                              details, list(run.warnings))


def run_pipeline(params: Pipeline, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
                 moving_mask: sitk.Image | None, initial_transform: sitk.Transform | None, landmarks,
                 run: RunState, seed: int) -> sitk.CompositeTransform:
    """Run every stage on float32 scalar images; return the fixed -> moving composite.

    The run's background work (pyramid levels, evaluation, pose search) has ended when this
    returns or raises, cancelled or not: a thread still inside ITK when the process exits
    aborts it ("exception not rethrown").
    """
    background: list = []
    try:
        return _run_stages(params, fixed, moving, fixed_mask, moving_mask, initial_transform, landmarks, run,
                           seed, background)
    finally:
        _settle(background, run)


def _run_stages(params: Pipeline, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
                moving_mask: sitk.Image | None, initial_transform: sitk.Transform | None, landmarks,
                run: RunState, seed: int, background: list) -> sitk.CompositeTransform:
    """`run_pipeline`'s work; the background jobs it starts go into `background`."""
    from regviewer.core.registration.landmark_guided import needs_guided, run_guided_stage
    from regviewer.core.registration.stages import prefetch_first_level, run_method_stage

    dim = fixed.GetDimension()
    composite = sitk.CompositeTransform(dim)
    first_initial = None
    if initial_transform is not None:
        composite.AddTransform(copy_transform(initial_transform))
    elif landmarks is not None or params.stages[0].initializer == "landmarks":
        composite.AddTransform(_landmark_initial(landmarks, params.stages[0].transform.kind))
    else:
        if not needs_guided(params.stages[0], landmarks):  # its first level is made while the initializer runs
            prefetch_first_level(params.stages[0], fixed, moving, run)
        first_initial = _initializer(params.stages[0], fixed, moving)
        if first_initial is not None and params.stages[0].transform.kind not in LINEAR_TRANSFORMS:
            composite.AddTransform(first_initial)  # a deformable stage starts after the centring translation
            first_initial = None
    # A pipeline that starts from image centres alone is checked against the coarse pose search at the
    # end (`pose_check.py`); the search starts now, on the other core, while the stages run.
    check = initial_transform is None and landmarks is None and params.stages[0].initializer != "search"
    alternative = WrongOptimumCheck(fixed, moving, lambda: run.cancelled) if check else None
    start = copy_transform(composite) if composite.GetNumberOfTransforms() else None
    pending_verifier = in_background(_start_verifier, fixed, moving, fixed_mask, start)  # also alongside
    background.extend(f for f in (alternative, pending_verifier) if f is not None)
    for index, stage in enumerate(params.stages):
        if run.cancelled:
            break
        run.begin_stage(index, stage.name)
        previous = copy_transform(composite) if composite.GetNumberOfTransforms() else None
        if needs_guided(stage, landmarks):  # landmark-guided or NGF: our own L-BFGS loop
            stage_tx = run_guided_stage(stage, fixed, moving, previous, run, seed, fixed_mask, moving_mask,
                                        first_initial if index == 0 else None, params.reproducible, landmarks)
        elif stage.transform.kind == "demons":
            from regviewer.core.registration.demons import run_demons_stage

            stage_tx = run_demons_stage(stage, fixed, moving, previous, run)
        elif stage.transform.kind == "flow":
            from regviewer.core.registration.flow import run_flow_stage

            stage_tx = run_flow_stage(stage, fixed, moving, previous, run)
        else:
            # a copy: ITK optimises its initial transform in place, and `first_initial` must stay the
            # start the verification compares with (and the fallback when the stage is undone)
            stage_tx = run_method_stage(stage, fixed, moving, previous, run, seed, fixed_mask, moving_mask,
                                        initial=copy_transform(first_initial) if index == 0 and first_initial
                                        is not None else None,
                                        reproducible=params.reproducible)
        started_from = first_initial if index == 0 else None
        before, after = _then(previous, started_from), _then(previous, stage_tx)
        guided_mm = _landmark_means(landmarks, before, after) if needs_guided(stage, landmarks) else None
        verifier = pending_verifier.result()
        if verifier.accept(index, stage.name, before, after, run.cancelled, landmark_mm=guided_mm):
            composite.AddTransform(stage_tx)
        elif started_from is not None:
            composite.AddTransform(started_from)  # undo the stage, keep its initializer's start
    if composite.GetNumberOfTransforms() == 0:
        composite.AddTransform(sitk.Transform(dim, sitk.sitkIdentity))
    verifier = pending_verifier.result()
    ok, final_score = verifier.finish(start, composite)
    if not ok:
        composite = sitk.CompositeTransform(dim)
        composite.AddTransform(start if start is not None else sitk.Transform(dim, sitk.sitkIdentity))
        final_score = verifier.start_score
    if alternative is not None and not run.cancelled:  # a pose that beats the result makes it say so
        alternative.alternative_to(composite, lambda pose: verifier.compare_alternative(pose, final_score))
    run.warnings.extend(verifier.warnings)
    run.verification = verifier.summary(final_score)
    return composite


def _settle(jobs: list, run: RunState) -> None:
    """Wait for the run's background work (its errors, if any, are raised by whoever needs its result)."""
    for job in [j for j in jobs if j is not None] + run.pyramid.pending():  # futures, a WrongOptimumCheck
        try:
            job.result()
        except BaseException:  # noqa: BLE001 - a needed result raised where it was used; the rest does not matter
            pass


def _start_verifier(fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None,
                    start: sitk.Transform | None) -> StageVerifier:
    """The run's fixed evaluation, with the score of the transform the run starts from."""
    verifier = StageVerifier(Evaluation(fixed, moving, fixed_mask))
    verifier.begin(start)
    return verifier


def _landmark_means(landmarks, before: sitk.Transform | None, after: sitk.Transform) -> tuple[float, float] | None:
    """Mean landmark error (mm) before and after a landmark-guided stage, for its verification; None when
    the stage has no usable pairs (an NGF stage without landmarks is judged by the image alone)."""
    from regviewer.core.registration.landmark_guided import landmark_arrays

    arrays = landmark_arrays(landmarks, after.GetDimension())
    if arrays is None:
        return None
    fixed_pts, moving_pts, _ = arrays
    identity = sitk.Transform(after.GetDimension(), sitk.sitkIdentity)
    return tuple(float(np.mean(np.linalg.norm(transform_points(tx, fixed_pts) - moving_pts, axis=1)))
                 for tx in (before if before is not None else identity, after))


def _then(previous: sitk.Transform | None, stage_tx: sitk.Transform | None) -> sitk.Transform | None:
    """`previous` after `stage_tx` (a fixed point goes through `stage_tx` first), as a new composite."""
    if previous is None or stage_tx is None:
        return stage_tx if previous is None else previous
    both = sitk.CompositeTransform(previous.GetDimension())
    both.AddTransform(copy_transform(previous))
    both.AddTransform(copy_transform(stage_tx))
    return both


def _initializer(stage, fixed: sitk.Image, moving: sitk.Image) -> sitk.Transform | None:
    """The first stage's starting transform from image centres, centres of mass or a pose search."""
    kind = stage.transform.kind
    if stage.initializer == "search":
        from regviewer.core.registration.search import search_pose

        try:
            return search_pose(fixed, moving, kind if kind in LINEAR_TRANSFORMS else "rigid").transform(
                kind if kind in LINEAR_TRANSFORMS else "translation")
        except RuntimeError:  # an ITK refusal on a degenerate image: centres of mass instead
            stage = dataclasses.replace(stage, initializer="moments")
    if stage.initializer not in ("geometry", "moments"):
        return None
    centred = kind in LINEAR_TRANSFORMS and kind != "translation"
    tx = make_linear(kind if centred else "affine", fixed.GetDimension())
    if stage.initializer == "moments":  # ITK's MOMENTS mode, without the second moments it discards
        centres = intensity_centroid(fixed), intensity_centroid(moving)
        if None in centres:
            raise RegistrationFailed("The 'moments' initializer failed (is one image empty?): the pixel values "
                                     f"of the {'fixed' if centres[0] is None else 'moving'} image sum to zero")
        tx.SetCenter(centres[0])
        tx.SetTranslation([m - f for f, m in zip(*centres)])
    else:
        try:
            tx = sitk.CenteredTransformInitializer(fixed, moving, tx, sitk.CenteredTransformInitializerFilter.GEOMETRY)
        except RuntimeError as exc:
            raise RegistrationFailed(f"The '{stage.initializer}' initializer failed (is one image empty?): "
                                     f"{str(exc).strip().splitlines()[-1][:200]}") from None
    if not centred:  # translation model or a deformable first stage: keep only the shift of the centres
        return sitk.TranslationTransform(fixed.GetDimension(), tuple(sitk.AffineTransform(tx).GetTranslation()))
    return tx


def _landmark_initial(landmarks, kind: str) -> sitk.Transform:
    if landmarks is None:
        raise ParameterError("the first stage's initializer is 'landmarks' but no landmarks were given")
    from regviewer.core.landmarks import model as lm  # lazy: only landmark-initialised runs need it
    model = {"translation": "translation", "rigid": "rigid", "versor": "rigid", "similarity": "similarity"}.get(kind, "affine")
    try:
        fit = lm.fit(landmarks, model)
    except TypeError:
        fit = lm.fit(landmarks)
    return copy_transform(fit.transform)


def _mask(mask, reference: Volume, which: str) -> sitk.Image | None:
    """A mask as a UInt8 image (non-zero = inside) with the same dimension as its image."""
    if mask is None:
        return None
    m = as_volume(mask)
    if m.dimension != reference.dimension:
        raise IncompatibleImagesError(f"The {which} mask '{m.name}' is {m.dimension}D but the {which} image "
                                      f"'{reference.name}' is {reference.dimension}D")
    img = m.scalar()
    out = sitk.Cast(img != 0, sitk.sitkUInt8)
    if sitk.GetArrayViewFromImage(out).max() == 0:
        raise IncompatibleImagesError(f"The {which} mask '{m.name}' is empty (no voxel is inside it)")
    return out
