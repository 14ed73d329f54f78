"""The landmark dock and sessions in the REAL main window on the demo brain pair:
place three pairs by simulated mouse clicks, fit, undo/redo by keys, save and reopen a
session, recover from an autosave after a (simulated) crash."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PyQt6 import QtCore

from .conftest import activate, click, drag


@pytest.fixture(autouse=True)
def _fits_inline(monkeypatch):
    """Quick fits run inline, whatever the machine's load (the threaded path has its own test)."""
    from regviewer.gui.panels import landmark_panel

    monkeypatch.setattr(landmark_panel, "SLOW_FIT_SECONDS", 60.0)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def window(make_window, brain_paths):
    w = make_window(*brain_paths, panels=True, sessions=True)
    w.session_controller.ask_save_changes = lambda: "discard"
    return w


def _place_three_pairs(qtbot, window):
    dock = window.panels["LandmarkDock"]
    window.apply_layout("side_by_side", "axial")
    window.set_interaction_mode("window_level")
    dock.pick_button.setChecked(True)
    assert window.interaction_mode == "landmark"
    window.set_interaction_mode("navigate")  # the toolbar's mode buttons and Pick agree
    assert not dock.pick_button.isChecked()
    window.set_interaction_mode("landmark")
    assert dock.pick_button.isChecked()
    fixed_view, moving_view = window.view("fixed", "axial"), window.view("moving", "axial")
    qtbot.wait(20)
    clicks = [(30, 40), (65, 45), (48, 80)]
    for col, row in clicks:
        click(qtbot, fixed_view, (col, row))
        click(qtbot, moving_view, (col + 3, row - 2))
    return dock, fixed_view, moving_view, clicks


def test_pairs_by_clicks_fit_and_undo_redo(qtbot, window):
    dock, fixed_view, moving_view, clicks = _place_three_pairs(qtbot, window)
    dock.set_model("rigid")
    dock.set_apply_live(True)
    pairs = dock.landmark_set().pairs
    assert len(pairs) == 3 and all(p.complete for p in pairs)
    for pair, (col, row) in zip(pairs, clicks):
        assert np.allclose(pair.fixed, fixed_view.plane.to_physical(col, row, fixed_view.depth), atol=0.6)
    # Identity transform: the moving point is where the moving view was clicked.
    assert np.allclose(pairs[0].moving, moving_view.plane.to_physical(33, 38, moving_view.depth), atol=0.6)
    fit = dock.fit_result
    # A shift of 3 and -2 pixels, up to where screen pixels let the clicks land.
    assert fit is not None and fit.rms_mm < 1.0
    mapped = np.asarray(window.current_transform().TransformPoint(pairs[1].fixed))
    assert np.linalg.norm(mapped - pairs[1].moving) == pytest.approx(fit.residuals_mm[1], abs=1e-6)
    assert len(dock.markers.markers(fixed_view)) == 3 and len(dock.markers.markers(moving_view)) == 3

    before = dock.landmark_set().to_dict()
    activate(qtbot, window)
    # One history, named in the Edit menu: Ctrl+Z first undoes the fit, then the landmark edit.
    assert window.undo_action.text() == "Undo Landmark fit"
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert dock.landmark_set().to_dict() == before
    assert window.undo_action.text().startswith("Undo Move moving point of L3")
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert dock.landmark_set().pairs[2].moving is None
    redo = QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z, redo)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_Z, redo)
    assert dock.landmark_set().to_dict() == before and window.undo_action.text() == "Undo Landmark fit"

    dock.select(1)
    assert np.allclose(window._cursor, pairs[1].fixed)

    # Drag L1's fixed marker with the mouse: one undoable move, at the landmark's own depth.
    n_steps = len(dock.landmark_set().undo_stack)
    col, row = clicks[0]
    drag(qtbot, fixed_view, (col, row), (col + 6, row + 4), steps=1)  # pyqtgraph rate-limits moves
    # (the live fit follows the move as its own step)
    qtbot.waitUntil(lambda: len(dock.landmark_set().undo_stack) == n_steps + 2, timeout=2000)
    moved = dock.landmark_set().pairs[0].fixed
    assert np.allclose(moved, fixed_view.plane.to_physical(col + 6, row + 4, fixed_view.depth), atol=0.6)
    dock.undo()
    dock.undo()
    assert np.allclose(dock.landmark_set().pairs[0].fixed, pairs[0].fixed)


def test_save_reopen_and_recover_session(qtbot, tmp_path, make_window, window, brain_paths):
    dock, *_ = _place_three_pairs(qtbot, window)
    dock.set_model("similarity")
    controller = window.session_controller
    path = controller.save_session(tmp_path / "brain.rvsession.json")
    saved_landmarks = dock.landmark_set().to_dict()
    saved_point = window.current_transform().TransformPoint((1.0, 2.0, 3.0))

    other = make_window(panels=True, sessions=True)
    other.session_controller.open_session(path)
    other_dock = other.panels["LandmarkDock"]
    assert other.fixed_volume().path == str(brain_paths[0])
    assert other_dock.landmark_set().to_dict() == saved_landmarks
    assert other_dock.model == "similarity"
    assert np.allclose(other.current_transform().TransformPoint((1.0, 2.0, 3.0)), saved_point)
    assert not other.session_controller.modified

    # An edit after saving autosaves; then the process "crashes" (its lock names a dead pid).
    dock.landmark_set().delete(0)
    qtbot.waitUntil(lambda: controller.recovery.autosave_path.exists(), timeout=3000)
    recovery_dir = controller.recovery.directory
    dead = _dead_pid()
    controller.recovery.autosave_path.rename(recovery_dir / f"autosave-{dead}.json")
    expected = dock.landmark_set().to_dict()

    # Built directly: the recovery question takes the focus, which make_window's
    # activation step would wait for in vain.
    from regviewer.gui.main_window import MainWindow

    restarted = MainWindow(sessions=True, panels=True)
    qtbot.addWidget(restarted)
    restarted.show()
    new_controller = restarted.session_controller
    qtbot.waitUntil(lambda: getattr(new_controller, "recovery_box", None) is not None, timeout=3000)
    box = new_controller.recovery_box
    [recover] = [b for b in box.buttons() if b.text() == "Recover"]
    recover.click()
    qtbot.waitUntil(lambda: restarted.fixed_volume() is not None, timeout=5000)
    assert restarted.panels["LandmarkDock"].landmark_set().to_dict() == expected
    assert new_controller.modified
    assert not (recovery_dir / f"autosave-{dead}.json").exists()
    new_controller.modified = False
    new_controller.shutdown()


def test_opening_a_2d_pair_after_3d_landmarks_sets_them_aside(qtbot, window, retina_paths):
    dock, *_ = _place_three_pairs(qtbot, window)
    assert len(dock.landmark_set().pairs) == 3 and dock.landmark_set().dimension == 3
    window.open_images(*retina_paths)
    qtbot.wait(50)
    assert dock.landmark_set().dimension == 2
    assert not dock.landmark_set().pairs
    assert window.fixed_volume().dimension == 2
