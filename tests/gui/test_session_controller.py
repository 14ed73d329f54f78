"""Session menu, autosave, crash recovery and the close prompt, through a fake host."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import SessionError
from regviewer.core.imaging.io import write_image
from regviewer.core.workspace.session import RecoveryManager, Session
from regviewer.gui.panels.landmark_panel import LandmarkDock
from regviewer.gui.session_controller import SessionController

from .fake_host import FakeHost, small_volume


@pytest.fixture(autouse=True)
def _fits_inline(monkeypatch):
    """Quick fits run inline, whatever the machine's load (the threaded path has its own test)."""
    from regviewer.gui.panels import landmark_panel

    monkeypatch.setattr(landmark_panel, "SLOW_FIT_SECONDS", 60.0)


@pytest.fixture(autouse=True)
def recovery_dir(tmp_path, monkeypatch):
    path = tmp_path / "recovery"
    monkeypatch.setenv("REGVIEWER_RECOVERY_DIR", str(path))
    return path


@pytest.fixture
def images(tmp_path):
    fixed, moving = tmp_path / "fixed.nii.gz", tmp_path / "moving.nii.gz"
    write_image(small_volume().sitk, fixed)
    write_image(small_volume().sitk, moving)
    return str(fixed), str(moving)


def _window(qtbot, images):
    from regviewer.core.imaging.io import read_image

    host = FakeHost(read_image(images[0]), read_image(images[1]))
    qtbot.addWidget(host)
    dock = LandmarkDock(host)
    host.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    controller = SessionController(host).install(host)
    controller.ask_save_changes = lambda: "discard"
    return host, dock, controller


def _add_pairs(dock, n=4):
    for k in range(n):
        f = (float(k * 5), float(k % 2) * 7.0, float(k // 2) * 3.0 - 2.0)
        dock.place_fixed(f)
        dock.place_moving(tuple(np.asarray(f) + (2.0, 1.0, -1.0)))


def test_menu_items_are_installed(qtbot, images):
    host, _dock, controller = _window(qtbot, images)
    texts = [a.text() for a in host.menuBar().actions()[0].menu().actions()]
    assert {"Open Session…", "Save Session", "Save Session As…"} <= set(texts)
    assert controller.autosave_timer.isActive() and controller.autosave_timer.interval() == 30_000


def test_save_and_reopen_session(qtbot, tmp_path, images):
    host, dock, controller = _window(qtbot, images)
    dock.set_model("similarity")
    _add_pairs(dock)
    host.set_current_transform(sitk.Euler3DTransform((0, 0, 0), 0.1, 0.0, 0.2, (1, 2, 3)), "manual")
    assert controller.modified
    path = controller.save_session(tmp_path / "work.rvsession.json")
    assert not controller.modified
    data = json.loads(path.read_text())
    assert data["images"]["fixed"]["path"] == images[0]
    assert len(data["landmarks"]["pairs"]) == 4

    host2, dock2, controller2 = _window(qtbot, images)
    controller2.open_session(path)
    assert dock2.landmark_set().to_dict() == dock.landmark_set().to_dict()
    assert dock2.model == "similarity"
    assert np.allclose(host2.transform.TransformPoint((4, 5, 6)), host.transform.TransformPoint((4, 5, 6)))
    assert not controller2.modified and controller2.path == path


def test_bad_session_shows_an_error_and_the_window_stays_usable(qtbot, tmp_path, images, monkeypatch):
    host, dock, controller = _window(qtbot, images)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    controller.open_session_dialog()
    assert host.errors and "not valid JSON" in str(host.errors[-1])
    _add_pairs(dock, 1)
    assert len(dock.landmark_set().pairs) == 1


def test_every_landmark_edit_autosaves(qtbot, images, recovery_dir):
    host, dock, controller = _window(qtbot, images)
    with qtbot.waitSignal(controller.autosaved, timeout=3000) as blocker:
        _add_pairs(dock, 1)
    data = json.loads(open(blocker.args[0]).read())
    assert len(data["landmarks"]["pairs"]) == 1
    assert (recovery_dir / f"run-{controller.recovery.pid}.lock").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_after_a_crash(qtbot, images, recovery_dir):
    # A previous run autosaved and then died without a clean exit.
    crashed = RecoveryManager(recovery_dir, pid=_dead_pid())
    crashed.start()
    landmarks = {"dimension": 3, "pairs": [{"name": "A", "fixed": [1, 2, 3], "moving": [4, 5, 6]}]}
    crashed.autosave(Session(fixed_path=images[0], moving_path=images[1], landmarks=landmarks,
                             transforms={"current": sitk.TranslationTransform(3, (7, 8, 9))}))

    offered = []
    from regviewer.core.imaging.io import read_image

    host = FakeHost(read_image(images[0]), read_image(images[1]))
    qtbot.addWidget(host)
    dock = LandmarkDock(host)
    controller = SessionController(host)
    controller.ask_recover = offered.append
    controller.install(host)
    qtbot.waitUntil(lambda: bool(offered))
    [candidates] = offered
    controller.recover(candidates[0])
    assert [p.name for p in dock.landmark_set().pairs] == ["A"]
    assert host.transform.TransformPoint((0, 0, 0)) == (7, 8, 9)
    assert controller.modified  # recovered work is unsaved work
    assert not crashed.autosave_path.exists()


def test_default_recovery_offer_is_non_blocking(qtbot, images, recovery_dir):
    crashed = RecoveryManager(recovery_dir, pid=_dead_pid())
    crashed.autosave(Session(fixed_path=images[0], moving_path=images[1]))
    host, _dock, controller = _window(qtbot, images)
    qtbot.waitUntil(lambda: getattr(controller, "recovery_box", None) is not None)
    box = controller.recovery_box
    assert box.isVisible() and "fixed.nii.gz" in box.informativeText()
    discard = [b for b in box.buttons() if b.text() == "Discard"][0]
    discard.click()
    qtbot.waitUntil(lambda: not crashed.autosave_path.exists())


def test_close_prompts_when_modified_and_clean_exit_removes_recovery(qtbot, images, recovery_dir):
    host, dock, controller = _window(qtbot, images)
    host.show()
    _add_pairs(dock, 1)
    qtbot.waitSignal(controller.autosaved, timeout=3000)
    answers = ["cancel"]
    controller.ask_save_changes = lambda: answers.pop(0)
    assert host.close() is False and host.isVisible()
    answers.append("discard")
    assert host.close() is True
    assert list(recovery_dir.iterdir()) == []


def test_unmodified_window_closes_without_asking(qtbot, images):
    host, _dock, controller = _window(qtbot, images)
    controller.ask_save_changes = lambda: pytest.fail("should not ask")
    host.show()
    assert host.close() is True


def test_default_close_question_is_non_blocking(qtbot, images, recovery_dir):
    host, dock, controller = _window(qtbot, images)
    controller.ask_save_changes = None  # the real dialog
    host.show()
    _add_pairs(dock, 1)
    assert host.close() is False
    box = controller.close_box
    assert box is not None and box.isVisible()
    box.button(QtWidgets.QMessageBox.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: not host.isVisible())
    assert not (recovery_dir / f"run-{controller.recovery.pid}.lock").exists()


def test_large_transform_autosaves_in_the_background_and_round_trips(qtbot, images, recovery_dir):
    host, _dock, controller = _window(qtbot, images)
    arr = np.random.default_rng(2).normal(0, 1, size=(16, 20, 24, 3))
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.CopyInformation(host.fixed_volume().sitk)
    host.set_current_transform(sitk.DisplacementFieldTransform(field), "deformable result")
    with qtbot.waitSignal(controller.autosaved, timeout=10000):
        controller.autosave_now()
    session = Session.load(controller.recovery.autosave_path)
    p = host.fixed_volume().center_physical()
    assert np.allclose(session.transforms["current"].TransformPoint(p), host.transform.TransformPoint(p))


def test_session_with_missing_image_says_which(qtbot, tmp_path, images):
    host, dock, controller = _window(qtbot, images)
    gone = tmp_path / "gone.nii.gz"
    Session(fixed_path=str(gone), moving_path=images[1]).save(tmp_path / "s.json")
    with pytest.raises(Exception) as info:
        controller.open_session(tmp_path / "s.json")
    assert "fixed image" in str(info.value) and "gone.nii.gz" in str(info.value)
    assert controller.path is None


def test_autosave_failure_is_told_once_and_nested_composites_autosave(qtbot, images, monkeypatch):
    """Two applied runs make a composite inside a composite: autosave stores it; and when
    autosave does fail, the person hears it once (a dialog), not only on stderr."""
    host, dock, controller = _window(qtbot, images)
    run = sitk.CompositeTransform([sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), sitk.BSplineTransform(3)])
    host.set_current_transform(sitk.CompositeTransform([run, sitk.CompositeTransform(run)]), "two runs")
    controller.autosave_now(wait=True)
    assert not host.errors and controller.recovery.autosave_path.exists()

    def broken(session):
        raise SessionError("Cannot write the recovery file: disk full")

    monkeypatch.setattr(controller.recovery, "autosave", broken)
    for _ in range(3):
        controller.autosave_now(wait=True)
    assert len(host.errors) == 1 and "crash recovery" in str(host.errors[0])
    assert sum("Autosave failed" in m for m in host.messages) == 3
