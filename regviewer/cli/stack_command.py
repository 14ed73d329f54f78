"""`regviewer stack SECTIONS --out DIR`: align serial sections into a volume.

One core call (`regviewer.core.stack.align_stack`) plus writing its result; bad or
missing sections are reported on stderr and in stack.csv while the rest go on. Exit
codes as for `register`: 0 every readable section aligned (flags are warnings), 2 bad
arguments or nothing readable, 3 at least one section failed or could not be read,
1 an output could not be written, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator

from regviewer.cli.parser import EXIT_FAILED, EXIT_OK


def add_stack_parser(sub, formatter, epilog: str) -> None:
    """The `stack` subcommand's arguments (called from `cli.parser`)."""
    p = sub.add_parser(
        "stack", help="align serial 2D sections into a volume", formatter_class=formatter, epilog=epilog,
        description="Align a stack of 2D sections (a folder in natural order: s2 before s10; a multi-page TIFF; "
                    "or a 3D image). Without --reference, neighbours are registered outward from an anchor section "
                    "(the middle one by default) and fitted jointly so drift stays low; with --reference (a folder "
                    "of blockface images, one per section, or a 3D volume) each section is registered to its "
                    "reference plane. Writes into --out: stack.nii.gz (stack.ome.tif, full resolution, for large "
                    "pyramidal slides), transforms/<section>.tfm (output frame -> section frame, i.e. fixed -> "
                    "moving) and stack.csv (section, status, metric, flags, seconds).")
    p.add_argument("sections", nargs="+", help="a folder of sections, a multi-page TIFF, a 3D image, or section files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--reference", metavar="REF", help="folder of reference images (one per section) or a 3D volume")
    p.add_argument("--reference-planes", metavar="Z", type=int, nargs="+",
                   help="with a 3D reference: the z index of each section's plane (default: evenly spaced)")
    p.add_argument("--preset", default="auto", metavar="NAME",
                   help="pairwise registration: 'auto' (rigid then affine, for sections; default), "
                        "'auto-deformable', or any preset name")
    p.add_argument("--params", metavar="P.json", help="a parameters JSON file (a Pipeline), instead of a preset")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"),
                   help="pixel size and section spacing (mm) for sections without geometry (PNG, JPEG)")
    p.add_argument("--anchor", type=int, metavar="N", help="index of the section whose frame is the output "
                   "(without a reference; default the middle one)")
    p.add_argument("--neighbours", type=int, default=2, metavar="K",
                   help="register each section with the next K sections (default 2)")
    trend = p.add_mutually_exclusive_group()
    trend.add_argument("--trend", choices=("stretch", "pose", "off"), default="stretch",
                       help="without --reference, what is removed after the joint fit: 'stretch' (default: the "
                            "smooth change of the sections' size and shape along the stack, which is the anatomy "
                            "changing, not the cutting), 'pose' (also a smooth (quadratic) trend of angle and shift; "
                            "sections are mounted independently), 'off' (keep everything)")
    trend.add_argument("--keep-trend", dest="trend", action="store_const", const="off",
                       help="same as --trend off: the stack really was stretched or turned progressively")
    p.add_argument("--rigid", action="store_true", help="rigid section transforms only")
    p.add_argument("--deformable", action="store_true", help="add a B-spline stage (same as --preset auto-deformable)")
    p.add_argument("--max-side", type=int, default=2048, metavar="PX",
                   help="pyramidal TIFFs larger than this are registered on a level this size (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="random seed for metric sampling")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, metavar="N",
                       help="register neighbour pairs in N local processes (default 1: in this process)")
    where.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="register neighbour pairs on an existing Dask cluster (needs regviewer[batch]; "
                            "its workers need no access to the files)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def cmd_stack(args: argparse.Namespace) -> int:
    import regviewer
    from regviewer.cli.commands import _err, sigint_cancels
    from regviewer.core.registration.engine import CancelToken

    params = None
    if args.params:
        from pathlib import Path

        from regviewer.core.errors import ParameterError
        from regviewer.core.registration.params import Pipeline

        try:
            params = Pipeline.from_json(Path(args.params).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ParameterError(f"Cannot read the parameters file '{args.params}': {exc.strerror or exc}") from None
    sections = args.sections[0] if len(args.sections) == 1 else args.sections
    from regviewer.core.registration.headless import check_output_folder

    check_output_folder(args.out, writable=True)  # an unwritable --out fails now, not after the whole stack
    token = CancelToken()
    printer = _StackPrinter(None if args.quiet else sys.stderr)
    with sigint_cancels(token), _executor(args) as executor:
        result = regviewer.align_stack(
            sections, reference=args.reference, preset=args.preset, params=params, spacing=args.spacing,
            anchor=args.anchor, neighbours=args.neighbours, deformable=args.deformable, rigid=args.rigid,
            reference_planes=args.reference_planes, max_side=args.max_side, seed=args.seed,
            progress=printer, cancel=token, executor=executor, remove_trend=args.trend)
    printer.finish()
    result.write(args.out)
    bad = [s for s in result.sections if s.status in ("failed", "missing")]
    for s in result.sections:
        if s.status != "ok":
            _err(f"section {s.index} '{s.name}': {s.status}: {'; '.join(s.flags)}")
    print(f"{result.n_ok}/{len(result.sections)} sections aligned ({sum(s.status == 'flagged' for s in result.sections)}"
          f" flagged, {len(bad)} failed or missing); results in {args.out}")
    return EXIT_FAILED if bad else EXIT_OK


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator[object | None]:
    """None (this process), a local process pool, or a Dask cluster's executor."""
    if args.scheduler:
        from regviewer.core.registration.batch import DASK_MISSING, BatchSetupError

        try:
            from distributed import Client
        except ImportError:
            raise BatchSetupError(DASK_MISSING) from None
        try:
            client = Client(args.scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise BatchSetupError(f"Cannot reach the Dask scheduler at '{args.scheduler}': {exc}") from None
        with client:
            yield client.get_executor(pure=False)
        return
    if args.workers and args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(args.workers, initializer=_share_cores, initargs=(args.workers,))
        try:
            yield pool
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
        return
    yield None


def _stop_pool(pool, grace_s: float = 0.5) -> None:
    """End a process pool whose work is abandoned (a cancel, an error) without waiting for
    the pairs still registering: ITK does not look at a cancel inside a worker, so the
    workers get `grace_s` to finish on their own and are then terminated (as the window's
    engine process is after a cancel)."""
    import time

    import multiprocessing

    # The pool's own list (private, read before shutdown forgets it); should a Python rename it,
    # the children of this process, which in the CLI are the pool's workers.
    processes = list((getattr(pool, "_processes", None) or {}).values()) or multiprocessing.active_children()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(1.0)


def _share_cores(workers: int) -> None:
    """ITK threads per worker process = cores / workers, so workers never oversubscribe.
    Workers ignore Ctrl+C (a terminal sends it to the whole process group): the main
    process decides, and ends them."""
    import os
    import signal

    import SimpleITK as sitk

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, (os.cpu_count() or 1) // workers))


class _StackPrinter:
    """One line per registration (a self-updating line on a terminal)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = bool(stream is not None and stream.isatty())

    def __call__(self, p) -> None:
        if self.stream is None or p.index is not None:
            return
        text = f"[{p.done + 1}/{p.total}] {p.message}" if p.done < p.total else p.message
        if self.tty:
            self.stream.write("\r" + text[:100].ljust(100))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()


__all__ = ["add_stack_parser", "cmd_stack"]
