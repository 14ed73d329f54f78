"""The undo history as data, so a session can carry it: reopen a session and Ctrl+Z still
walks back through the runs, fits and moves that led there.

An undo step is a pair of closures, which cannot be saved. The journal watches the
Workspace's history and remembers, for each step, the Workspace's state before and
after it (the transform state, the landmark pairs and the region of interest, all
immutable, so remembering costs no copy). Saving writes those states, each transform once; loading pushes one
command per step that puts the saved states back.
"""

from __future__ import annotations

from typing import Any, Callable

from regviewer.core.errors import ParameterError, SessionError
from regviewer.core.imaging.roi import RegionOfInterest
from regviewer.core.landmarks.model import LandmarkPair, pair_from_dict
from regviewer.core.transforms.manual import ManualAlignment
from regviewer.core.workspace.session import transform_from_json, transform_to_json
from regviewer.core.workspace.state import TransformSource, TransformState
from regviewer.core.workspace.undo import Command, UndoStack

Snapshot = tuple[TransformState, tuple[LandmarkPair, ...], RegionOfInterest | None]
MAX_SAVED_STEPS = 30  # older steps are not written to sessions (each may hold a deformable transform)


class HistoryJournal:
    """Before/after snapshots of every live undo step (see the module docstring)."""

    def __init__(self, history: UndoStack, snapshot: Callable[[], Snapshot]) -> None:
        self._history = history
        self._snapshot = snapshot
        self._steps: dict[int, tuple[Snapshot, Snapshot]] = {}
        self._last = snapshot()
        # Encoding a deformable transform takes time and autosave asks every 30 s: each
        # transform is encoded once (kept with its object so its id stays its own).
        self._encoded: dict[int, tuple[Any, dict]] = {}
        history.subscribe(self._on_change)

    def _on_change(self) -> None:
        now = self._snapshot()
        change, top = self._history.last_change, self._history.top_id
        if change == "push":
            self._steps[top] = (self._last, now)
            done, undone = self._history.steps()
            live = {i for i, _ in done + undone}
            for step_id in [i for i in self._steps if i not in live]:
                del self._steps[step_id]
        elif change == "merge" and top in self._steps:
            self._steps[top] = (self._steps[top][0], now)
        elif change == "clear":
            self._steps.clear()
        self._last = now

    def resync(self) -> None:
        """The model changed outside the history (a region put back from a session): the
        next step's "before" is the state now."""
        self._last = self._snapshot()

    # ------------------------------------------------------------------ saving
    def to_json(self) -> dict:
        """The last MAX_SAVED_STEPS done steps and every redo step, as JSON data."""
        done, undone = self._history.steps()
        done = [s for s in done if s[0] in self._steps][-MAX_SAVED_STEPS:]
        undone = [s for s in undone if s[0] in self._steps][:MAX_SAVED_STEPS]
        states: list[dict] = []
        transforms: list[dict] = []
        state_index: dict[tuple, int] = {}
        transform_index: dict[int, int] = {}

        encoded: dict[int, tuple[Any, dict]] = {}

        def transform_ref(transform) -> int | None:
            if transform is None:
                return None
            key = id(transform)
            if key not in transform_index:
                if key not in self._encoded:
                    self._encoded[key] = (transform, transform_to_json(transform))
                encoded[key] = self._encoded[key]
                transform_index[key] = len(transforms)
                transforms.append(encoded[key][1])
            return transform_index[key]

        def state_ref(snap: Snapshot) -> int:
            key = (id(snap[0]), snap[1], snap[2])
            if key not in state_index:
                state, pairs, roi = snap
                state_index[key] = len(states)
                states.append({"transform": transform_ref(state.transform), "base": transform_ref(state.manual_base),
                               "source": state.source.to_json(), "manual": state.manual.to_json(),
                               "landmarks": [p.to_dict() for p in pairs]})
                if roi is not None:  # None: a step rebuilt from a session that did not record it
                    states[-1]["roi"] = roi.to_json()
            return state_index[key]

        def step(entry: tuple[int, str]) -> dict:
            before, after = self._steps[entry[0]]
            return {"description": entry[1], "before": state_ref(before), "after": state_ref(after)}

        out = {"done": [step(s) for s in done], "undone": [step(s) for s in undone]}
        self._encoded = encoded  # forget transforms no longer in the history
        return {"transforms": transforms, "states": states, **out}

    # ------------------------------------------------------------------ loading
    def rebuild(self, data: Any, apply: Callable[[Snapshot], None], where: str) -> None:
        """Load the saved steps into the history without running them (the Workspace is
        already in the saved current state); `apply` puts a snapshot back on undo/redo."""
        try:
            transforms = [transform_from_json(t, f"{where}, transform {i}") for i, t in enumerate(data["transforms"])]
            states = [self._state_from_json(s, transforms) for s in data["states"]]
            done = [(str(s["description"]), states[s["before"]], states[s["after"]]) for s in data["done"]]
            undone = [(str(s["description"]), states[s["before"]], states[s["after"]]) for s in data["undone"]]
        except (KeyError, IndexError, TypeError, ValueError, ParameterError) as exc:
            raise SessionError(f"{where}: the undo history is malformed ({exc})") from None
        to_command = [Command(d, lambda a=after: apply(a), lambda b=before: apply(b)) for d, before, after in done + undone]
        self._history.load(to_command[:len(done)], to_command[len(done):])
        done_ids, undone_ids = self._history.steps()
        self._steps = {i: (before, after) for (i, _), (_, before, after) in zip(done_ids + undone_ids, done + undone)}
        self._last = self._snapshot()

    @staticmethod
    def _state_from_json(data: dict, transforms: list) -> Snapshot:
        base = data.get("base")
        state = TransformState(transforms[data["transform"]], TransformSource.from_json(data.get("source")),
                               ManualAlignment.from_json(data.get("manual") or {}),
                               None if base is None else transforms[base])
        roi = RegionOfInterest.from_json(data["roi"]) if "roi" in data else None  # None: an older session
        return state, tuple(pair_from_dict(p) for p in data.get("landmarks", [])), roi


__all__ = ["HistoryJournal", "MAX_SAVED_STEPS", "Snapshot"]
