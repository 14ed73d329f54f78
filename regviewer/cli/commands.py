"""What each `regviewer` subcommand does: thin wrappers over core calls, plus exit codes.

Every command's work is one core call (`core.api`, `core.batch`, `core.point_mapping`,
`core.qa`); this module only reads arguments, prints, and maps typed errors to exit
codes (see `regviewer.cli.parser`). Messages go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

from regviewer.cli.parser import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_WRITE
from regviewer.core.errors import (
    ImageWriteError,
    LandmarkFitError,
    RegistrationCancelled,
    RegistrationFailed,
    RegviewerError,
)


def _err(text: str) -> None:
    print(f"regviewer: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run one subcommand and turn its outcome into an exit code."""
    handlers = {"register": cmd_register, "apply": cmd_apply, "apply-points": cmd_apply_points,
                "presets": cmd_presets, "evaluate": cmd_evaluate, "batch": cmd_batch, "stack": _cmd_stack}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        _err("interrupted; no half-written file was left")
        return EXIT_INTERRUPTED
    except RegistrationCancelled:
        _err("interrupted; the registration stopped and nothing was written")
        return EXIT_INTERRUPTED
    except (RegistrationFailed, LandmarkFitError) as exc:
        _err(f"registration failed: {exc}")
        return EXIT_FAILED
    except ImageWriteError as exc:
        _err(str(exc))
        return EXIT_WRITE
    except RegviewerError as exc:
        _err(str(exc))
        return EXIT_INPUT
    except Exception as exc:  # noqa: BLE001 -- a bug: one plain line, the traceback on request
        if os.environ.get("REGVIEWER_DEBUG"):
            raise
        _err(f"unexpected error ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}); "
             "set REGVIEWER_DEBUG=1 to see the traceback, and please report it")
        return EXIT_WRITE


def _cmd_stack(args: argparse.Namespace) -> int:
    from regviewer.cli.stack_command import cmd_stack

    return cmd_stack(args)


@contextlib.contextmanager
def sigint_cancels(token) -> Iterator[None]:
    """The first Ctrl+C asks the engine to stop (it does within about a second, cleanly);
    a second one interrupts at once. Only the main thread can install the handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nregviewer: stopping (press Ctrl+C again to abort at once)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fmt(value, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


# --- register -------------------------------------------------------------------------------
def cmd_register(args: argparse.Namespace) -> int:
    from regviewer.cli.progress import ProgressPrinter
    from regviewer.core.registration.headless import register_to_folder
    from regviewer.core.registration.engine import CancelToken

    preset = args.preset or (None if args.params else "affine-mi")
    printer = None if args.quiet else ProgressPrinter(label=preset or Path(args.params).name)
    token = CancelToken()
    try:
        with sigint_cancels(token):
            outcome = register_to_folder(args.fixed, args.moving, args.out, preset=preset, params=args.params,
                                         landmarks=args.landmarks, fixed_mask=args.fixed_mask,
                                         moving_mask=args.moving_mask, initial_transform=args.initial_transform,
                                         progress=printer, cancel=token, seed=args.seed, evaluate=not args.no_qa)
    except RuntimeError as exc:  # an ITK error the engine did not translate
        raise RegistrationFailed(str(exc).strip().splitlines()[-1][:300]) from None
    finally:
        if printer is not None:
            printer.finish()
    for key, path in outcome.files.items():
        print(f"{key:<11}{path}")
    print(f"stopped    {outcome.stop_reason}")
    print(f"metric     {_fmt(outcome.final_metric)}  ({outcome.seconds:.1f} s)")
    if outcome.tre_mean_mm is not None:
        print(f"TRE        mean {_fmt(outcome.tre_mean_mm, ' mm')}, max {_fmt(outcome.tre_max_mm, ' mm')}")
    if token.cancelled:
        _err("interrupted while saving; the results above were written completely")
        return EXIT_INTERRUPTED
    return EXIT_OK


# --- apply, apply-points ------------------------------------------------------------------
def cmd_apply(args: argparse.Namespace) -> int:
    from regviewer.core.registration.headless import apply_transform

    out = apply_transform(args.transform, args.image, args.reference, args.out, args.interpolator, args.default)
    print(out)
    return EXIT_OK


def cmd_apply_points(args: argparse.Namespace) -> int:
    import numpy as np

    from regviewer.core.atomic import atomic_write_text
    from regviewer.core.imaging.io import read_transform
    from regviewer.core.transforms.points import is_landmark_file, landmark_table_for, map_points, read_point_csv

    tx = read_transform(args.transform)
    expected = None
    if is_landmark_file(args.points):
        table, expected = landmark_table_for(args.points, args.to, tx.GetDimension())
    else:
        table = read_point_csv(args.points, tx.GetDimension())
    mapped = map_points(tx, table.points, to=args.to)
    extra: dict[str, list] = {}
    if args.to == "fixed":
        extra["residual_mm"] = [f"{r:.3g}" for r in mapped.residual_mm]
        bad = int((~mapped.converged).sum())
        if bad:
            _err(f"warning: {bad} point(s) could not be inverted to within 1e-4 mm (see residual_mm); the "
                 "transform may fold or not cover them")
    if expected is not None:
        errors = np.linalg.norm(mapped.points - expected, axis=1)
        extra["error_mm"] = [f"{e:.4g}" for e in errors]
        _err(f"distance to the {args.to} landmarks: mean {errors.mean():.4g} mm, max {errors.max():.4g} mm")
    text = table.with_points(mapped.points).to_csv(extra or None)
    if args.out:
        atomic_write_text(args.out, text)
        print(args.out)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- presets --------------------------------------------------------------------------------
def cmd_presets(args: argparse.Namespace) -> int:
    from regviewer.core.registration.presets import list_presets

    presets = list_presets()
    width = max((len(name) for name, _ in presets), default=0)
    for name, description in presets:
        print(f"{name:<{width}}  {description}")
    return EXIT_OK


# --- evaluate -------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from regviewer.core.atomic import atomic_write_text
    from regviewer.core.imaging.io import read_image, read_transform
    from regviewer.core.qa.evaluation import evaluate_registration

    fixed, moving = read_image(args.fixed), read_image(args.moving)
    tx = read_transform(args.transform)
    labels = [None if p is None else read_image(p) for p in (args.labels_fixed, args.labels_moving)]
    if (labels[0] is None) != (labels[1] is None):
        _err("give both --labels-fixed and --labels-moving (or neither)")
        return EXIT_INPUT
    landmarks = None
    if args.landmarks:
        from regviewer.core.landmarks.model import load_landmarks

        landmarks = load_landmarks(args.landmarks)
    mask = read_image(args.mask) if args.mask else None
    evaluation = evaluate_registration(fixed, moving, tx, labels_fixed=labels[0], labels_moving=labels[1],
                                       landmarks=landmarks, mask=mask)
    text = json.dumps(evaluation.summary(), indent=2, default=_json_default)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    if args.report:
        from regviewer.core.qa.report import write_report

        path = write_report(evaluation, args.report, fixed=fixed, moving=moving, transform=tx)
        _err(f"report written to {path}")
    return EXIT_OK


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


# --- batch ----------------------------------------------------------------------------------
def cmd_batch(args: argparse.Namespace) -> int:
    from regviewer.cli.progress import BatchProgress
    from regviewer.core.registration.headless import read_parameters
    from regviewer.core.registration.batch import DASK_MISSING, BatchSettings, BatchSetupError, read_pairs, run_batch

    pairs = read_pairs(args.pairs)
    preset = args.preset or (None if args.params else "affine-mi")
    pipeline = read_parameters(preset=preset, params=args.params)  # fails fast on a bad preset or file
    settings = BatchSettings(preset=preset, params_json=pipeline.to_json() if args.params else None,
                             seed=args.seed, evaluate=not args.no_qa)
    if args.workers is not None and args.workers < 1:
        _err("--workers must be at least 1")
        return EXIT_INPUT
    if not args.no_dask:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise BatchSetupError(DASK_MISSING) from None
    progress = BatchProgress(len(pairs))
    cancel = None
    guard = contextlib.nullcontext()
    if args.no_dask:
        from regviewer.core.registration.engine import CancelToken

        cancel = CancelToken()
        guard = sigint_cancels(cancel)
    try:
        with guard:
            results = run_batch(pairs, args.out, settings, workers=args.workers, scheduler=args.scheduler,
                                use_dask=not args.no_dask, retry_failed=args.retry_failed, on_result=progress,
                                on_skip=progress.skip, cancel=cancel)
    finally:
        progress.finish()
    ok = sum(r.status == "ok" for r in results)
    failed = [r for r in results if r.status != "ok"]
    skipped = sum(r.this_run == "skipped" for r in results)
    print(f"{ok} ok, {len(failed)} failed, {skipped} finished before; summary: {Path(args.out) / 'summary.csv'}")
    for r in failed:
        print(f"failed     {r.pair}: {r.error}")
    return EXIT_FAILED if failed else EXIT_OK
