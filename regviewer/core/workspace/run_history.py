"""The runs a user made in this session, so they can be compared and any one restored.

Each `RunRecord` keeps what is needed to judge and to redo a run: its parameters, the
transform it started from and the one it produced (both FIXED → MOVING, ITK's
resampling direction), the final metric, the wall time, why it stopped, and the
landmark target registration error (mm) when landmarks existed. Records round-trip
through plain JSON (transforms embedded as in session files) so the history is saved
with the session. No Qt: the live-registration panel only displays this model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import SimpleITK as sitk

from regviewer.core.errors import SessionError
from regviewer.core.qa.tre import point_errors, summarise
from regviewer.core.workspace.session import transform_from_json, transform_to_json


@dataclass
class RunRecord:
    """One finished (or cancelled) registration run.

    `transform` and `initial_transform` map fixed → moving. `metric_curve` holds
    (stage, level, iteration, metric) per optimiser iteration. `tre_mm` is
    {"mean": ..., "max": ..., "n": ...} from the enabled landmark pairs, or None.
    """

    number: int
    params: dict  # Pipeline.to_dict()
    transform: sitk.Transform
    initial_transform: sitk.Transform | None = None
    preset: str | None = None
    final_metric: float | None = None
    elapsed_s: float = 0.0
    stop_reason: str = ""
    cancelled: bool = False
    tre_mm: dict | None = None
    seed: int = 0
    started_at: float = field(default_factory=time.time)
    metric_curve: list[tuple[int, int, int, float]] = field(default_factory=list)
    note: str = ""
    inputs: dict = field(default_factory=dict)  # file paths used: fixed, moving, fixed_mask, moving_mask

    @property
    def label(self) -> str:
        return f"Run {self.number}"

    def summary(self) -> dict[str, Any]:
        """One row for a comparison table: plain numbers and words."""
        stages = [s.get("transform", {}).get("kind", "?") for s in self.params.get("stages", [])]
        return {
            "run": self.number,
            "preset": self.preset or self.params.get("name", "custom"),
            "stages": " → ".join(stages),
            "final_metric": self.final_metric,
            "time_s": round(self.elapsed_s, 2),
            "tre_mean_mm": None if not self.tre_mm else self.tre_mm.get("mean"),
            "tre_max_mm": None if not self.tre_mm else self.tre_mm.get("max"),
            "status": "cancelled" if self.cancelled else "finished",
            "stop_reason": self.stop_reason,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": self.params,
            "transform": transform_to_json(self.transform),
            "initial_transform": None if self.initial_transform is None else transform_to_json(self.initial_transform),
            "preset": self.preset,
            "final_metric": _finite_or_none(self.final_metric),
            "elapsed_s": self.elapsed_s,
            "stop_reason": self.stop_reason,
            "cancelled": self.cancelled,
            "tre_mm": self.tre_mm,
            "seed": self.seed,
            "started_at": self.started_at,
            "metric_curve": [list(row) for row in self.metric_curve],
            "note": self.note,
            "inputs": self.inputs,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "run history") -> "RunRecord":
        if not isinstance(data, dict) or "number" not in data or "transform" not in data:
            raise SessionError(f"{where}: a run must be an object with at least 'number' and 'transform'")
        initial = data.get("initial_transform")
        try:
            return cls(
                number=int(data["number"]),
                params=dict(data.get("params") or {}),
                transform=transform_from_json(data["transform"], f"{where}.transform"),
                initial_transform=None if initial is None else transform_from_json(initial, f"{where}.initial_transform"),
                preset=data.get("preset"),
                final_metric=data.get("final_metric"),
                elapsed_s=float(data.get("elapsed_s", 0.0)),
                stop_reason=str(data.get("stop_reason", "")),
                cancelled=bool(data.get("cancelled", False)),
                tre_mm=data.get("tre_mm"),
                seed=int(data.get("seed", 0)),
                started_at=float(data.get("started_at", 0.0)),
                metric_curve=[(int(a), int(b), int(c), float(d)) for a, b, c, d in data.get("metric_curve", [])],
                note=str(data.get("note", "")),
                inputs=dict(data.get("inputs") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise SessionError(f"{where}: run {data.get('number')} is malformed ({exc})") from None


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def record_from_result(
    result: Any,
    number: int,
    initial_transform: sitk.Transform | None = None,
    preset: str | None = None,
    seed: int = 0,
    landmarks: Any = None,
    started_at: float | None = None,
    inputs: dict | None = None,
) -> RunRecord:
    """Build a record from an engine `RegistrationResult` (duck-typed: transform,
    history, stop_reason, elapsed, params, cancelled)."""
    history = list(getattr(result, "history", []) or [])
    curve = [(h.stage, h.level, h.iteration, float(h.metric)) for h in history]
    params = result.params.to_dict() if hasattr(result.params, "to_dict") else dict(result.params or {})
    return RunRecord(
        number=number,
        params=params,
        transform=result.transform,
        initial_transform=initial_transform,
        preset=preset,
        final_metric=_finite_or_none(curve[-1][3]) if curve else None,
        elapsed_s=float(getattr(result, "elapsed", 0.0)),
        stop_reason=str(getattr(result, "stop_reason", "")),
        cancelled=bool(getattr(result, "cancelled", False)),
        tre_mm=landmark_tre(result.transform, landmarks),
        seed=seed,
        started_at=time.time() if started_at is None else started_at,
        metric_curve=curve,
        inputs=dict(inputs or {}),
    )


def landmark_tre(transform: sitk.Transform, landmarks: Any) -> dict | None:
    """Mean / max distance (mm, in MOVING space) between T(fixed landmark) and the moving
    landmark over enabled pairs; None without landmarks.

    Anything with `.pairs` (each with .fixed, .moving and optionally .enabled) will do, so a
    stored run can be re-scored against a plain list of pairs.
    """
    if landmarks is None:
        return None
    used = [p for p in getattr(landmarks, "pairs", []) or []
            if getattr(p, "enabled", True) and p.fixed is not None and p.moving is not None]
    s = summarise(point_errors(transform, [p.fixed for p in used], [p.moving for p in used])) if used else summarise([])
    if s.n == 0:
        return None
    return {"mean": s.mean_mm, "max": s.max_mm, "n": s.n}


class RunHistory:
    """An ordered list of runs with change notification (callbacks get no arguments)."""

    def __init__(self) -> None:
        self._records: list[RunRecord] = []
        self._next = 1
        self._subscribers: list[Callable[[], None]] = []
        self._encoded: dict[tuple[int, int], dict] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):
        return iter(list(self._records))

    @property
    def records(self) -> list[RunRecord]:
        return list(self._records)

    def next_number(self) -> int:
        return self._next

    def add(self, record: RunRecord) -> RunRecord:
        self._records.append(record)
        self._next = max(self._next, record.number + 1)
        self._notify()
        return record

    def add_result(self, result: Any, **kwargs: Any) -> RunRecord:
        """`record_from_result` with the next run number, then `add`."""
        return self.add(record_from_result(result, self._next, **kwargs))

    def get(self, number: int) -> RunRecord:
        for r in self._records:
            if r.number == number:
                return r
        raise KeyError(f"There is no run {number}")

    def remove(self, number: int) -> None:
        self._records = [r for r in self._records if r.number != number]
        self._notify()

    def clear(self) -> None:
        self._records.clear()
        self._notify()

    def best(self, by: str = "tre") -> RunRecord | None:
        """The finished run with the lowest mean TRE (by="tre") or final metric (by="metric")."""
        def key(r: RunRecord) -> float | None:
            if by == "tre":
                return None if not r.tre_mm else r.tre_mm.get("mean")
            return r.final_metric

        scored = [(key(r), r) for r in self._records if key(r) is not None]
        return min(scored, key=lambda kr: kr[0])[1] if scored else None

    def table(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self._records]

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._subscribers.append(callback)

    def _notify(self) -> None:
        for cb in list(self._subscribers):
            cb()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a record's encoding is cached (records do not change once added, and
        autosave asks every 30 s)."""
        runs = []
        for r in self._records:
            key = (r.number, id(r))
            if key not in self._encoded:
                self._encoded[key] = r.to_dict()
            runs.append(self._encoded[key])
        return {"next": self._next, "runs": runs}

    def load_dict(self, data: Any, where: str = "run history") -> None:
        """Replace the runs with those in `data` (from `to_dict`); SessionError if malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("runs", []), list):
            raise SessionError(f"{where}: expected an object with a list of runs")
        records = [RunRecord.from_dict(r, f"{where}.runs[{i}]") for i, r in enumerate(data.get("runs", []))]
        self._records = records
        self._next = max([int(data.get("next", 1))] + [r.number + 1 for r in records])
        self._notify()
