"""LandmarkSet: edits, validation, notifications, and exact undo/redo (property test)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regviewer.core.errors import LandmarkEditError, RegviewerError
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet
from regviewer.core.workspace.undo import UndoStack


def test_edits_and_half_made_pairs():
    lm = LandmarkSet(3)
    assert lm.add_pair((1, 2, 3)) == 0  # half-made: fixed only
    assert lm[0] == LandmarkPair("L1", (1.0, 2.0, 3.0), None)
    assert not lm[0].complete
    lm.set_moving(0, (4, 5, 6))
    assert lm[0].complete and lm[0].moving == (4.0, 5.0, 6.0)
    lm.add_pair((0, 0, 0), (1, 1, 1), name="tip")
    lm.add_pair(None, (9, 9, 9), index=0)
    assert lm.names() == ["L3", "L1", "tip"]
    lm.rename(0, "moving-first")
    lm.set_enabled(1, False)
    lm.set_weight(2, 0.25)
    lm.move_pair(2, 0)
    assert lm.names() == ["tip", "moving-first", "L1"]
    assert lm[2].enabled is False and lm[0].weight == 0.25
    removed = lm.delete(1)
    assert removed.name == "moving-first" and len(lm) == 2
    lm.set_fixed(0, None)
    assert lm[0].fixed is None
    assert lm.index_of("L1") == 1


def test_invalid_edits_raise_plain_errors_and_change_nothing():
    lm = LandmarkSet(2)
    lm.add_pair((0, 0), (1, 1), name="a")
    lm.add_pair((2, 2), (3, 3), name="b")
    before, depth = lm.pairs, len(lm.undo_stack)
    for bad in (
        lambda: lm.rename(1, "a"),
        lambda: lm.rename(0, "  "),
        lambda: lm.set_fixed(0, (1, 2, 3)),
        lambda: lm.set_moving(0, (float("nan"), 1)),
        lambda: lm.set_weight(0, -1),
        lambda: lm.add_pair((0, "x")),
        lambda: lm.add_pair(name="b"),
    ):
        with pytest.raises(LandmarkEditError) as info:
            bad()
        assert isinstance(info.value, RegviewerError) and str(info.value)
    with pytest.raises(IndexError):
        lm.set_enabled(5, False)
    with pytest.raises(IndexError):
        lm.move_pair(0, 2)
    assert lm.pairs == before and len(lm.undo_stack) == depth
    with pytest.raises(LandmarkEditError):
        LandmarkSet(4)


def test_callbacks_fire_on_edit_undo_redo_but_not_on_other_models_edits():
    shared = UndoStack()
    a, b = LandmarkSet(3, undo_stack=shared), LandmarkSet(3, undo_stack=shared)
    calls = []
    a.subscribe(lambda: calls.append("a"))
    a.add_pair((0, 0, 0))
    b.add_pair((1, 1, 1))
    assert calls == ["a"]
    shared.undo()  # undoes b's edit: a unchanged, no call
    shared.undo()
    shared.redo()
    assert calls == ["a", "a", "a"]
    versions = a.version
    a.set_fixed(0, (0, 0, 0))  # no change: no command, no call
    assert a.version == versions and calls == ["a", "a", "a"]


def test_drag_merges_into_one_undo_step():
    lm = LandmarkSet(2)
    lm.add_pair((0, 0), (0, 0))
    for k in range(1, 30):
        lm.set_fixed(0, (k, k), merge_id="drag-7")
    assert lm[0].fixed == (29.0, 29.0) and len(lm.undo_stack) == 2
    lm.undo_stack.undo()
    assert lm[0].fixed == (0.0, 0.0)


def test_dict_round_trip_and_copy():
    lm = LandmarkSet(3)
    lm.add_pair((1.5, -2, 3e-7), (4, 5, 6), name="a", weight=2.0)
    lm.add_pair(None, (1, 1, 1), name="b", enabled=False)
    again = LandmarkSet.from_dict(lm.to_dict())
    assert again.pairs == lm.pairs and again.dimension == 3
    assert lm.copy().pairs == lm.pairs
    with pytest.raises(LandmarkEditError):
        LandmarkSet.from_dict({"dimension": 3, "pairs": [{"fixed": [1, 2, 3]}]})


# --- property test: long random edit sequences undo and redo exactly --------------------------------------
_coord = st.floats(-500, 500, allow_nan=False, allow_infinity=False)
_point = st.one_of(st.none(), st.tuples(_coord, _coord))
_edit = st.one_of(
    st.tuples(st.just("add"), _point, _point, st.sampled_from([None, "a", "b", "L2", "c"]), st.integers(-3, 8)),
    st.tuples(st.just("fixed"), st.integers(-3, 8), _point),
    st.tuples(st.just("moving"), st.integers(-3, 8), _point, st.sampled_from([None, "drag"])),
    st.tuples(st.just("rename"), st.integers(-3, 8), st.sampled_from(["a", "b", "x", "L1", " "])),
    st.tuples(st.just("enable"), st.integers(-3, 8), st.booleans()),
    st.tuples(st.just("weight"), st.integers(-3, 8), st.floats(-1, 5)),
    st.tuples(st.just("delete"), st.integers(-3, 8)),
    st.tuples(st.just("move"), st.integers(-3, 8), st.integers(-3, 8)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("redo")),
)


def _apply(lm: LandmarkSet, edit: tuple) -> None:
    kind, *args = edit
    if kind == "add":
        fixed, moving, name, index = args
        lm.add_pair(fixed, moving, name, index=index)
    elif kind == "fixed":
        lm.set_fixed(args[0], args[1])
    elif kind == "moving":
        lm.set_moving(args[0], args[1], merge_id=args[2])
    elif kind == "rename":
        lm.rename(*args)
    elif kind == "enable":
        lm.set_enabled(*args)
    elif kind == "weight":
        lm.set_weight(*args)
    elif kind == "delete":
        lm.delete(*args)
    elif kind == "move":
        lm.move_pair(*args)
    elif kind == "undo":
        lm.undo_stack.undo()
    else:
        lm.undo_stack.redo()


@settings(max_examples=150, deadline=None)
@given(st.lists(_edit, min_size=1, max_size=80))
def test_undo_redo_restore_exact_states_through_random_edits(edits):
    lm = LandmarkSet(2)
    notified = []
    lm.subscribe(lambda: notified.append(tuple(lm.pairs)))
    # A reference model of the history: states[i] is the state after i recorded steps.
    states, position = [tuple(lm.pairs)], 0
    for edit in edits:
        before = tuple(lm.pairs)
        try:
            _apply(lm, edit)
        except (LandmarkEditError, IndexError):
            assert tuple(lm.pairs) == before  # a refused edit changes nothing
            continue
        after = tuple(lm.pairs)
        if edit[0] == "undo":
            position = max(position - 1, 0)
        elif edit[0] == "redo":
            position = min(position + 1, len(states) - 1)
        elif after != before:
            if len(lm.undo_stack) == position:  # a drag merged into the previous step
                states[position] = after
                del states[position + 1:]
            else:
                states = states[: position + 1] + [after]
                position += 1
        assert after == states[position]
        assert len(lm.undo_stack) == position
        if after != before:
            assert notified and notified[-1] == after
    # Undo everything, checking every intermediate state, then redo everything.
    for k in range(position, 0, -1):
        lm.undo_stack.undo()
        assert tuple(lm.pairs) == states[k - 1]
    assert not lm.undo_stack.can_undo
    for k in range(1, len(states)):
        lm.undo_stack.redo()
        assert tuple(lm.pairs) == states[k]
    assert not lm.undo_stack.can_redo


def test_replace_all_and_clear_are_single_undo_steps():
    lm = LandmarkSet(3)
    lm.add_pair((0, 0, 0), (1, 1, 1), name="old")
    lm.replace_all([LandmarkPair("a", (1, 2, 3)), LandmarkPair("b", None, (4, 5, 6))], "Import landmarks")
    assert lm.names() == ["a", "b"] and lm.undo_stack.undo_text == "Import landmarks"
    with pytest.raises(LandmarkEditError):
        lm.replace_all([LandmarkPair("x", (1, 2, 3)), LandmarkPair("x", (1, 2, 3))])
    lm.clear()
    assert len(lm) == 0
    lm.undo_stack.undo()
    assert lm.names() == ["a", "b"]
    lm.undo_stack.undo()
    assert lm.names() == ["old"]
