"""Landmark pairs: the model the landmark panel, the CLI and scripts share.

A `LandmarkSet` is an ordered list of `LandmarkPair`s. Each pair has a name, a
point on the FIXED image and one on the MOVING image, both physical LPS
millimetres (never voxel indices), an enabled flag and a weight. A pair may be
half-made: the fixed point placed, the moving one not yet (``None``).

Every edit is one command on `LandmarkSet.undo_stack` (a core `UndoStack`), so
Ctrl+Z in the window and ``landmarks.undo_stack.undo()`` in a script are the same
thing. Observers register plain callbacks with `subscribe`; nothing here knows Qt.

Fits (`fit`) map fixed → moving points, like every transform in regviewer:
``fit(landmarks, "affine").transform.TransformPoint(pair.fixed) ≈ pair.moving``.

Example::

    lm = load_landmarks("pairs.csv")
    result = fit(lm, "rigid")
    print(result.rms_mm, result.loo_errors_mm, result.flagged)
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

from regviewer.core.landmarks import formats as landmark_formats
from regviewer.core.errors import LandmarkFileError, LandmarkEditError
from regviewer.core.landmarks.errors import LandmarkErrors, landmark_errors
from regviewer.core.landmarks.fitting import MODELS, LandmarkFit, fit
from regviewer.core.workspace.undo import Command, UndoStack

Point = tuple[float, ...]


@dataclass(frozen=True)
class LandmarkPair:
    """One pair: `fixed` and `moving` are physical LPS mm tuples, or None if not placed yet.

    Immutable: an edit replaces the pair, which is what makes undo exact.
    `weight` (>= 0) scales the pair's squared error in least-squares fits.
    """

    name: str
    fixed: Point | None = None
    moving: Point | None = None
    enabled: bool = True
    weight: float = 1.0

    @property
    def complete(self) -> bool:
        """Both points placed."""
        return self.fixed is not None and self.moving is not None

    def point(self, role: str) -> Point | None:
        """The 'fixed' or 'moving' point."""
        if role not in ("fixed", "moving"):
            raise ValueError(f"role must be 'fixed' or 'moving', not {role!r}")
        return self.fixed if role == "fixed" else self.moving

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fixed": None if self.fixed is None else list(self.fixed),
            "moving": None if self.moving is None else list(self.moving),
            "enabled": self.enabled,
            "weight": self.weight,
        }


class LandmarkSet:
    """An ordered set of landmark pairs in `dimension` (2 or 3) with undoable edits.

    `undo_stack` may be shared with other models (one window-wide history); by
    default each set has its own. Names are unique within a set (Slicer files match
    the two images' points by name).
    """

    def __init__(self, dimension: int = 3, pairs: Iterable[LandmarkPair] = (), undo_stack: UndoStack | None = None) -> None:
        if dimension not in (2, 3):
            raise LandmarkEditError(f"landmarks must be 2D or 3D, not {dimension}D")
        self._dimension = dimension
        checked: list[LandmarkPair] = []
        names: set[str] = set()  # a set, not a scan of `checked`: 500,000 pairs load in seconds
        for pair in pairs:
            checked.append(self._checked(pair, (), names))
            names.add(checked[-1].name)
        self._pairs: tuple[LandmarkPair, ...] = tuple(checked)
        self.undo_stack = undo_stack if undo_stack is not None else UndoStack()
        self._version = 0
        self._notified_version = 0
        self._subscribers: list[Callable[[], None]] = []
        # A weak link, so a set dropped by its owner does not live on in a shared stack's
        # subscriber list once its commands are gone from the history.
        this, stack = weakref.ref(self), self.undo_stack

        def relay() -> None:
            target = this()
            if target is None:
                stack.unsubscribe(relay)
            else:
                target._on_history_changed()

        stack.subscribe(relay)

    # --- reading ------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def pairs(self) -> list[LandmarkPair]:
        """The pairs in order (a copy of the list; the pairs themselves are immutable)."""
        return list(self._pairs)

    @property
    def version(self) -> int:
        """Increases on every change (including undo/redo): a cheap 'has it changed?' key."""
        return self._version

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index: int) -> LandmarkPair:
        return self._pairs[index]

    def __iter__(self) -> Iterator[LandmarkPair]:
        return iter(self._pairs)

    def index_of(self, name: str) -> int:
        for i, pair in enumerate(self._pairs):
            if pair.name == name:
                return i
        raise KeyError(f"no landmark named {name!r}")

    def names(self) -> list[str]:
        return [p.name for p in self._pairs]

    # --- edits (each one undoable command) ---------------------------------------------
    def add_pair(self, fixed: Sequence[float] | None = None, moving: Sequence[float] | None = None,
                 name: str | None = None, *, enabled: bool = True, weight: float = 1.0,
                 index: int | None = None) -> int:
        """Add a pair (either point may be None: a half-made pair); returns its index.

        `name` defaults to the first free 'L<n>'; `index` defaults to the end.
        """
        if name is None:
            name = self._free_name()
        pair = self._checked(LandmarkPair(name, _as_point(fixed), _as_point(moving), bool(enabled), weight), self._pairs)
        at = len(self._pairs) if index is None else self._insert_index(index)
        new = self._pairs[:at] + (pair,) + self._pairs[at:]
        self._apply(new, f"Add landmark {name}")
        return at

    def set_fixed(self, i: int, point: Sequence[float] | None, *, merge_id: Hashable | None = None) -> None:
        """Move (or with None, remove) pair i's fixed point. Consecutive calls with the
        same non-None `merge_id` (e.g. one marker drag) form one undo step."""
        self.set_point(i, "fixed", point, merge_id=merge_id)

    def set_moving(self, i: int, point: Sequence[float] | None, *, merge_id: Hashable | None = None) -> None:
        """Move (or with None, remove) pair i's moving point (moving image's LPS mm)."""
        self.set_point(i, "moving", point, merge_id=merge_id)

    def set_point(self, i: int, role: str, point: Sequence[float] | None, *, merge_id: Hashable | None = None) -> None:
        """`set_fixed` / `set_moving` with the role as a string ('fixed' or 'moving')."""
        old = self._pair(i)
        if role not in ("fixed", "moving"):
            raise LandmarkEditError(f"a landmark point is 'fixed' or 'moving', not {role!r}")
        pair = self._checked(replace(old, **{role: _as_point(point)}), ())
        merge_key = None if merge_id is None else ("landmark-point", id(self), i, role, merge_id)
        self._replace(i, pair, f"Move {role} point of {old.name}", merge_key)

    def rename(self, i: int, name: str) -> None:
        i = self._index(i)
        old = self._pairs[i]
        others = self._pairs[:i] + self._pairs[i + 1:]
        self._replace(i, self._checked(replace(old, name=name), others), f"Rename {old.name} to {name}")

    def set_enabled(self, i: int, flag: bool) -> None:
        old = self._pair(i)
        self._replace(i, replace(old, enabled=bool(flag)), f"{'Enable' if flag else 'Disable'} {old.name}")

    def set_weight(self, i: int, weight: float) -> None:
        old = self._pair(i)
        self._replace(i, self._checked(replace(old, weight=weight), ()), f"Set weight of {old.name}")

    def delete(self, i: int) -> LandmarkPair:
        """Remove pair i and return it."""
        i = self._index(i)
        old = self._pairs[i]
        self._apply(self._pairs[:i] + self._pairs[i + 1:], f"Delete landmark {old.name}")
        return old

    def move_pair(self, i: int, new_index: int) -> None:
        """Reorder: pair i ends up at position `new_index`."""
        i = self._index(i)
        old = self._pairs[i]
        rest = self._pairs[:i] + self._pairs[i + 1:]
        if not -len(self._pairs) <= new_index < len(self._pairs):
            raise IndexError(f"cannot move landmark to position {new_index}: there are {len(self._pairs)} pairs")
        new_index %= len(self._pairs)
        if new_index == i:
            return
        self._apply(rest[:new_index] + (old,) + rest[new_index:], f"Move landmark {old.name} to row {new_index + 1}")

    def replace_all(self, pairs: Iterable[LandmarkPair], description: str = "Replace landmarks") -> None:
        """Replace every pair at once (e.g. an import), as one undo step."""
        checked: list[LandmarkPair] = []
        names: set[str] = set()  # a set, not a scan of `checked`: 500,000 pairs load in seconds
        for pair in pairs:
            checked.append(self._checked(pair, (), names))
            names.add(checked[-1].name)
        self._apply(tuple(checked), description)

    def clear(self) -> None:
        """Delete every pair (one undo step)."""
        if self._pairs:
            self._apply((), "Delete all landmarks")

    # --- observers ----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (no arguments) after every change, including undo and redo."""
        if callback not in self._subscribers:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    # --- files and sessions ---------------------------------------------------------------
    def save(self, path: str | Path, moving_path: str | Path | None = None, *, format: str | None = None,
             coordinate_system: str = "LPS") -> None:
        """Write the pairs to `path` (format from the suffix, or `format`), atomically.

        Slicer markups (.mrk.json, .fcsv) hold one image's points per file: `path`
        gets the fixed points and `moving_path` the moving ones. ``format="bigwarp"``
        writes a BigWarp landmarks CSV; `coordinate_system` ("LPS"/"RAS") applies to
        Slicer files. See `landmark_formats` for every format. Raises `ImageWriteError`.
        """
        landmark_formats.write_landmarks(self._pairs, self._dimension, path, moving_path, format=format,
                                         coordinate_system=coordinate_system)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data for the session file (points in LPS mm)."""
        return {"dimension": self._dimension, "pairs": [p.to_dict() for p in self._pairs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], undo_stack: UndoStack | None = None) -> "LandmarkSet":
        """Inverse of `to_dict`; raises `LandmarkEditError` for malformed data."""
        try:
            dimension = int(data.get("dimension", 3))
            pairs = [pair_from_dict(p) for p in data.get("pairs", [])]
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise LandmarkEditError(f"the landmark data is malformed ({exc})") from None
        return cls(dimension, pairs, undo_stack)

    def copy(self) -> "LandmarkSet":
        """An independent set with the same pairs and a fresh history."""
        return LandmarkSet(self._dimension, self._pairs)

    def __repr__(self) -> str:
        return f"LandmarkSet({self._dimension}D, {len(self._pairs)} pairs)"

    # --- internals ------------------------------------------------------------------------
    def _pair(self, i: int) -> LandmarkPair:
        return self._pairs[self._index(i)]

    def _index(self, i: int) -> int:
        """`i` as a position 0..n-1 (negative counts from the end, as in Python)."""
        if not -len(self._pairs) <= i < len(self._pairs):
            raise IndexError(f"there is no landmark pair {i} (the set has {len(self._pairs)})")
        return i % len(self._pairs)

    def _insert_index(self, index: int) -> int:
        n = len(self._pairs)
        if not -n <= index <= n:
            raise IndexError(f"cannot insert a landmark at position {index}: there are {n} pairs")
        return index % (n + 1) if index < 0 else index

    def _replace(self, i: int, pair: LandmarkPair, description: str, merge_key: Hashable | None = None) -> None:
        i %= len(self._pairs)
        if self._pairs[i] == pair:
            return
        self._apply(self._pairs[:i] + (pair,) + self._pairs[i + 1:], description, merge_key)

    def _apply(self, new: tuple[LandmarkPair, ...], description: str, merge_key: Hashable | None = None) -> None:
        old = self._pairs
        self.undo_stack.push(Command(description, lambda: self._set(new), lambda: self._set(old), merge_key))

    def _set(self, pairs: tuple[LandmarkPair, ...]) -> None:
        self._pairs = pairs
        self._version += 1

    def _on_history_changed(self) -> None:
        # The stack calls this after it is consistent again; notify only when OUR pairs
        # changed (a shared stack also carries other models' edits).
        if self._version != self._notified_version:
            self._notified_version = self._version
            for callback in list(self._subscribers):
                callback()

    def next_name(self) -> str:
        """The name `add_pair` would give a new pair (the picking flow proposes it)."""
        return self._free_name()

    def _free_name(self) -> str:
        taken = {p.name for p in self._pairs}
        n = len(self._pairs) + 1
        while f"L{n}" in taken:
            n += 1
        return f"L{n}"

    def _checked(self, pair: LandmarkPair, others: Iterable[LandmarkPair], taken: set[str] | None = None) -> LandmarkPair:
        """Validate a pair (name, points' dimension and finiteness, weight) before it enters the set."""
        name = pair.name.strip() if isinstance(pair.name, str) else ""
        if not name:
            raise LandmarkEditError("a landmark needs a non-empty name")
        if (taken is not None and name in taken) or any(o.name == name for o in others):
            raise LandmarkEditError(f"the name {name!r} is already used by another landmark; names must be unique")
        for role in ("fixed", "moving"):
            p = _as_point(getattr(pair, role))
            if p is not None and len(p) != self._dimension:
                raise LandmarkEditError(f"landmark {name}: the {role} point {p} has {len(p)} coordinates; "
                                        f"this is a {self._dimension}D landmark set")
            pair = replace(pair, **{role: p})
        try:
            weight = float(pair.weight)
        except (TypeError, ValueError):
            raise LandmarkEditError(f"landmark {name}: the weight {pair.weight!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise LandmarkEditError(f"landmark {name}: the weight must be a finite number >= 0, not {weight}")
        return replace(pair, name=name, weight=weight, enabled=bool(pair.enabled))


def pair_from_dict(data: dict[str, Any]) -> LandmarkPair:
    """A `LandmarkPair` from `LandmarkPair.to_dict()` data (points validated for NaN)."""
    return LandmarkPair(
        name=str(data["name"]),
        fixed=_as_point(data.get("fixed")),
        moving=_as_point(data.get("moving")),
        enabled=bool(data.get("enabled", True)),
        weight=float(data.get("weight", 1.0)),
    )


def _as_point(point: Sequence[float] | None) -> Point | None:
    """A tuple of finite floats, or None. Raises `LandmarkEditError` for NaN/inf/non-numbers."""
    if point is None:
        return None
    try:
        values = tuple(float(v) for v in point)
    except (TypeError, ValueError):
        raise LandmarkEditError(f"a landmark point must be a sequence of numbers, not {point!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise LandmarkEditError(f"a landmark point must have finite coordinates, not {values}")
    return values


def load_landmarks(path: str | Path, moving_path: str | Path | None = None, *, format: str | None = None,
                   match: str = "label") -> LandmarkSet:
    """Read landmark pairs from a file (points become LPS mm, whatever the file used).

    Formats (by suffix, or `format`): our CSV (header ``name,enabled,fixed_x,...``),
    BigWarp CSV (no header; moving point first), Slicer ``.mrk.json`` and ``.fcsv``
    (one file per image: `path` = fixed points, `moving_path` = moving points, pairs
    matched by label, or by order with ``match="order"``), and regviewer ``.json``.
    Raises `LandmarkFileError` naming the file and line for anything malformed.
    """
    dimension, records = landmark_formats.read_landmarks(path, moving_path, format=format, match=match)
    try:
        return LandmarkSet(dimension, [LandmarkPair(**r) for r in records])
    except LandmarkEditError as exc:  # a value the reader let through: still name the file
        raise LandmarkFileError(path, str(exc)) from None


__all__ = [
    "LandmarkPair",
    "LandmarkSet",
    "LandmarkFit",
    "LandmarkErrors",
    "MODELS",
    "fit",
    "landmark_errors",
    "load_landmarks",
    "pair_from_dict",
]
