"""Sessions: everything a user made, in one JSON file, and crash recovery.

A session file holds the image paths, named transforms (each mapping FIXED points to
MOVING points, ITK's resampling direction), the landmark set, registration parameters,
view state and any other named part a panel registers. It is plain JSON so a person can
read it and a script can write it.

Transforms are embedded as ITK transform text (lossless, readable) or, when they are
large (dense displacement fields, fine B-splines), as a base64-encoded ITK HDF5 file.

Recovery: while the application runs, a lock file marks the run as alive and
autosaves go to a file beside it, both in `recovery_dir()`. A clean exit removes both.
At the next start, an autosave whose run is no longer alive is a crashed run's work and
is offered for recovery. No Qt here: the window only calls these functions.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import SessionError
from regviewer.core.transforms.storable import storable

SESSION_FORMAT = "regviewer-session"
SESSION_VERSION = 1
SESSION_SUFFIX = ".rvsession.json"
# Transforms with more parameters than this are embedded as binary HDF5, not text.
_TEXT_TRANSFORM_MAX_PARAMETERS = 5000


# --------------------------------------------------------------------------- transforms
def transform_to_json(transform: sitk.Transform) -> dict[str, str]:
    """Encode a transform (fixed→moving) losslessly for a JSON document. Nested
    composites (two applied runs, a fit on a run) are flattened first: ITK's files
    cannot hold a composite inside a composite."""
    transform = storable(transform)
    with tempfile.TemporaryDirectory(prefix="regviewer-tx-") as tmp:
        large = transform.GetNumberOfParameters() > _TEXT_TRANSFORM_MAX_PARAMETERS
        path = Path(tmp) / ("t.h5" if large else "t.tfm")
        try:
            sitk.WriteTransform(transform, str(path))
        except RuntimeError as exc:
            raise SessionError(f"Cannot store the transform '{transform.GetName()}' in a session: "
                               f"{str(exc).strip().splitlines()[-1][:200]}") from None
        if large:
            return {"encoding": "itk-hdf5-base64", "data": base64.b64encode(path.read_bytes()).decode("ascii")}
        return {"encoding": "itk-text", "data": path.read_text(encoding="utf-8")}


def transform_from_json(entry: Any, where: str) -> sitk.Transform:
    """Decode `transform_to_json`'s output; `where` names the file and key for errors."""
    if not isinstance(entry, dict) or "encoding" not in entry or "data" not in entry:
        raise SessionError(f"{where}: a transform must be an object with 'encoding' and 'data'")
    encoding = entry["encoding"]
    suffixes = {"itk-text": ".tfm", "itk-hdf5-base64": ".h5"}
    if encoding not in suffixes:
        raise SessionError(f"{where}: unknown transform encoding '{encoding}'")
    with tempfile.TemporaryDirectory(prefix="regviewer-tx-") as tmp:
        path = Path(tmp) / ("t" + suffixes[encoding])
        try:
            if encoding == "itk-text":
                path.write_text(str(entry["data"]), encoding="utf-8")
            else:
                path.write_bytes(base64.b64decode(str(entry["data"]), validate=True))
            transform = sitk.ReadTransform(str(path))
        except (RuntimeError, ValueError):
            raise SessionError(f"{where}: the transform data is damaged and cannot be read") from None
    if encoding == "itk-text":
        from regviewer.core.transforms.io import itk_text_problem

        problem = itk_text_problem(str(entry["data"]), transform)
        if problem:
            raise SessionError(f"{where}: the transform data is damaged: {problem}")
    return transform


# --------------------------------------------------------------------------- the model
@dataclass
class Session:
    """What a user made. Paths are absolute when saved; `transforms` map fixed→moving.

    `transforms` is keyed by role: "current" is the transform shown in the window.
    `landmarks` is `LandmarkSet.to_dict()` (or None); `parts` holds any other named
    state (view state, parameters, panel state) as JSON-compatible dicts.
    """

    fixed_path: str | None = None
    moving_path: str | None = None
    transforms: dict[str, sitk.Transform] = field(default_factory=dict)
    landmarks: dict | None = None
    parameters: dict = field(default_factory=dict)
    view_state: dict = field(default_factory=dict)
    parts: dict[str, dict] = field(default_factory=dict)

    # ---- JSON
    def to_dict(self, base_dir: str | Path | None = None) -> dict:
        """A JSON-ready dict. Image paths are stored absolute, and also relative to
        `base_dir` (the session's folder) so a moved project folder still opens."""
        def image_entry(path: str | None) -> dict | None:
            if not path:
                return None
            absolute = os.path.abspath(path)
            entry = {"path": absolute}
            if base_dir is not None:
                try:
                    entry["relative"] = os.path.relpath(absolute, os.path.abspath(base_dir))
                except ValueError:  # different drive on Windows
                    pass
            return entry

        return {
            "format": SESSION_FORMAT,
            "version": SESSION_VERSION,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "images": {"fixed": image_entry(self.fixed_path), "moving": image_entry(self.moving_path)},
            "transforms_direction": "fixed_to_moving",
            "transforms": {name: transform_to_json(t) for name, t in self.transforms.items()},
            "landmarks": self.landmarks,
            "parameters": self.parameters,
            "view_state": self.view_state,
            "parts": self.parts,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "session", base_dir: str | Path | None = None) -> "Session":
        """Inverse of `to_dict`; `source` names the file in error messages."""
        if not isinstance(data, dict):
            raise SessionError(f"Cannot open session '{source}': it is not a regviewer session (not a JSON object)")
        if data.get("format") != SESSION_FORMAT:
            raise SessionError(f"Cannot open session '{source}': it is not a regviewer session "
                               f"(missing \"format\": \"{SESSION_FORMAT}\")")
        version = data.get("version")
        if not isinstance(version, int) or version > SESSION_VERSION:
            raise SessionError(f"Cannot open session '{source}': it was written by a newer regviewer "
                               f"(session version {version!r}; this one reads up to {SESSION_VERSION})")
        images = data.get("images") or {}
        if not isinstance(images, dict):
            raise SessionError(f"Cannot open session '{source}': 'images' must be an object")
        transforms = data.get("transforms") or {}
        if not isinstance(transforms, dict):
            raise SessionError(f"Cannot open session '{source}': 'transforms' must be an object")
        for key in ("parameters", "view_state", "parts"):
            if not isinstance(data.get(key) or {}, dict):
                raise SessionError(f"Cannot open session '{source}': '{key}' must be an object")
        landmarks = data.get("landmarks")
        if landmarks is not None and not isinstance(landmarks, dict):
            raise SessionError(f"Cannot open session '{source}': 'landmarks' must be an object")
        return cls(
            fixed_path=_resolve_image(images.get("fixed"), source, "fixed", base_dir),
            moving_path=_resolve_image(images.get("moving"), source, "moving", base_dir),
            transforms={str(name): transform_from_json(entry, f"Cannot open session '{source}', transform '{name}'")
                        for name, entry in transforms.items()},
            landmarks=landmarks,
            parameters=dict(data.get("parameters") or {}),
            view_state=dict(data.get("view_state") or {}),
            parts=dict(data.get("parts") or {}),
        )

    # ---- files
    def save(self, path: str | Path) -> Path:
        """Write atomically (a crash never leaves half a session). Returns the path."""
        p = Path(path)
        try:
            text = json.dumps(self.to_dict(base_dir=p.parent), indent=1, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SessionError(f"Cannot save session '{p}': some state is not JSON data ({exc})") from None
        try:
            atomic_write_text(p, text)
        except OSError as exc:
            raise SessionError(f"Cannot save session '{p}': {exc.strerror or exc}") from None
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Session":
        """Read a session file; every problem is a `SessionError` naming the file."""
        p = Path(path)
        if not p.exists():
            raise SessionError(f"Cannot open session '{p}': the file does not exist")
        if p.is_dir():
            raise SessionError(f"Cannot open session '{p}': it is a folder, not a session file")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SessionError(f"Cannot open session '{p}': {getattr(exc, 'strerror', None) or exc}") from None
        if not text.strip():
            raise SessionError(f"Cannot open session '{p}': the file is empty")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SessionError(f"Cannot open session '{p}': it is not valid JSON "
                               f"({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        except RecursionError:
            raise SessionError(f"Cannot open session '{p}': its JSON is nested too deeply to be a session") from None
        return cls.from_dict(data, source=str(p), base_dir=p.parent)


def _resolve_image(entry: Any, source: str, role: str, base_dir: str | Path | None) -> str | None:
    """The stored absolute path if it exists, else the relative one if that exists
    (the session folder moved), else the absolute one (the window reports it missing)."""
    if entry is None:
        return None
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise SessionError(f"Cannot open session '{source}': the {role} image entry has no 'path'")
    absolute = entry["path"]
    relative = entry.get("relative")
    if not os.path.exists(absolute) and isinstance(relative, str) and base_dir is not None:
        candidate = os.path.normpath(os.path.join(os.path.abspath(base_dir), relative))
        if os.path.exists(candidate):
            return candidate
    return absolute


# --------------------------------------------------------------------------- recovery
def recovery_dir() -> Path:
    """Where autosaves live: $REGVIEWER_RECOVERY_DIR, else
    $XDG_DATA_HOME/regviewer/recovery, else ~/.local/share/regviewer/recovery."""
    override = os.environ.get("REGVIEWER_RECOVERY_DIR")
    if override:
        return Path(override)
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "regviewer" / "recovery"


@dataclass(frozen=True)
class RecoveryCandidate:
    """An autosave left by a run that did not exit cleanly."""

    autosave_path: Path
    lock_path: Path
    pid: int | None
    saved_at: float  # seconds since the epoch (file modification time)
    fixed_path: str | None
    moving_path: str | None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved_at))
        names = " + ".join(os.path.basename(p) for p in (self.fixed_path, self.moving_path) if p) or "no images"
        return f"{names}, autosaved {when}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


class RecoveryManager:
    """One run's autosave and the detection of crashed runs.

    `start()` writes `run-<pid>.lock` (pid and host); `autosave(session)` writes
    `autosave-<pid>.json`; `finish()` (clean exit) removes both. A run crashed if its
    lock names a process on this host that no longer exists, or its autosave has no lock.
    """

    def __init__(self, directory: str | Path | None = None, pid: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else recovery_dir()
        self.pid = os.getpid() if pid is None else pid
        self.host = socket.gethostname()
        self.started = False

    @property
    def lock_path(self) -> Path:
        return self.directory / f"run-{self.pid}.lock"

    @property
    def autosave_path(self) -> Path:
        return self.directory / f"autosave-{self.pid}.json"

    def start(self) -> None:
        """Mark this run alive. Failing to write the marker must not stop the app."""
        try:
            atomic_write_text(self.lock_path, json.dumps({"pid": self.pid, "host": self.host, "started": time.time()}))
            self.started = True
        except OSError:
            self.started = False

    def autosave(self, session: Session) -> Path:
        """Write this run's recovery file atomically (paths stored absolute)."""
        if not self.started:
            self.start()
        try:
            text = json.dumps(session.to_dict(), allow_nan=False)
            atomic_write_text(self.autosave_path, text)
        except (OSError, TypeError, ValueError) as exc:
            raise SessionError(f"Cannot write the recovery file '{self.autosave_path}': {exc}") from None
        return self.autosave_path

    def clear_autosave(self) -> None:
        """The user saved: nothing is left to recover, but the run is still alive."""
        try:
            self.autosave_path.unlink()
        except OSError:
            pass

    def finish(self) -> None:
        """Clean exit: this run leaves nothing to recover. Autosave first, lock last,
        so an interruption in between still looks like a crash with nothing lost."""
        for path in (self.autosave_path, self.lock_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass
        self.started = False

    def crashed_runs(self) -> list[RecoveryCandidate]:
        """Autosaves of other runs that ended without `finish()`, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for autosave in self.directory.glob("autosave-*.json"):
            pid = _pid_from_name(autosave.name, "autosave-", ".json")
            if pid == self.pid:
                continue
            lock = self.directory / f"run-{pid}.lock"
            if lock.exists() and self._run_alive(lock):
                continue
            fixed = moving = None
            try:
                images = json.loads(autosave.read_text(encoding="utf-8")).get("images") or {}
                fixed = (images.get("fixed") or {}).get("path")
                moving = (images.get("moving") or {}).get("path")
            except (OSError, ValueError, AttributeError):
                pass  # still offered: loading it will explain what is wrong
            try:
                saved_at = autosave.stat().st_mtime
            except OSError:
                continue
            found.append(RecoveryCandidate(autosave, lock, pid, saved_at, fixed, moving))
        return sorted(found, key=lambda c: c.saved_at, reverse=True)

    def _run_alive(self, lock: Path) -> bool:
        try:
            info = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if info.get("host") != self.host:
            return True  # another machine sharing the folder: not ours to judge
        pid = info.get("pid")
        return isinstance(pid, int) and _pid_alive(pid)

    def recover(self, candidate: RecoveryCandidate) -> Session:
        """Load a crashed run's autosave (raises `SessionError` if it is damaged)."""
        return Session.load(candidate.autosave_path)

    def discard(self, candidate: RecoveryCandidate) -> None:
        """Remove a crashed run's files (after recovering it, or when the user declines)."""
        for path in (candidate.autosave_path, candidate.lock_path):
            try:
                path.unlink()
            except OSError:
                pass

    def stale_locks(self) -> list[Path]:
        """Locks of dead runs that left no autosave (nothing to recover; safe to delete)."""
        if not self.directory.is_dir():
            return []
        stale = []
        for lock in self.directory.glob("run-*.lock"):
            pid = _pid_from_name(lock.name, "run-", ".lock")
            if pid == self.pid or (self.directory / f"autosave-{pid}.json").exists():
                continue
            if not self._run_alive(lock):
                stale.append(lock)
        return stale


def _pid_from_name(name: str, prefix: str, suffix: str) -> int | None:
    try:
        return int(name[len(prefix):-len(suffix)])
    except ValueError:
        return None
