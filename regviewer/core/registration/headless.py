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
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import SimpleITK as sitk

from regviewer.core.errors import ImageWriteError, ParameterError, RegistrationCancelled
from regviewer.core.registration.presets import DEFAULT_PRESET
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
        pipeline.validate()
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
    `landmarks` a path or a `LandmarkSet` (used for TRE, and by a landmark initialiser);
    `initial_transform` a fixed -> moving transform or its file to start from.

    All files are written into a hidden folder first and moved in at the end, so an
    error or Ctrl+C leaves either the complete set or nothing new. A cancelled
    registration raises `RegistrationCancelled` and writes nothing.
    """
    from regviewer.core.registration.engine import register
    from regviewer.core.imaging.image import as_volume

    start = time.monotonic()
    _check_output_folder(out_dir)  # before minutes of work, not after
    fixed_v, moving_v = as_volume(fixed), as_volume(moving)
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
    result = register(fixed_v, moving_v, preset=preset, params=pipeline, fixed_mask=masks[0], moving_mask=masks[1],
                      initial_transform=initial_transform, progress=progress, cancel=cancel, seed=seed, landmarks=landmarks)
    if result.cancelled:
        raise RegistrationCancelled("Registration cancelled; nothing was written", best_transform=result.transform)
    return save_result(result, fixed_v, moving_v, out_dir, landmarks=landmarks, evaluate=evaluate,
                       started=start, seed=seed)


def _check_output_folder(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ImageWriteError(out, "it is a file, not a folder; give a folder for the outputs")
    return out


def save_result(result, fixed: Volume, moving: Volume, out_dir: str | Path, landmarks=None, evaluate: bool = True,
                started: float | None = None, seed: int = 0) -> PairOutcome:
    """Write a `RegistrationResult`'s files into `out_dir` (see `register_to_folder`)."""
    from regviewer.core.transforms.resample import resample_moving
    from regviewer.core.transforms.ops import is_linear

    out = _check_output_folder(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageWriteError(out, f"the output folder cannot be created ({exc.strerror or exc})") from None
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
    if evaluate:
        summary["qa"] = _qa_summary(fixed, moving, result, landmarks)

    # The resampled image keeps the moving pixel type (and colour): linear interpolation of
    # the original, not the float32 grey copy the metric used.
    resampled = resample_moving(moving, fixed, result.transform, "linear")
    stage = Path(tempfile.mkdtemp(prefix=".regviewer-out-", dir=out))
    try:
        from regviewer.core.imaging.io import write_transform

        write_transform(result.transform, stage / names["transform"])
        write_image(resampled, stage / names["resampled"])
        (stage / names["history"]).write_text(history_csv(result.history), encoding="utf-8")
        params_json = result.params.to_json() if hasattr(result.params, "to_json") else json.dumps(None)
        (stage / names["parameters"]).write_text(params_json, encoding="utf-8")
        seconds = time.monotonic() - started if started is not None else float(result.elapsed)
        summary["total_seconds"] = round(seconds, 3)
        (stage / names["qa"]).write_text(json.dumps(summary, indent=2, default=_json_default), encoding="utf-8")
        # A transform of the other kind left by an earlier run would be ambiguous.
        other = TRANSFORM_DEFORMABLE_NAME if linear else TRANSFORM_LINEAR_NAME
        if (out / other).exists():
            (out / other).unlink()
        for name in names.values():
            os.replace(stage / name, out / name)
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

    tx = read_transform(transform) if isinstance(transform, (str, Path)) else transform
    moving_v, reference_v = as_volume(image), as_volume(reference)
    if tx.GetDimension() != reference_v.dimension or moving_v.dimension != reference_v.dimension:
        from regviewer.core.errors import IncompatibleImagesError

        raise IncompatibleImagesError(
            f"The transform is {tx.GetDimension()}D, the image '{moving_v.name}' is {moving_v.dimension}D and the "
            f"reference '{reference_v.name}' is {reference_v.dimension}D; all three must match")
    write_image(resample_moving(moving_v, reference_v, tx, interpolator, default), out)
    return Path(out)


__all__ = ["PairOutcome", "register_to_folder", "save_result", "apply_transform", "read_parameters",
           "history_csv", "landmark_tre", "resampled_name"]
