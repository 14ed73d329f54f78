"""The Workspace: one undo history for transform and landmark edits, one event per
change, and sessions that bring everything back (no Qt)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import TransformReadError
from regviewer.core.transforms.io import write_transform
from regviewer.core.transforms.manual import ManualAlignment, compose
from regviewer.core.workspace import Workspace
from regviewer.core.workspace.run_history import RunRecord
from regviewer.core.workspace.state import TransformSource

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _image(shift: float = 0.0) -> sitk.Image:
    arr = np.zeros((16, 20, 24), np.float32)
    arr[4:12, 5:15, 6 + int(shift):18 + int(shift)] = 100.0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 2.0))
    return img


def _bspline() -> sitk.Transform:
    tx = sitk.BSplineTransformInitializer(_image(), [3, 3, 3])
    tx.SetParameters(np.random.default_rng(0).normal(0, 1.5, tx.GetNumberOfParameters()).tolist())
    return tx


def _same(a: sitk.Transform, b: sitk.Transform) -> bool:
    pts = np.random.default_rng(1).uniform(0, 30, size=(20, 3))
    return all(np.allclose(a.TransformPoint(tuple(p)), b.TransformPoint(tuple(p)), atol=1e-9) for p in pts)


@pytest.fixture
def ws() -> Workspace:
    w = Workspace()
    w.open(_image(), _image(2))
    return w


def _record(ws: Workspace, transform: sitk.Transform) -> RunRecord:
    return ws.runs.add(RunRecord(number=ws.runs.next_number(), params={"stages": []}, transform=transform))


def test_open_accepts_paths_volumes_and_images():
    ws = Workspace()
    ws.open(str(DEMO / "retina_fixed.png"), DEMO / "retina_moving.png")
    assert ws.dimension == 2 and ws.moving is not None
    ws2 = Workspace()
    ws2.open(ws.fixed, ws.moving.sitk)
    assert ws2.transform.GetDimension() == 2 and ws2.landmarks.dimension == 2


def test_undo_walks_back_a_mixed_sequence_in_order(ws):
    run1 = _record(ws, sitk.CompositeTransform([sitk.TranslationTransform(3, (3, 0, 0)), _bspline()]))
    ws.apply_run(run1)
    ws.landmarks.add_pair((1, 2, 3), (2, 3, 4))
    ws.move_manually(ManualAlignment(3, translation=(5, 0, 0), centre=ws.manual.centre))
    ws.set_transform(compose(ws.transform, sitk.Euler3DTransform()), "Landmark fit",
                     TransformSource("landmark-fit", model="rigid"))
    ws.landmarks.set_moving(0, (9, 9, 9))
    states = []
    expected = ["Move moving point of L1", "Landmark fit", "Move moving image", "Add landmark L1", "Apply Run 1"]
    for description in expected:
        states.append((ws.transform, ws.landmarks.pairs))
        assert ws.history.undo_text == description
        assert ws.undo() == description
    assert ws.undo() is None and _same(ws.transform, sitk.Transform(3, sitk.sitkIdentity))
    assert len(ws.landmarks) == 0
    for description, (transform, pairs) in zip(reversed(expected), reversed(states)):
        assert ws.redo() == description
        assert _same(ws.transform, transform) and ws.landmarks.pairs == pairs


def test_manual_fields_follow_undo_and_reset_returns_to_identity(ws):
    first = ManualAlignment(3, translation=(30, 0, 0), rotation_deg=(0, 0, 33), centre=ws.manual.centre)
    ws.move_manually(first)
    ws.move_manually(ManualAlignment(3, translation=(10, 0, 0), centre=ws.manual.centre))
    ws.undo()
    assert ws.manual == first and _same(ws.transform, first.transform_fixed_to_moving())
    ws.reset_transform()
    assert ws.manual.is_identity() and _same(ws.transform, sitk.Transform(3, sitk.sitkIdentity))
    assert ws.undo() == "Reset transform" and ws.manual == first


def test_manual_move_nudges_the_applied_run(ws):
    run = _record(ws, sitk.TranslationTransform(3, (4, 0, 0)))
    ws.use_run(run.number)
    assert ws.source == TransformSource("run", run=1) and ws.manual.is_identity()
    move = ManualAlignment(3, translation=(0, 2, 0), centre=ws.manual.centre)
    ws.move_manually(move)
    assert np.allclose(ws.transform.TransformPoint((0, 0, 0)), (4, -2, 0))


def test_exactly_one_event_per_change(ws):
    seen = Counter()
    for event in ws.events:
        event.connect(lambda _value, name=event.name: seen.update([name]))
    ws.set_transform(sitk.TranslationTransform(3, (1, 0, 0)), "Move")
    assert seen == Counter(transform=1, history=1)
    seen.clear()
    ws.landmarks.add_pair((1, 1, 1), (2, 2, 2))
    assert seen == Counter(landmarks=1, history=1)
    seen.clear()
    ws.undo()
    assert seen == Counter(landmarks=1, history=1)
    seen.clear()
    ws.undo()
    assert seen == Counter(transform=1, history=1)
    seen.clear()
    ws.set_preview(sitk.TranslationTransform(3, (2, 0, 0)))
    ws.set_settings(preset="rigid-mi", seed=3)
    ws.set_settings(preset="rigid-mi", seed=3)  # no change, no event
    ws.set_qa_inputs(fixed_segmentation="seg.nii.gz")
    _record(ws, sitk.TranslationTransform(3))
    assert seen == Counter(preview=1, settings=1, qa=1, runs=1)


def test_open_transform_is_undoable_and_names_the_file(ws, tmp_path):
    path = tmp_path / "elsewhere.tfm"
    write_transform(sitk.TranslationTransform(3, (7, 0, 0)), path)
    ws.open_transform(path)
    assert ws.source.kind == "file" and ws.source.path == str(path)
    assert ws.history.undo_text == "Open transform elsewhere.tfm"
    ws.undo()
    assert _same(ws.transform, sitk.Transform(3, sitk.sitkIdentity))
    with pytest.raises(TransformReadError):
        ws.open_transform(tmp_path / "missing.tfm")


def test_session_round_trip_with_nested_composites_bsplines_landmarks_and_runs(tmp_path):
    ws = Workspace()
    ws.open(str(DEMO / "brain_t1_fixed.nii.gz"), str(DEMO / "brain_t2like_moving.nii.gz"))
    run1 = _record(ws, sitk.CompositeTransform([sitk.Euler3DTransform((0, 0, 0), 0.1, 0, 0, (2, 0, 0)), _bspline()]))
    ws.apply_run(run1)
    run2 = _record(ws, compose(ws.transform, sitk.CompositeTransform([sitk.AffineTransform(3), _bspline()])))
    ws.apply_run(run2)
    ws.landmarks.add_pair((10, 20, 30), (11, 21, 31))
    ws.move_manually(ManualAlignment(3, translation=(1, 2, 3), centre=ws.manual.centre))
    ws.set_settings(preset="affine-mi", seed=7, fixed_mask="mask.nii.gz")
    ws.set_view_state({"layout": "1x3"})
    path = ws.save_session(tmp_path / "s.rvsession.json")

    back = Workspace.load_session(path)
    assert _same(back.transform, ws.transform)
    assert back.source == TransformSource("manual") and back.manual == ws.manual
    assert _same(back.manual_transform(ws.manual), ws.transform)  # the fields still rebuild the image
    assert back.landmarks.pairs == ws.landmarks.pairs
    assert [r.number for r in back.runs] == [1, 2] and _same(back.runs.get(2).transform, run2.transform)
    assert back.settings == ws.settings and back.view_state == {"layout": "1x3"}
    back.landmarks.add_pair((0, 0, 0), (1, 1, 1))  # the loaded landmarks are on the history
    assert back.undo() == "Add landmark L2"


def test_session_carries_the_undo_history(tmp_path, ws):
    """Run, Apply, Run, Apply, landmark edit, fit, move; save; reopen; Ctrl+Z walks back in order."""
    expected = []

    def remember():
        expected.append((ws.history.undo_text, ws.transform, ws.landmarks.pairs, ws.manual))

    ws.apply_run(_record(ws, sitk.CompositeTransform([sitk.TranslationTransform(3, (3, 0, 0)), _bspline()])))
    remember()
    ws.apply_run(_record(ws, compose(ws.transform, sitk.Euler3DTransform((0, 0, 0), 0.05, 0, 0))))
    remember()
    ws.landmarks.add_pair((10, 12, 8), (13, 12, 8))
    remember()
    ws.set_transform(compose(ws.transform, sitk.TranslationTransform(3, (0, 1, 0))), "Landmark fit",
                     TransformSource("landmark-fit", model="rigid"))
    remember()
    ws.move_manually(ManualAlignment(3, translation=(2, 0, 0), rotation_deg=(0, 0, 5), centre=ws.manual.centre))
    remember()
    ws.undo()  # one redo step is carried too
    path = ws.save_session(tmp_path / "s.rvsession.json")

    back = Workspace.load_session(path)
    assert back.history.redo_text == "Move moving image"
    assert back.redo() == "Move moving image"
    for description, transform, pairs, manual in reversed(expected):
        assert back.history.undo_text == description
        assert _same(back.transform, transform) and back.landmarks.pairs == pairs and back.manual == manual
        assert back.undo() == description
    assert _same(back.transform, sitk.Transform(3, sitk.sitkIdentity)) and not back.history.can_undo
    # and it saves again the same way
    again = Workspace.load_session(back.save_session(tmp_path / "again.rvsession.json"))
    assert again.history.redo_text == "Apply Run 1" and not again.history.can_undo


def test_dimension_mismatch_is_refused(ws):
    with pytest.raises(Exception, match="2D"):
        ws.set_transform(sitk.TranslationTransform(2), "2D")
    assert not ws.history.can_undo


def test_a_session_written_before_the_workspace_still_opens(tmp_path):
    from regviewer.core.workspace.session import Session

    old = Session(fixed_path=str(DEMO / "retina_fixed.png"), moving_path=str(DEMO / "retina_moving.png"),
                  transforms={"current": sitk.TranslationTransform(2, (3.0, 1.0))},
                  landmarks={"dimension": 2, "pairs": [{"name": "A", "fixed": [1, 2], "moving": [4, 3]}]},
                  parts={"registration": {"seed": 3}})
    ws = Workspace.load_session(old.save(tmp_path / "old.rvsession.json"))
    assert np.allclose(ws.transform.TransformPoint((0.0, 0.0)), (3.0, 1.0))
    assert ws.source.kind == "session" and ws.landmarks.names() == ["A"] and not ws.history.can_undo
