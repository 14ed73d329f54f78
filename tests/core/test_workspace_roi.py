"""The region of interest is Workspace state: each box drag, paint stroke and Clear is one
step of the ONE undo history, interleaved with transform and landmark edits, carried by
sessions (with its history), and dropped when another fixed image is opened."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.roi import RegionOfInterest
from regviewer.core.workspace import Workspace


def _image(size=(24, 20, 16)) -> sitk.Image:
    img = sitk.GetImageFromArray(np.zeros(size[::-1], np.float32))
    img.SetSpacing((2.0, 2.0, 2.0))
    return img


@pytest.fixture
def ws() -> Workspace:
    w = Workspace()
    w.open(_image(), _image())
    return w


BOX = RegionOfInterest().with_box((4, 4, 4), (20, 24, 12))


def test_roi_edits_undo_and_redo_in_order_with_other_edits(ws):
    seen = []
    ws.events.roi.connect(seen.append)
    ws.set_roi(BOX, "Draw box")
    ws.landmarks.add_pair((1, 2, 3), (2, 2, 3))
    stroke = BOX.with_ball((10, 10, 8), 3.0).with_ball((12, 10, 8), 3.0)
    ws.set_roi(stroke, "Paint")
    ws.set_transform(sitk.TranslationTransform(3, (1, 0, 0)), "Move")
    ws.set_roi(RegionOfInterest(), "Clear region of interest")
    assert seen == [BOX, stroke, RegionOfInterest()]  # exactly one event per change

    assert ws.history.undo_text == "Clear region of interest"
    assert ws.undo() == "Clear region of interest" and ws.roi == stroke
    assert ws.undo() == "Move" and ws.roi == stroke
    assert ws.undo() == "Paint" and ws.roi == BOX  # the whole stroke, in one step
    assert ws.undo() == "Add landmark L1" and ws.roi == BOX and not ws.landmarks.pairs
    assert ws.undo() == "Draw box" and ws.roi.is_empty
    assert seen[-3:] == [stroke, BOX, RegionOfInterest()]
    while ws.redo():
        pass
    assert ws.roi.is_empty and ws.history.undo_text == "Clear region of interest"
    ws.undo()
    assert ws.roi == stroke


def test_an_unchanged_region_is_no_step_and_bad_values_are_refused(ws):
    ws.set_roi(RegionOfInterest())
    assert not ws.history.can_undo
    with pytest.raises(ParameterError):
        ws.set_roi({"box": None})  # type: ignore[arg-type]


def test_a_new_fixed_image_drops_the_region_and_its_history(ws):
    seen = []
    ws.events.roi.connect(seen.append)
    ws.set_roi(BOX, "Draw box")
    ws.open(_image((30, 30, 10)), _image())
    assert ws.roi.is_empty and seen == [BOX, RegionOfInterest()] and not ws.history.can_undo


def test_sessions_carry_the_region_and_its_undo_steps(tmp_path, ws):
    ws.set_roi(BOX, "Draw box")
    painted = BOX.with_ball((10, 10, 8), 3.0)
    ws.set_roi(painted, "Paint")
    path = ws.save_session(tmp_path / "s.rvsession.json")

    back = Workspace.load_session(path)
    assert back.roi == painted
    assert back.undo() == "Paint" and back.roi == BOX
    assert back.undo() == "Draw box" and back.roi.is_empty
    assert back.redo() == "Draw box" and back.roi == BOX


def test_a_session_with_the_region_only_in_the_window_part_still_opens(ws):
    """Sessions written before the region moved into the Workspace kept it in part "roi"."""
    session = ws.to_session()
    del session.parts["workspace"]["roi"]
    session.parts["roi"] = {"region": BOX.to_json(), "mask": None}
    other = Workspace()
    other.open(_image(), _image())
    other.restore(session, open_images=False)
    assert other.roi == BOX and not other.history.can_undo


def test_a_region_loaded_outside_the_history_is_the_next_steps_before_state(tmp_path, ws):
    ws.load_roi(BOX)
    assert not ws.history.can_undo
    ws.set_roi(RegionOfInterest(), "Clear region of interest")
    back = Workspace.load_session(ws.save_session(tmp_path / "s.rvsession.json"))
    assert back.roi.is_empty and back.undo() == "Clear region of interest" and back.roi == BOX


def test_undo_in_a_session_from_before_the_region_was_recorded_keeps_the_region(tmp_path, ws):
    ws.set_transform(sitk.TranslationTransform(3, (1, 0, 0)), "Move")
    session = ws.to_session()
    own = session.parts["workspace"]
    del own["roi"]
    for state in own["history"]["states"]:
        del state["roi"]
    session.parts["roi"] = {"region": BOX.to_json(), "mask": None}
    path = session.save(tmp_path / "old.rvsession.json")

    back = Workspace.load_session(path)
    assert back.roi == BOX
    assert back.undo() == "Move" and back.roi == BOX and back.redo() == "Move" and back.roi == BOX
    again = Workspace.load_session(back.save_session(tmp_path / "again.rvsession.json"))
    assert again.roi == BOX and again.undo() == "Move" and again.roi == BOX


def test_a_session_saved_after_opening_another_pair_never_undoes_back_to_the_old_region(tmp_path, ws):
    ws.set_roi(BOX, "Draw box")
    ws.open(_image((30, 30, 10)), _image())
    ws.set_transform(sitk.TranslationTransform(3, (1, 0, 0)), "Move")
    back = Workspace.load_session(ws.save_session(tmp_path / "s.rvsession.json"))
    assert back.undo() == "Move" and back.roi.is_empty  # not the box drawn on the previous fixed image
