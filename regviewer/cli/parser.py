"""The command line: `regviewer` opens the window; subcommands run the engine headless.

Exit codes (the same for every subcommand):
  0    success
  1    an output could not be written (or an unexpected internal error)
  2    bad arguments or unreadable input (the message names the file)
  3    registration failed (for `batch`: at least one pair failed; see summary.csv)
  130  interrupted (Ctrl+C): the run stops cleanly and leaves no half-written file
"""

from __future__ import annotations

import argparse
import sys

from regviewer.core.registration.presets import DEFAULT_PRESET

EXIT_OK, EXIT_WRITE, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
COMMANDS = ("open", "register", "apply", "apply-points", "presets", "evaluate", "batch", "stack")

_EPILOG = ("Every transform maps FIXED points to MOVING points (LPS mm), the direction ITK resamples with.\n"
           "Exit codes: 0 ok, 1 cannot write output, 2 bad arguments or input, 3 registration failed, "
           "130 interrupted.")


class _Formatter(argparse.HelpFormatter):
    """Wraps each line of a description or epilog on its own, so explicit line breaks stay."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent) or indent
                         for line in text.splitlines())


def _formatter(prog: str) -> argparse.HelpFormatter:
    return _Formatter(prog, max_help_position=32)


def _add_registration_options(p: argparse.ArgumentParser) -> None:
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--preset", default=None, metavar="NAME", help=f"a preset name (see `regviewer presets`; default {DEFAULT_PRESET}: "
                        "chosen from the images)")
    choice.add_argument("--params", metavar="P.json", help="a parameters JSON file (a Pipeline), instead of a preset")
    p.add_argument("--seed", type=int, default=0, help="random seed for metric sampling (same seed, same result)")
    p.add_argument("--no-qa", action="store_true", help="skip the quality measures in qa.json (faster)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regviewer", formatter_class=_formatter, epilog=_EPILOG,
        description="Interactive image registration. With no command (or with image paths) it opens the window.")
    from regviewer import __version__

    parser.add_argument("--version", action="version", version=f"regviewer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_open = sub.add_parser("open", help="open the window (the default)", formatter_class=_formatter)
    p_open.add_argument("fixed", nargs="?", help="fixed image (file or DICOM folder)")
    p_open.add_argument("moving", nargs="?", help="moving image (file or DICOM folder)")
    p_open.add_argument("--session", help="a session file to open")
    p_open.add_argument("--transform", metavar="FILE",
                        help="a transform (fixed -> moving: ITK, elastix, ANTs .mat, displacement field) to show")
    p_open.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")

    p_reg = sub.add_parser(
        "register", help="register MOVING onto FIXED and save the results", formatter_class=_formatter,
        epilog=_EPILOG,
        description="Register MOVING onto FIXED. Writes into --out: transform.tfm (transform.h5 when the result is "
                    "not linear; it maps fixed -> moving), moving_resampled.nii.gz (.png/.tif for a 2D input of "
                    "that kind), history.csv (metric per iteration), parameters.json and qa.json (a summary).")
    p_reg.add_argument("fixed", help="fixed image (file or DICOM folder)")
    p_reg.add_argument("moving", help="moving image (file or DICOM folder)")
    p_reg.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    _add_registration_options(p_reg)
    p_reg.add_argument("--landmarks", metavar="L", help="landmark pairs: reported as TRE in qa.json, and used by a "
                       "landmark initialiser when the parameters ask for one")
    p_reg.add_argument("--fixed-mask", metavar="MASK", help="compare only inside this mask (fixed grid)")
    p_reg.add_argument("--moving-mask", metavar="MASK", help="mask on the moving image")
    p_reg.add_argument("--initial-transform", metavar="T", help="start from this fixed -> moving transform")
    p_reg.add_argument("--quiet", action="store_true", help="no progress output")

    p_apply = sub.add_parser(
        "apply", help="resample an image through a transform", formatter_class=_formatter, epilog=_EPILOG,
        description="Resample IMAGE (in moving space) onto the grid of --reference (fixed space) through TRANSFORM "
                    "(fixed -> moving). Use --interpolator nearest for label maps.")
    p_apply.add_argument("transform", help="transform file (fixed -> moving)")
    p_apply.add_argument("image", help="the image to resample (moving space)")
    p_apply.add_argument("--reference", required=True, help="image whose grid the output takes (fixed space)")
    p_apply.add_argument("--out", required=True, help="output image file")
    p_apply.add_argument("--interpolator", choices=("nearest", "linear", "bspline"), default="linear")
    p_apply.add_argument("--default", type=float, default=0.0, help="value outside the image (default 0)")

    p_pts = sub.add_parser(
        "apply-points", help="map points through a transform", formatter_class=_formatter, epilog=_EPILOG,
        description="Map physical points (LPS mm) from a CSV. By default the points are in FIXED space and go to "
                    "moving space as T(p). With --to fixed the points are in MOVING space and go back with the "
                    "inverse: exact (matrix inverse) for a linear transform, Newton's method per point for a "
                    "deformable one (a residual_mm column reports |T(p) - q|). POINTS is a CSV with columns x,y[,z] "
                    "and a header, or no header and the coordinates last (other columns are kept); or a landmark "
                    "file (regviewer CSV/JSON, Slicer .fcsv/.mrk.json), whose fixed (or, with --to fixed, moving) "
                    "points are mapped and compared with their partners (error_mm column).")
    p_pts.add_argument("transform", help="transform file (fixed -> moving)")
    p_pts.add_argument("points", help="CSV of points, or a landmark file")
    p_pts.add_argument("--to", choices=("moving", "fixed"), default="moving", help="target space (default moving)")
    p_pts.add_argument("--out", help="output CSV (default: print to stdout)")

    sub.add_parser("presets", help="list the registration presets", formatter_class=_formatter,
                   description="List the registration presets with their one-line descriptions.")

    p_eval = sub.add_parser(
        "evaluate", help="measure how good a registration is", formatter_class=_formatter, epilog=_EPILOG,
        description="Evaluate a transform (fixed -> moving): similarity, Jacobian, Dice of label maps, landmark TRE. "
                    "Prints the summary; --report writes a self-contained HTML report.")
    p_eval.add_argument("--fixed", required=True)
    p_eval.add_argument("--moving", required=True)
    p_eval.add_argument("--transform", required=True, help="transform file (fixed -> moving)")
    p_eval.add_argument("--labels-fixed", metavar="LABELS", help="label map on the fixed image")
    p_eval.add_argument("--labels-moving", metavar="LABELS", help="label map on the moving image")
    p_eval.add_argument("--landmarks", metavar="L", help="landmark pairs (for TRE)")
    p_eval.add_argument("--mask", help="fixed-space mask for the measures")
    p_eval.add_argument("--report", metavar="HTML", help="write an HTML report here")
    p_eval.add_argument("--json", metavar="JSON", help="write the summary as JSON here")

    p_batch = sub.add_parser(
        "batch", help="register many pairs (on Dask)", formatter_class=_formatter, epilog=_EPILOG,
        description="Register every pair in PAIRS.csv (header: fixed,moving[,name,landmarks,fixed_mask,moving_mask]; "
                    "relative paths are relative to the CSV). Each pair's results go to OUT/<name>/ (written "
                    "atomically); a rerun skips finished pairs; a failing pair is recorded and the rest go on; "
                    "OUT/summary.csv lists every pair. Runs on a local Dask cluster of --workers processes, or on an "
                    "existing one with --scheduler (its workers must see the same paths). Needs "
                    "`pip install regviewer[batch]` unless --no-dask.")
    p_batch.add_argument("pairs", help="pairs CSV")
    p_batch.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_registration_options(p_batch)
    where = p_batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N", help="local worker processes (default: the cores)")
    where.add_argument("--scheduler", metavar="tcp://HOST:8786", help="run on an existing Dask cluster")
    where.add_argument("--no-dask", action="store_true", help="run the pairs one after another in this process")
    p_batch.add_argument("--retry-failed", action="store_true", help="run pairs that failed before again")
    from regviewer.cli.stack_command import add_stack_parser

    add_stack_parser(sub, _formatter, _EPILOG)
    return parser


def _open_window(args: argparse.Namespace) -> int:
    """The `open` command: the only place the command line imports the GUI (Qt loads slowly
    and is absent on headless machines)."""
    from regviewer.gui.app import run_app

    return run_app(fixed=args.fixed, moving=args.moving, session=args.session, screenshot=args.screenshot,
                   transform=args.transform)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {*COMMANDS, "-h", "--help", "--version"}
    if not argv or argv[0] not in known:  # image paths or window options: open the window
        argv = ["open", *argv]
    args = _build_parser().parse_args(argv)
    if args.command == "open":
        return _open_window(args)
    from regviewer.cli import commands as cli_commands

    return cli_commands.run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
