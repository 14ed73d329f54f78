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
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

from regviewer.core.registration.presets import DEFAULT_PRESET
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


_SHOWN_WARNINGS: list[str] = []


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (e.g. NaN voxels set to 0) as one plain line each, no source line."""
    text = str(message)
    if text not in _SHOWN_WARNINGS:
        _SHOWN_WARNINGS.append(text)
        _err(f"warning: {text}")


def _warn_once(text: str) -> None:
    """Print a qa.json warning unless the same problem was already shown while reading."""
    detail = text.split(": ", 1)[-1]
    if not any(detail in shown for shown in _SHOWN_WARNINGS):
        _show_warning(text, UserWarning, "", 0)


def run(args: argparse.Namespace) -> int:
    """Run one subcommand and turn its outcome into an exit code."""
    import warnings

    handlers = {"register": cmd_register, "apply": cmd_apply, "apply-points": cmd_apply_points,
                "presets": cmd_presets, "evaluate": cmd_evaluate, "batch": cmd_batch, "stack": _cmd_stack}
    warnings.showwarning = _show_warning
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        _err("interrupted; no half-written file was left")
        return _exit_now_if_abandoned(EXIT_INTERRUPTED)
    except RegistrationCancelled as exc:
        _err(f"interrupted; {'nothing was written' if 'saving' in str(exc) else 'the registration stopped and nothing was written'}")
        return _exit_now_if_abandoned(EXIT_INTERRUPTED)
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


def _exit_now_if_abandoned(code: int) -> int:
    """A registration abandoned inside an ITK filter still runs in its daemon thread; a
    normal interpreter exit would kill it inside C++ and abort the process, so leave at
    once (nothing of it is written: outputs are staged)."""
    from regviewer.core.registration.pyramid import BACKGROUND_THREAD_NAME

    if any(t.name == BACKGROUND_THREAD_NAME and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _cmd_stack(args: argparse.Namespace) -> int:
    from regviewer.cli.stack_command import cmd_stack

    return cmd_stack(args)


@contextlib.contextmanager
def sigint_cancels(token, grace_s: float = 1.0) -> Iterator[None]:
    """The first Ctrl+C asks the engine to stop (it does within about a second, cleanly);
    a second one interrupts at once. Only the main thread can install the handler.

    Python runs signal handlers only between bytecodes, so while ITK is busy inside one
    long filter neither press would be seen. A watcher thread therefore reads the signal
    from a wakeup socket (written by the C-level handler at once): it cancels the token on
    the first press and, if a second press has not ended the process within `grace_s`,
    exits with 130 itself. Outputs are staged in hidden folders, so nothing half-written
    is left; the next run into the folder removes the staging folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses, handled, timers = [0], [0], []

    def handler(signum, frame):  # runs when the main thread next executes Python
        handled[0] += 1
        token.cancel()
        if handled[0] >= 2:
            raise KeyboardInterrupt

    receive, send = socket.socketpair()
    send.setblocking(False)

    def watch() -> None:
        while True:
            try:
                data = receive.recv(16)
            except OSError:
                return
            if not data:
                return
            for byte in data:
                if byte != signal.SIGINT:
                    continue
                presses[0] += 1
                if presses[0] == 1:
                    token.cancel()
                    print("\nregviewer: stopping (press Ctrl+C again to abort at once)", file=sys.stderr, flush=True)
                elif presses[0] == 2:
                    timers.append(threading.Timer(grace_s, _abort))
                    timers[-1].daemon = True
                    timers[-1].start()

    def _abort() -> None:
        print("regviewer: aborted; nothing half-written was left", file=sys.stderr, flush=True)
        os._exit(EXIT_INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    previous_fd = signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="regviewer-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous)
        send.close()
        receive.shutdown(socket.SHUT_RDWR)
        receive.close()


def _fmt(value, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


# --- register -------------------------------------------------------------------------------
def cmd_register(args: argparse.Namespace) -> int:
    from regviewer.cli.progress import ProgressPrinter
    from regviewer.core.registration.headless import register_to_folder
    from regviewer.core.registration.engine import CancelToken

    preset = args.preset or (None if args.params else DEFAULT_PRESET)
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
        _err("interrupted after saving; the results above were written completely")
        return EXIT_INTERRUPTED
    for warning in outcome.summary.get("warnings", []):
        _warn_once(warning)
    if outcome.summary.get("verdict") not in (None, "ok"):
        _err(f"registration failed: the result is worse than its start; the files above are kept for inspection "
             f"(qa.json says \"verdict\": \"{outcome.summary['verdict']}\")")
        return EXIT_FAILED
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
    preset = args.preset or (None if args.params else DEFAULT_PRESET)
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
