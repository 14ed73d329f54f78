"""The output folder of a run: checked before any work, never allowed to land on an input.

A read-only folder must fail before minutes of registration, not after; an output named like an
input (a moving image called moving_resampled.nii.gz in --out) must be refused, not overwritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from regviewer.core.atomic import clean_stale_staging
from regviewer.core.errors import ImageWriteError


def input_paths(**named) -> dict[str, Path]:
    """The files a run reads, by role (paths, or a Volume's own path)."""
    paths = {}
    for role, value in named.items():
        path = value if isinstance(value, (str, Path)) else getattr(value, "path", None)
        if path:
            paths[role.replace("_", " ")] = Path(path)
    return paths


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_overwriting_inputs(out_dir: str | Path, names, inputs: dict[str, Path]) -> None:
    """An output must never replace a file the run reads (a moving image named
    moving_resampled.nii.gz in --out, `apply --out` onto its own input)."""
    for name in names:
        target = Path(out_dir) / name if name else Path(out_dir)
        for role, path in inputs.items():
            if _same_file(target, path):
                raise ImageWriteError(target, f"it is the {role} this run reads; writing there would destroy an "
                                              "input. Choose another output folder or file name")


def check_output_folder(out_dir: str | Path, writable: bool = False) -> Path:
    """The output folder; with `writable`, created and proven writable by a probe file
    (a read-only folder must fail before minutes of registration, not after)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ImageWriteError(out, "it is a file, not a folder; give a folder for the outputs")
    if writable:
        try:
            out.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".regviewer-probe-", dir=out)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ImageWriteError(out, f"the output folder is not writable ({exc.strerror or exc})") from None
        clean_stale_staging(out)
    return out


__all__ = ["input_paths", "refuse_overwriting_inputs", "check_output_folder"]
