"""Headless operations shared by the command line and batch jobs.

`register_to_folder` registers one pair and saves everything it produced into one
folder; `apply_transform` resamples an image through a saved transform;
`read_parameters` turns a preset name or a parameters JSON file into a `Pipeline`.

Direction: every transform maps FIXED points to MOVING points (LPS mm), the
direction ITK resamples with; the saved transform file says so in a comment.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from regviewer.core.atomic import MANIFEST_NAME, publish_set, staging_dir
from regviewer.core.errors import ImageWriteError, ParameterError, RegistrationCancelled
from regviewer.core.registration.output_folder import check_output_folder, input_paths, refuse_overwriting_inputs
from regviewer.core.registration.presets import DEFAULT_PRESET
from regviewer.core.registration.pyramid import BACKGROUND_THREAD_NAME
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.io import suffix_of, write_image

TRANSFORM_LINEAR_NAME = "transform.tfm"
TRANSFORM_DEFORMABLE_NAME = "transform.h5"
HISTORY_NAME = "history.csv"
QA_NAME = "qa.json"
PARAMS_NAME = "parameters.json"
_TWO_D_KEEP_SUFFIX = {".png": ".png", ".jpg": ".png", ".jpeg": ".png", ".tif": ".tif", ".tiff": ".tif"}


@dataclass
class PairOutcome:
    """What `register_to_folder` produced; `summary` is what qa.json holds."""

    folder: Path
    files: dict[str, Path]
    final_metric: float | None
    tre_mean_mm: float | None
    tre_max_mm: float | None
    seconds: float
    stop_reason: str
    summary: dict[str, Any] = field(default_factory=dict)


def read_parameters(preset: str | None = None, params: str | Path | None = None):
    """A `Pipeline` from a parameters JSON file (wins) or a preset name; None means the engine default."""
    if params is not None:
        p = Path(params)
        if not p.is_file():
            raise ParameterError(f"Cannot read parameters '{p}': the file does not exist")
        from regviewer.core.registration.params import Pipeline

        try:
            pipeline = Pipeline.from_json(p.read_text(encoding="utf-8"))
        except ParameterError as exc:
            raise ParameterError(f"Cannot use parameters '{p}': {exc}") from None
        except UnicodeDecodeError:
            raise ParameterError(f"Cannot use parameters '{p}': it is not a text (JSON) file") from None
        except RecursionError:
            raise ParameterError(f"Cannot use parameters '{p}': its JSON is nested too deeply") from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ParameterError(f"Cannot use parameters '{p}': it is not a parameters file "
                                 f"({type(exc).__name__}: {str(exc)[:200]})") from None
        except OSError as exc:
            raise ParameterError(f"Cannot read parameters '{p}': {exc.strerror or exc}") from None
        try:
            pipeline.validate()
        except ParameterError as exc:
            raise ParameterError(f"Cannot use parameters '{p}': {exc}") from None
        return pipeline
    if preset is not None:
        from regviewer.core.registration.presets import load_preset

        return load_preset(preset)
    return None


def resampled_name(moving: Volume) -> str:
    """moving_resampled.nii.gz, or .png/.tif when the moving image is a 2D file of that kind."""
    suffix = suffix_of(moving.path) if moving.path else ""
    if moving.dimension == 2 and suffix in _TWO_D_KEEP_SUFFIX:
        return "moving_resampled" + _TWO_D_KEEP_SUFFIX[suffix]
    return "moving_resampled.nii.gz"


def history_csv(history) -> str:
    """The metric per iteration as CSV text (one row per `HistoryEntry`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["stage", "stage_name", "level", "iteration", "metric", "elapsed_s"])
    for h in history:
        writer.writerow([h.stage, h.stage_name, h.level, h.iteration, repr(float(h.metric)), f"{h.elapsed:.4f}"])
    return buf.getvalue()


def landmark_tre(transform: sitk.Transform, landmarks) -> tuple[float | None, float | None]:
    """(mean, max) of |T(fixed landmark) - moving landmark| in mm over complete, enabled pairs."""
    if landmarks is None:
        return None, None
    from regviewer.core.landmarks.model import landmark_errors

    errors = landmark_errors(transform, landmarks)
    if errors.n == 0:
        return None, None
    return _finite(errors.mean_mm), _finite(errors.max_mm)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _qa_summary(fixed, moving, result, landmarks) -> dict[str, Any]:
    """The QA module's summary, or the reason it is missing (QA never fails a registration)."""
    from regviewer.core.qa.evaluation import evaluate_registration

    try:
        evaluation = evaluate_registration(fixed, moving, result.transform, landmarks=landmarks,
                                           history=result.history, params=result.params)
        return json.loads(json.dumps(evaluation.summary(), default=_json_default))
    except Exception as exc:  # noqa: BLE001 -- a QA failure is recorded, the registration stands
        return {"qa_error": f"{type(exc).__name__}: {exc}"}


def _abs(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def _json_default(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def register_to_folder(fixed, moving, out_dir: str | Path, preset: str | None = DEFAULT_PRESET, params=None,
                       landmarks=None, fixed_mask=None, moving_mask=None, initial_transform=None,
                       progress: Callable | None = None, cancel=None, seed: int = 0,
                       evaluate: bool = True) -> PairOutcome:
    """Register `moving` onto `fixed` and save the results in `out_dir`.

    Writes ``transform.tfm`` (``transform.h5`` when the result is not linear; it maps
    fixed -> moving), ``moving_resampled.nii.gz`` (``.png``/``.tif`` for a 2D input of
    that kind), ``history.csv`` (metric per iteration), ``parameters.json`` and
    ``qa.json`` (a summary). Inputs may be paths, Volumes or SimpleITK images;
    `params` may be a `Pipeline` or a JSON file path (it overrides `preset`);
    `landmarks` a path or a `LandmarkSet` (used for TRE and the did-it-improve check;
    they start the registration only when the first stage's initializer is "landmarks");
    `initial_transform` a fixed -> moving transform or its file to start from.

    Before registering: the output folder must be writable and no output may land on an
    input (`ImageWriteError`). All files are written into a hidden folder first and
    published as one set with ``manifest.json`` written last, so an error, Ctrl+C or
    kill leaves either the complete new set or files without a manifest, never old and
    new files mixed. A cancelled registration raises `RegistrationCancelled` and writes
    nothing, also when cancelled while saving.
    """
    from regviewer.core.registration.engine import register
    from regviewer.core.imaging.image import as_volume

    start = time.monotonic()
    inputs = input_paths(fixed=fixed, moving=moving, landmarks=landmarks, fixed_mask=fixed_mask,
                          moving_mask=moving_mask, initial_transform=initial_transform, parameters=params)
    refuse_overwriting_inputs(out_dir, OUTPUT_NAMES, inputs)
    check_output_folder(out_dir, writable=True)  # before minutes of work, not after
    fixed_v, moving_v = as_volume(fixed), as_volume(moving)
    for role, volume in (("fixed", fixed_v), ("moving", moving_v)):
        _refuse_constant(volume, role)
    masks = [None if m is None else as_volume(m) for m in (fixed_mask, moving_mask)]
    where = ""
    if landmarks is not None and isinstance(landmarks, (str, Path)):
        from regviewer.core.landmarks.model import load_landmarks

        where = f" '{landmarks}'"
        landmarks = load_landmarks(landmarks)
    if landmarks is not None and getattr(landmarks, "dimension", fixed_v.dimension) != fixed_v.dimension:
        from regviewer.core.errors import IncompatibleImagesError

        raise IncompatibleImagesError(f"The landmarks{where} are {landmarks.dimension}D but the images are "
                                      f"{fixed_v.dimension}D")
    if isinstance(initial_transform, (str, Path)):
        from regviewer.core.imaging.io import read_transform

        initial_transform = read_transform(initial_transform)
    pipeline = params if params is None or not isinstance(params, (str, Path)) else read_parameters(params=params)
    if pipeline is None:
        pipeline = read_parameters(preset=preset or "affine-mi")
    # Landmarks measure the error; they start the registration only when the parameters ask.
    initialise = getattr(pipeline.stages[0], "initializer", None) == "landmarks" and initial_transform is None
    result = abandonable(lambda: register(fixed_v, moving_v, preset=preset, params=pipeline, fixed_mask=masks[0],
                                          moving_mask=masks[1], initial_transform=initial_transform,
                                          progress=progress, cancel=cancel, seed=seed,
                                          landmarks=landmarks if initialise else None), cancel)
    if result.cancelled:
        raise RegistrationCancelled("Registration cancelled; nothing was written", best_transform=result.transform)
    return save_result(result, fixed_v, moving_v, out_dir, landmarks=landmarks, evaluate=evaluate,
                       started=start, seed=seed, start_transform=initial_transform, cancel=cancel)


def abandonable(work: Callable[[], Any], cancel, grace_s: float = 1.0) -> Any:
    """Run `work` in a daemon thread and wait; if `cancel` fires and `work` has not
    returned `grace_s` later (stuck inside one ITK filter, which checks no token), give
    up on it: raise `RegistrationCancelled` with ``abandoned = True``. SimpleITK releases
    the GIL while it computes, so this thread keeps polling; the abandoned thread runs
    on until its filter returns, and its result is dropped."""
    if cancel is None:
        return work()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting thread as it is
            box["error"] = exc

    thread = threading.Thread(target=target, name=BACKGROUND_THREAD_NAME, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        if cancel.cancelled and thread.is_alive():
            thread.join(grace_s)
            if thread.is_alive():
                error = RegistrationCancelled("Registration cancelled (abandoned inside an ITK filter); nothing was "
                                              "written")
                error.abandoned = True
                raise error
    if "error" in box:
        raise box["error"]
    return box["result"]


OUTPUT_NAMES = (TRANSFORM_LINEAR_NAME, TRANSFORM_DEFORMABLE_NAME, HISTORY_NAME, QA_NAME, PARAMS_NAME,
                "moving_resampled.nii.gz", "moving_resampled.png", "moving_resampled.tif", MANIFEST_NAME)


def _refuse_constant(volume: Volume, role: str) -> None:
    """An image with one value everywhere has nothing to align; ITK would fail with
    "Refusing to change spacing ... to [.., 0]" or stop after 0 iterations as a 'success'."""
    import numpy as np

    from regviewer.core.errors import UnsupportedImageError

    values = sitk.GetArrayViewFromImage(volume.scalar())
    low, high = float(np.min(values)), float(np.max(values))
    if low == high:
        raise UnsupportedImageError(volume.path or f"<{role} image>",
                                    f"the {role} image has the same value ({low:g}) everywhere, so there is nothing "
                                    "to register it by")


def _verification(result, fixed: Volume, moving: Volume, landmarks, start_transform) -> list[str]:
    """Reasons to distrust the result: input warnings, a landmark error that grew during
    the run, and any stage verification the engine reports as not improving."""
    warnings_ = [f"{v.name}: {w}" for v in (fixed, moving) for w in getattr(v, "warnings", [])]
    details = getattr(result, "details", None) or {}
    verification = details.get("verification") if isinstance(details, dict) else None
    checks = verification if isinstance(verification, list) else [verification] if verification else []
    failures = {str(c.get("message")) for c in checks if isinstance(c, dict) and c.get("improved") is False}
    # The engine's own warnings (rolled-back stages, ...); its failures come once, below, as "not improved".
    warnings_ += [str(w) for w in getattr(result, "warnings", []) or [] if not any(str(w) in f for f in failures)]
    for check in checks:
        if isinstance(check, dict) and check.get("improved") is False:
            warnings_.append(NOT_IMPROVED + ": " + str(check.get("message") or check.get("reason") or "the engine's "
                                                                                                    "verification failed"))
    for note in (details.get("warnings") or []) if isinstance(details, dict) else []:
        warnings_.append(str(note))
    if landmarks is not None:
        start = start_transform if start_transform is not None else sitk.Transform(fixed.dimension, sitk.sitkIdentity)
        before, _ = landmark_tre(start, landmarks)
        after, _ = landmark_tre(result.transform, landmarks)
        if before is not None and after is not None and after > before + max(0.5, 0.05 * before):
            warnings_.append(f"{NOT_IMPROVED}: the landmark error grew from {before:.3g} mm at the start to "
                             f"{after:.3g} mm")
    return warnings_


NOT_IMPROVED = "the result is worse than its start"


def save_result(result, fixed: Volume, moving: Volume, out_dir: str | Path, landmarks=None, evaluate: bool = True,
                started: float | None = None, seed: int = 0, start_transform=None, cancel=None) -> PairOutcome:
    """Write a `RegistrationResult`'s files into `out_dir` (see `register_to_folder`).

    The set is all-or-nothing (`atomic.publish_set`, manifest.json last). A `cancel`
    token cancelled while saving stops at the next file and writes nothing
    (`RegistrationCancelled`). qa.json's "verdict" is "not improved" (with "warnings")
    when the result is worse than its start; the files are still written, to inspect."""
    from regviewer.core.transforms.resample import resample_moving
    from regviewer.core.transforms.ops import is_linear

    def check_cancel() -> None:
        if cancel is not None and cancel.cancelled:
            raise RegistrationCancelled("Interrupted while saving; nothing was written", best_transform=result.transform)

    out = check_output_folder(out_dir, writable=True)
    linear = is_linear(result.transform)
    names = {
        "transform": TRANSFORM_LINEAR_NAME if linear else TRANSFORM_DEFORMABLE_NAME,
        "resampled": resampled_name(moving),
        "history": HISTORY_NAME,
        "parameters": PARAMS_NAME,
        "qa": QA_NAME,
    }
    final_metric = _finite(result.history[-1].metric) if result.history else None
    tre_mean, tre_max = landmark_tre(result.transform, landmarks)
    summary: dict[str, Any] = {
        "fixed": _abs(fixed.path), "moving": _abs(moving.path),
        "transform_file": names["transform"], "transform_direction": "fixed -> moving (LPS mm)",
        "transform_kind": result.transform.GetName(), "linear": linear,
        "parameters": getattr(result.params, "name", None), "seed": seed,
        "stop_reason": result.stop_reason, "registration_seconds": round(float(result.elapsed), 3),
        "iterations": len(result.history), "final_metric": final_metric,
        "landmark_tre_mean_mm": tre_mean, "landmark_tre_max_mm": tre_max,
        "warnings": list(getattr(result, "warnings", []) or []),
        "verification": (getattr(result, "details", None) or {}).get("verification"),
    }
    warnings_ = _verification(result, fixed, moving, landmarks, start_transform)
    summary["verdict"] = "not improved" if any(w.startswith(NOT_IMPROVED) for w in warnings_) else "ok"
    summary["warnings"] = warnings_
    check_cancel()
    if evaluate:
        summary["qa"] = _qa_summary(fixed, moving, result, landmarks)

    # The resampled image keeps the moving pixel type (and colour): linear interpolation of
    # the original, not the float32 grey copy the metric used.
    check_cancel()
    resampled = resample_moving(moving, fixed, result.transform, "linear")
    check_cancel()
    try:
        stage = staging_dir(out)
    except OSError as exc:
        raise ImageWriteError(out, f"the output folder is not writable ({exc.strerror or exc})") from None
    try:
        from regviewer.core.imaging.io import write_transform

        write_transform(result.transform, stage / names["transform"])
        check_cancel()
        write_image(resampled, stage / names["resampled"])
        check_cancel()
        (stage / names["history"]).write_text(history_csv(result.history), encoding="utf-8")
        params_json = result.params.to_json() if hasattr(result.params, "to_json") else json.dumps(None)
        (stage / names["parameters"]).write_text(params_json, encoding="utf-8")
        seconds = time.monotonic() - started if started is not None else float(result.elapsed)
        summary["total_seconds"] = round(seconds, 3)
        (stage / names["qa"]).write_text(json.dumps(summary, indent=2, default=_json_default), encoding="utf-8")
        check_cancel()
        # The other kind of transform and other resampled names left by an earlier run go too.
        retire = [n for n in OUTPUT_NAMES if n not in names.values() and n != MANIFEST_NAME]
        publish_set(stage, out, [names[k] for k in ("transform", "resampled", "history", "parameters", "qa")], retire)
    except OSError as exc:
        raise ImageWriteError(out, exc.strerror or str(exc)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return PairOutcome(folder=out, files={k: out / v for k, v in names.items()}, final_metric=final_metric,
                       tre_mean_mm=tre_mean, tre_max_mm=tre_max, seconds=seconds, stop_reason=result.stop_reason,
                       summary=summary)


def apply_transform(transform, image, reference, out: str | Path, interpolator: str = "linear",
                    default: float = 0.0) -> Path:
    """Resample `image` (a moving-space image) onto `reference`'s grid (fixed space) through
    `transform` (fixed -> moving, a path or sitk.Transform) and write it atomically to `out`.

    Use ``interpolator="nearest"`` for label maps; the pixel type (and colour) is kept.
    """
    from regviewer.core.imaging.image import as_volume
    from regviewer.core.imaging.io import read_transform
    from regviewer.core.transforms.resample import resample_moving

    inputs = input_paths(transform=transform, image=image, reference=reference)
    refuse_overwriting_inputs(out, [""], inputs)
    tx = read_transform(transform) if isinstance(transform, (str, Path)) else transform
    moving_v, reference_v = as_volume(image), as_volume(reference)
    if tx.GetDimension() != reference_v.dimension or moving_v.dimension != reference_v.dimension:
        from regviewer.core.errors import IncompatibleImagesError

        raise IncompatibleImagesError(
            f"The transform is {tx.GetDimension()}D, the image '{moving_v.name}' is {moving_v.dimension}D and the "
            f"reference '{reference_v.name}' is {reference_v.dimension}D; all three must match")
    write_image(resample_moving(moving_v, reference_v, tx, interpolator, default), out)
    return Path(out)


__all__ = ["NOT_IMPROVED", "OUTPUT_NAMES", "PairOutcome", "register_to_folder", "save_result", "apply_transform", "read_parameters",
           "history_csv", "landmark_tre", "resampled_name"]
