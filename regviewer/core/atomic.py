"""Atomic file writes: a crash or Ctrl+C never leaves a half-written file.

Everything is first written into a hidden temporary folder beside the destination
(same file system) under its final name, then moved into place with `os.replace`.
Writing under the final name matters for multi-file formats (MetaImage .mhd + .raw),
whose header names its data file.

A set of files that belong together (a registration's outputs) is made all-or-nothing
by `publish_set`: the old set's manifest goes first, then the old files, then the new
files move in, and a new manifest is written last. A folder whose manifest is missing
or does not match its files holds no complete set (`read_manifest` returns None).
Staging folders carry the writing process's id, so `clean_stale_staging` can remove
those a killed process left behind without touching a live one's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator

MANIFEST_NAME = "manifest.json"
STAGING_PREFIXES = (".regviewer-tmp-", ".regviewer-out-")
_UNKNOWN_OWNER_AGE_S = 3600.0  # staging folders without a process id (older versions)


def staging_dir(parent: str | Path, prefix: str = ".regviewer-out-") -> Path:
    """A new hidden folder in `parent`, named after this process so a later run can tell
    whether its writer is still alive."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path` to; on success move it (and any
    companion files written beside it) into place; on error leave nothing behind."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = staging_dir(dest.parent, ".regviewer-tmp-")
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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_staging(folder: str | Path) -> list[Path]:
    """Remove staging folders in `folder` whose writing process is gone; return them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for prefix in STAGING_PREFIXES:
        for stage in folder.glob(prefix + "*"):
            if not stage.is_dir():
                continue
            owner = stage.name[len(prefix):].split("-", 1)[0]
            if owner.isdigit():
                stale = not _pid_alive(int(owner))
            else:
                try:
                    stale = time.time() - stage.stat().st_mtime > _UNKNOWN_OWNER_AGE_S
                except OSError:
                    continue
            if stale:
                shutil.rmtree(stage, ignore_errors=True)
                removed.append(stage)
    return removed


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish_set(stage: Path, dest: Path, names: Iterable[str], retire: Iterable[str] = ()) -> dict:
    """Move the files `names` from `stage` into `dest` as one set; return the manifest.

    Order: the old manifest is removed (from here on the folder holds no complete set),
    then the old set's files (`names` and `retire`), then the new files move in, and the
    manifest naming them with their sizes and SHA-256 is written last. A crash at any
    point leaves either the complete new set or files without a manifest, never an old
    file beside a new one."""
    names = list(names)
    entries = {n: {"bytes": (stage / n).stat().st_size, "sha256": _digest(stage / n)} for n in names}
    manifest = {"format": "regviewer-output-set", "version": 1, "files": entries,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (dest / MANIFEST_NAME).unlink(missing_ok=True)
    for old in {*names, *retire}:
        (dest / old).unlink(missing_ok=True)
    for n in names:
        os.replace(stage / n, dest / n)
    atomic_write_text(dest / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: str | Path, check_digests: bool = False) -> dict | None:
    """The folder's manifest when it names a complete set (every file present with its
    size, and its digest when asked), else None."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        files = manifest["files"]
        for name, entry in files.items():
            path = folder / name
            if path.stat().st_size != entry["bytes"]:
                return None
            if check_digests and _digest(path) != entry["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return manifest


__all__ = ["atomic_output", "atomic_write_text", "atomic_write_bytes", "clean_stale_staging", "publish_set",
           "read_manifest", "staging_dir", "MANIFEST_NAME"]
