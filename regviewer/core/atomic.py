"""Atomic file writes: a crash or Ctrl+C never leaves a half-written file.

Everything is first written into a hidden temporary folder beside the destination
(same file system) under its final name, then moved into place with `os.replace`.
Writing under the final name matters for multi-file formats (MetaImage .mhd + .raw),
whose header names its data file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path` to; on success move it (and any
    companion files written beside it) into place; on error leave nothing behind."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".regviewer-tmp-", dir=dest.parent))
    try:
        tmp_path = tmp_dir / dest.name
        yield tmp_path
        # Companion files first (e.g. .raw data), the named file last.
        for written in sorted(tmp_dir.iterdir(), key=lambda p: p.name == dest.name):
            os.replace(written, dest.parent / written.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
