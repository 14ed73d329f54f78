"""The generic undo stack: push/undo/redo, merging, groups with rollback, saved state."""

from __future__ import annotations

import pytest

from regviewer.core.workspace.undo import Command, UndoStack


class Counter:
    """A tiny model whose edits go through an UndoStack."""

    def __init__(self, stack: UndoStack) -> None:
        self.value = 0
        self.stack = stack

    def set(self, new: int, merge_key=None) -> None:
        old = self.value
        self.stack.push(Command(f"set {new}", lambda: setattr(self, "value", new), lambda: setattr(self, "value", old), merge_key))


def test_push_undo_redo_and_texts():
    stack = UndoStack()
    c = Counter(stack)
    assert not stack.can_undo and not stack.can_redo and stack.undo() is None and stack.redo() is None
    c.set(1)
    c.set(2)
    assert c.value == 2 and stack.undo_text == "set 2" and len(stack) == 2
    assert stack.undo() == "set 2" and c.value == 1
    assert stack.can_redo and stack.redo_text == "set 2"
    assert stack.undo() == "set 1" and c.value == 0 and not stack.can_undo
    assert stack.redo() == "set 1" and c.value == 1
    c.set(5)  # a new edit drops the redo branch
    assert not stack.can_redo and c.value == 5


def test_failed_command_is_not_recorded():
    stack = UndoStack()

    def boom():
        raise ValueError("no")

    with pytest.raises(ValueError):
        stack.push(Command("bad", boom, lambda: None))
    assert not stack.can_undo


def test_merge_key_collapses_a_drag_into_one_step():
    stack = UndoStack()
    c = Counter(stack)
    c.set(1)
    for v in range(10, 20):
        c.set(v, merge_key="drag-1")
    c.set(30, merge_key="drag-2")
    assert c.value == 30 and len(stack) == 3
    stack.undo()
    assert c.value == 19
    stack.undo()
    assert c.value == 1
    stack.redo()
    assert c.value == 19


def test_group_is_one_step_and_rolls_back_on_error():
    stack = UndoStack()
    c = Counter(stack)
    with stack.group("three sets"):
        c.set(1)
        with stack.group("nested"):
            c.set(2)
        c.set(3)
    assert len(stack) == 1 and stack.undo_text == "three sets"
    stack.undo()
    assert c.value == 0
    stack.redo()
    assert c.value == 3
    with pytest.raises(RuntimeError):
        with stack.group("fails"):
            c.set(7)
            c.set(8)
            raise RuntimeError("stop")
    assert c.value == 3 and len(stack) == 1
    with pytest.raises(RuntimeError):
        with stack.group("undo inside"):
            stack.undo()


def test_clean_state_tracks_saved_point():
    stack = UndoStack()
    c = Counter(stack)
    assert stack.is_clean
    c.set(1)
    assert not stack.is_clean
    stack.set_clean()
    assert stack.is_clean
    c.set(2, merge_key="k")
    c.set(3, merge_key="k")  # merges with the previous, not with the saved step
    assert not stack.is_clean
    stack.undo()
    assert stack.is_clean and c.value == 1
    stack.undo()
    assert not stack.is_clean


def test_subscribers_and_limit():
    stack = UndoStack(limit=3)
    calls = []
    stack.subscribe(lambda: calls.append(len(stack)))
    c = Counter(stack)
    for v in range(5):
        c.set(v)
    assert len(stack) == 3 and calls == [1, 2, 3, 3, 3]
    stack.undo()
    stack.redo()
    stack.clear()
    assert calls[-3:] == [2, 3, 0] and not stack.can_undo and c.value == 4
