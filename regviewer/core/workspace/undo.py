"""A generic undo/redo stack of commands, with no GUI library.

Any model (the landmark set, the manual-alignment transform, ...) records its
edits here as `Command`s: a description and two callables, `do` and `undo`. The
GUI's Ctrl+Z / Ctrl+Shift+Z and a Python script drive the same stack, so an edit
made from either side can be undone from the other.

Why not Qt's QUndoStack: core must import without Qt, and tests (and the CLI)
exercise undo without a display.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator

Callback = Callable[[], None]


@dataclass(frozen=True)
class Command:
    """One undoable edit. `do()` applies it (again, on redo); `undo()` reverts it.

    Consecutive commands pushed with the same non-None `merge_key` collapse into one
    undo step (a marker drag that sends fifty moves is undone by one Ctrl+Z).
    """

    description: str
    do: Callback
    undo: Callback
    merge_key: Hashable | None = None


class _Step:
    """One entry on the stack: one or more commands undone together."""

    _ids = itertools.count(1)

    def __init__(self, description: str, commands: list[Command], merge_key: Hashable | None = None) -> None:
        self.id = next(self._ids)
        self.description = description
        self.commands = commands
        self.merge_key = merge_key

    def redo(self) -> None:
        for command in self.commands:
            command.do()

    def undo(self) -> None:
        for command in reversed(self.commands):
            command.undo()


class UndoStack:
    """Undo/redo history. `push` applies a command and records it.

    Subscribers (plain callables, no arguments) are called after every push, undo,
    redo or clear, once the history is consistent again, so a callback that raises
    cannot leave the stack half-updated. `limit` bounds the number of undo steps.
    """

    def __init__(self, limit: int | None = 1000) -> None:
        self._done: list[_Step] = []
        self._undone: list[_Step] = []
        self._limit = limit
        self._group: list[Command] | None = None
        self._group_description = ""
        self._group_depth = 0
        self._clean_id: int | None = 0  # 0 = "the empty history" is clean
        self._subscribers: list[Callback] = []
        self.last_change = ""  # what the last notification was about: push, merge, undo, redo, clear, clean

    # --- recording --------------------------------------------------------------
    def push(self, command: Command) -> None:
        """Apply `command.do()` and record it; if `do` raises, nothing is recorded."""
        command.do()
        if self._group is not None:
            self._group.append(command)
            return
        top = self._done[-1] if self._done else None
        if (
            command.merge_key is not None
            and top is not None
            and top.merge_key == command.merge_key
            and top.id != self._clean_id  # merging into the saved state would hide an unsaved change
        ):
            top.commands.append(command)
            self.last_change = "merge"
        else:
            self._done.append(_Step(command.description, [command], command.merge_key))
            if self._limit is not None and len(self._done) > self._limit:
                del self._done[0]
            self.last_change = "push"
        self._undone.clear()
        self._notify()

    @contextlib.contextmanager
    def group(self, description: str) -> Iterator[None]:
        """Record every command pushed inside the block as ONE undo step.

        If the block raises, the commands already applied are undone (the model is
        left as before the block) and the error propagates.
        """
        if self._group is not None:  # nested: the outer group collects everything
            self._group_depth += 1
            try:
                yield
            finally:
                self._group_depth -= 1
            return
        self._group, self._group_description = [], description
        try:
            yield
        except BaseException:
            commands, self._group = self._group, None
            for command in reversed(commands):
                command.undo()
            raise
        commands, self._group = self._group, None
        if commands:
            self._done.append(_Step(description, commands))
            if self._limit is not None and len(self._done) > self._limit:
                del self._done[0]
            self._undone.clear()
            self.last_change = "push"
            self._notify()

    # --- undo / redo -------------------------------------------------------------
    def undo(self) -> str | None:
        """Revert the last step; returns its description, or None when there is none."""
        self._check_not_grouping("undo")
        if not self._done:
            return None
        step = self._done.pop()
        step.undo()
        self._undone.append(step)
        self.last_change = "undo"
        self._notify()
        return step.description

    def redo(self) -> str | None:
        """Re-apply the last undone step; returns its description, or None."""
        self._check_not_grouping("redo")
        if not self._undone:
            return None
        step = self._undone.pop()
        step.redo()
        self._done.append(step)
        self.last_change = "redo"
        self._notify()
        return step.description

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_text(self) -> str:
        """Description of the step Ctrl+Z would revert ('' when none), for a menu label."""
        return self._done[-1].description if self._done else ""

    @property
    def redo_text(self) -> str:
        return self._undone[-1].description if self._undone else ""

    def __len__(self) -> int:
        return len(self._done)

    @property
    def top_id(self) -> int:
        """An id of the step Ctrl+Z would revert (0 when none); stable while that step lives."""
        return self._done[-1].id if self._done else 0

    def steps(self) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """(done, undone) as (id, description) lists: done oldest first, undone in redo order."""
        return ([(s.id, s.description) for s in self._done],
                [(s.id, s.description) for s in reversed(self._undone)])

    def clear(self) -> None:
        """Forget the whole history (e.g. after loading a new file); the state is kept."""
        self._done.clear()
        self._undone.clear()
        self._clean_id = 0
        self.last_change = "clear"
        self._notify()

    def load(self, done: list[Command], undone: list[Command]) -> None:
        """Replace the history with recorded steps WITHOUT running them (a session's saved
        history; the model is already in the state after `done`). `undone` is in redo order."""
        self._check_not_grouping("load")
        self._done = [_Step(c.description, [c]) for c in done]
        self._undone = [_Step(c.description, [c]) for c in reversed(undone)]
        self._clean_id = self._done[-1].id if self._done else 0
        self.last_change = "load"
        self._notify()

    # --- saved state ---------------------------------------------------------------
    def set_clean(self) -> None:
        """Mark the current state as saved (see `is_clean`)."""
        self._clean_id = self._done[-1].id if self._done else 0
        self.last_change = "clean"
        self._notify()

    @property
    def is_clean(self) -> bool:
        """True when the state equals the one last marked with `set_clean` (no unsaved edits)."""
        return (self._done[-1].id if self._done else 0) == self._clean_id

    # --- notification ---------------------------------------------------------------
    def subscribe(self, callback: Callback) -> None:
        """Call `callback()` after every change to the history."""
        if callback not in self._subscribers:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callback) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._subscribers):
            callback()

    def _check_not_grouping(self, what: str) -> None:
        if self._group is not None:
            raise RuntimeError(f"cannot {what} inside an undo group ('{self._group_description}')")


__all__ = ["Command", "UndoStack"]
