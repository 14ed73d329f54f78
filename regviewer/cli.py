"""The command line: `regviewer` opens the window; subcommands run the engine headless."""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regviewer", description="Interactive image registration.")
    sub = parser.add_subparsers(dest="command")
    p_open = sub.add_parser("open", help="open the window (the default)")
    p_open.add_argument("fixed", nargs="?", help="fixed image (file or DICOM folder)")
    p_open.add_argument("moving", nargs="?", help="moving image (file or DICOM folder)")
    p_open.add_argument("--session", help="a session file to open")
    p_open.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    known = {"open", "-h", "--help"}
    if not argv or (argv[0] not in known and not argv[0].startswith("-")) or argv[0] == "--screenshot":
        argv = ["open", *argv]
    args = _build_parser().parse_args(argv)
    if args.command == "open":
        from .gui.app import run_app

        return run_app(fixed=args.fixed, moving=args.moving, session=args.session, screenshot=args.screenshot)
    return 2
