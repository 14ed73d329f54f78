"""Session files and crash recovery, without Qt."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import RegviewerError, SessionError
from regviewer.core.workspace.session import (
    RecoveryManager,
    Session,
    recovery_dir,
    transform_from_json,
    transform_to_json,
)


def _points_equal(a: sitk.Transform, b: sitk.Transform, dim: int = 3) -> None:
    rng = np.random.default_rng(0)
    for p in rng.uniform(-50, 50, size=(10, dim)):
        assert np.allclose(a.TransformPoint(tuple(p)), b.TransformPoint(tuple(p)), atol=1e-12)


def _field_transform() -> sitk.Transform:
    ref = sitk.Image([30, 30, 30], sitk.sitkFloat32)
    ref.SetSpacing((2.0, 2.0, 2.0))
    ref.SetOrigin((-30.0, -30.0, -30.0))
    arr = np.random.default_rng(1).normal(0, 1, size=(30, 30, 30, 3))
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.CopyInformation(ref)
    return sitk.DisplacementFieldTransform(field)


@pytest.mark.parametrize("make", [
    lambda: sitk.Euler3DTransform((1.1, 2.2, 3.3), 0.1234567890123, -0.3, 0.7, (1 / 3, 2 / 7, 1e-9)),
    lambda: sitk.AffineTransform(3),
    lambda: sitk.CompositeTransform([sitk.TranslationTransform(3, (1, 2, 3)), sitk.ScaleTransform(3, (1.1, 0.9, 1.0))]),
    _field_transform,
])
def test_transform_json_round_trip_is_lossless(make):
    t = make()
    back = transform_from_json(json.loads(json.dumps(transform_to_json(t))), "test")
    _points_equal(t, back)


def test_large_transform_is_embedded_as_binary():
    assert transform_to_json(_field_transform())["encoding"] == "itk-hdf5-base64"
    assert transform_to_json(sitk.Euler3DTransform())["encoding"] == "itk-text"


def test_session_round_trip(tmp_path):
    fixed = tmp_path / "img" / "fixed.nii.gz"
    moving = tmp_path / "img" / "moving.nii.gz"
    fixed.parent.mkdir()
    fixed.write_bytes(b"x")
    moving.write_bytes(b"x")
    t = sitk.Similarity3DTransform(1.2, (0, 0, 1), 0.2, (3, 4, 5), (1, 1, 1))
    s = Session(
        fixed_path=str(fixed), moving_path=str(moving), transforms={"current": t},
        landmarks={"pairs": [{"name": "A", "fixed": [1, 2, 3], "moving": None}]},
        parameters={"metric": "mattes"}, view_state={"layout": "1x3", "zoom": 1.5},
        parts={"qa": {"opened": True}},
    )
    path = s.save(tmp_path / "a.rvsession.json")
    back = Session.load(path)
    assert back.fixed_path == str(fixed) and back.moving_path == str(moving)
    _points_equal(t, back.transforms["current"])
    assert back.landmarks == s.landmarks
    assert back.parameters == s.parameters and back.view_state == s.view_state and back.parts == s.parts
    data = json.loads(path.read_text())
    assert data["transforms_direction"] == "fixed_to_moving"
    assert not list(tmp_path.glob(".regviewer-tmp-*"))  # atomic write left nothing behind


def test_moved_project_folder_finds_images_relative_to_session(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "fixed.png").write_bytes(b"x")
    Session(fixed_path=str(project / "fixed.png")).save(project / "s.json")
    moved = tmp_path / "moved"
    project.rename(moved)
    assert Session.load(moved / "s.json").fixed_path == str(moved / "fixed.png")


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    ("", "empty"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a regviewer session"),
    ('{"format": "something-else"}', "not a regviewer session"),
    ('{"format": "regviewer-session", "version": 99}', "newer regviewer"),
    ('{"format": "regviewer-session", "version": 1, "transforms": {"current": {"encoding": "itk-text", "data": "garbage"}}}',
     "damaged"),
    ('{"format": "regviewer-session", "version": 1, "transforms": {"current": 3}}', "transform"),
    ('{"format": "regviewer-session", "version": 1, "images": {"fixed": {"nopath": 1}}}', "fixed image"),
    ('{"format": "regviewer-session", "version": 1, "landmarks": [1]}', "landmarks"),
])
def test_bad_session_files_give_a_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SessionError) as info:
        Session.load(path)
    message = str(info.value)
    assert words in message and str(path) in message
    assert isinstance(info.value, RegviewerError)


def test_unserialisable_state_is_a_session_error(tmp_path):
    with pytest.raises(SessionError, match="not JSON"):
        Session(parts={"x": {"y": object()}}).save(tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_recovery_dir_respects_overrides(monkeypatch, tmp_path):
    monkeypatch.delenv("REGVIEWER_RECOVERY_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert recovery_dir() == tmp_path / "xdg" / "regviewer" / "recovery"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert recovery_dir() == tmp_path / "home" / ".local" / "share" / "regviewer" / "recovery"
    monkeypatch.setenv("REGVIEWER_RECOVERY_DIR", str(tmp_path / "r"))
    assert recovery_dir() == tmp_path / "r"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_clean_exit_leaves_nothing_to_recover(tmp_path):
    run = RecoveryManager(tmp_path, pid=_dead_pid())
    run.start()
    run.autosave(Session(fixed_path="/a.nii"))
    run.finish()
    assert list(tmp_path.iterdir()) == []
    assert RecoveryManager(tmp_path).crashed_runs() == []


def test_crashed_run_is_offered_and_running_one_is_not(tmp_path):
    crashed = RecoveryManager(tmp_path, pid=_dead_pid())
    crashed.start()
    crashed.autosave(Session(fixed_path="/data/fixed.nii.gz", transforms={"current": sitk.TranslationTransform(3, (1, 2, 3))}))
    alive = RecoveryManager(tmp_path, pid=os.getppid())  # a process that is certainly running
    alive.start()
    alive.autosave(Session(fixed_path="/other.nii"))

    me = RecoveryManager(tmp_path)
    me.start()
    me.autosave(Session())
    candidates = me.crashed_runs()
    assert [c.pid for c in candidates] == [crashed.pid]
    assert "fixed.nii.gz" in candidates[0].describe()
    session = me.recover(candidates[0])
    assert session.transforms["current"].TransformPoint((0, 0, 0)) == (1, 2, 3)
    me.discard(candidates[0])
    assert me.crashed_runs() == []
    assert alive.autosave_path.exists() and me.autosave_path.exists()


def test_autosave_without_lock_counts_as_crash_and_damage_is_reported(tmp_path):
    (tmp_path / "autosave-12345678.json").write_text("{broken")
    me = RecoveryManager(tmp_path)
    [candidate] = me.crashed_runs()
    with pytest.raises(SessionError, match="not valid JSON"):
        me.recover(candidate)


def test_stale_locks_without_autosave(tmp_path):
    dead = RecoveryManager(tmp_path, pid=_dead_pid())
    dead.start()
    assert RecoveryManager(tmp_path).stale_locks() == [dead.lock_path]
    assert RecoveryManager(tmp_path).crashed_runs() == []


from hypothesis import given, settings, strategies as st

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None)
@given(parts=st.dictionaries(st.text(min_size=1, max_size=10), st.dictionaries(st.text(max_size=8), _json, max_size=3),
                             max_size=3),
       view=st.dictionaries(st.text(max_size=8), _json, max_size=3))
def test_any_json_state_round_trips(tmp_path_factory, parts, view):
    path = tmp_path_factory.mktemp("s") / "s.json"
    Session(parts=parts, view_state=view).save(path)
    back = Session.load(path)
    assert back.parts == parts and back.view_state == view
