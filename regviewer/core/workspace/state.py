"""Plain data the Workspace holds: where a transform came from, the transform state an
undo step restores, the registration settings, and plain-callback events.

All frozen or immutable, so an undo step can keep a state without copying it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import SimpleITK as sitk

from regviewer.core.transforms.manual import ManualAlignment

SOURCE_KINDS = ("identity", "manual", "landmark-fit", "run", "file", "session", "script")


@dataclass(frozen=True)
class TransformSource:
    """Where the current transform came from: a manual move, a landmark fit (and its
    model), a registration run (its number), a file (its path), a script."""

    kind: str = "identity"
    model: str | None = None  # landmark-fit model ("rigid", "affine", "tps", ...)
    run: int | None = None  # run number in the run history
    path: str | None = None  # file the transform was read from

    def describe(self) -> str:
        if self.kind == "landmark-fit":
            return f"landmark fit ({self.model})" if self.model else "landmark fit"
        if self.kind == "run":
            return f"run {self.run}" if self.run is not None else "registration run"
        if self.kind == "file":
            return f"file {self.path}" if self.path else "file"
        return self.kind

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Any) -> "TransformSource":
        if not isinstance(data, dict):
            return cls()
        kind = data.get("kind") if data.get("kind") in SOURCE_KINDS else "script"
        run = data.get("run")
        return cls(kind, data.get("model"), int(run) if isinstance(run, (int, float)) else None, data.get("path"))


@dataclass(frozen=True, eq=False)
class TransformState:
    """What one undo step restores: the fixed→moving transform, its source, and the manual
    move shown in the manual-alignment fields (`manual`, applied on top of `manual_base`:
    transform = manual_base ∘ M⁻¹, see `core.transforms.manual`)."""

    transform: sitk.Transform
    source: TransformSource
    manual: ManualAlignment
    manual_base: sitk.Transform | None = None


@dataclass(frozen=True)
class RegistrationSettings:
    """The settings the next run uses: a preset name or a full pipeline (Pipeline.to_dict()),
    the seed and optional mask files."""

    preset: str | None = None
    pipeline: dict | None = None
    seed: int = 0
    fixed_mask: str | None = None
    moving_mask: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "RegistrationSettings":
        if not isinstance(data, dict):
            return cls()
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Event:
    """A plain-callback event: `connect(cb)`, and `emit(value)` calls each cb(value).
    A callback that raises does not stop the others; the first error is re-raised after."""

    name: str
    _callbacks: list[Callable[[Any], None]] = field(default_factory=list)

    def connect(self, callback: Callable[[Any], None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[Any], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: Any = None) -> None:
        error: BaseException | None = None
        for callback in list(self._callbacks):
            try:
                callback(value)
            except Exception as exc:  # noqa: BLE001 -- one bad observer must not starve the rest
                error = error or exc
        if error is not None:
            raise error


class WorkspaceEvents:
    """One event per Workspace field. Each change of a field emits its event exactly once."""

    NAMES = ("images", "transform", "preview", "landmarks", "settings", "runs", "view_state", "qa", "history",
             "roi")

    def __init__(self) -> None:
        for name in self.NAMES:
            setattr(self, name, Event(name))

    def __iter__(self):
        return (getattr(self, name) for name in self.NAMES)


__all__ = ["SOURCE_KINDS", "TransformSource", "TransformState", "RegistrationSettings", "Event", "WorkspaceEvents"]
