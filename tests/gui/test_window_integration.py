"""The real window with the real panels: landmark pairs by clicks, live fit, undo/redo,
session save/reopen and crash recovery (issue 5's "done when")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore

from .conftest import click

pytest.importorskip("regviewer.gui.panels.landmark_panel")
pytest.importorskip("regviewer.gui.session_controller")

# (fixed col, row) → the moving click lands 3 px right, 2 px down in the moving view
_PICKS = [(30, 40), (60, 45), (45, 80)]


def _landmark_dock(window):
    dock = window.panels.get("LandmarkDock")
    assert dock is not None, "the landmark panel did not load"
    return dock


def _place_three_pairs(qtbot, w):
    w.apply_layout("side_by_side", "axial")
    w.set_interaction_mode("landmark")
    fixed_view, moving_view = w.visible_slice_views()
    for col, row in _PICKS:
        click(qtbot, fixed_view, (col, row))
        click(qtbot, moving_view, (col + 3, row + 2))
    return fixed_view, moving_view


def test_three_pairs_by_clicks_fit_live_and_undo_redo(qtbot, make_window, brain_paths):
    w = make_window(*brain_paths, panels=True)
    dock = _landmark_dock(w)
    dock.set_model("translation")
    dock.set_apply_live(False)  # with a live fit the moving view would re-align after each pair
    fixed_view, moving_view = _place_three_pairs(qtbot, w)
    pairs = dock.landmark_set().pairs
    assert len(pairs) == 3 and all(p.fixed is not None and p.moving is not None for p in pairs)
    # the moving click at fixed-frame p means moving point T(p) (identity before the first fit)
    expected_shift = np.array(fixed_view.to_physical(3, 2)) - np.array(fixed_view.to_physical(0, 0))
    qtbot.waitUntil(lambda: dock.fit_result is not None, timeout=3000)
    tx = dock.fit_result.transform
    w.set_current_transform(tx, "Landmark fit")
    p = fixed_view.to_physical(*_PICKS[0])
    assert np.allclose(np.array(tx.TransformPoint(p)) - p, expected_shift, atol=0.6)
    assert dock.markers.markers(fixed_view), "markers are drawn in the views"
    # Ctrl+Z / Ctrl+Shift+Z from the keyboard walk one history: the fit, then the last click
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert np.allclose(w.current_transform().TransformPoint(p), p)
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert len(dock.landmark_set().pairs[-1:]) == 1 and dock.landmark_set().pairs[-1].moving is None
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_Z,
                   QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert dock.landmark_set().pairs[-1].moving is not None


def test_session_save_and_reopen_restores_everything(qtbot, make_window, brain_paths, tmp_path):
    a = make_window(*brain_paths, panels=True, sessions=True)
    _place_three_pairs(qtbot, a)
    a.set_current_transform(sitk.TranslationTransform(3, (4.0, -2.0, 1.0)), "test")
    a.overlay.set_mode("fusion")
    a.apply_layout("single", "coronal")
    path = tmp_path / "work.rvsession.json"
    a.session_controller.save_session(path)

    b = make_window(panels=True, sessions=True)
    b.session_controller.open_session(path)
    assert b.fixed_volume().path == a.fixed_volume().path and b.moving_volume().path == a.moving_volume().path
    assert np.allclose(b.current_transform().TransformPoint((0, 0, 0)), (4, -2, 1))
    assert len(_landmark_dock(b).landmark_set().pairs) == 3
    assert b.overlay.mode == "fusion" and b.layout_name == "single"
    assert b.visible_slice_views()[0].plane.orientation == "coronal"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recover_from_an_autosave(qtbot, make_window, brain_paths, tmp_path):
    from regviewer.core.workspace.session import recovery_dir
    from regviewer.gui.session_controller import SessionController

    a = make_window(*brain_paths, panels=True, sessions=True)
    _place_three_pairs(qtbot, a)
    a.set_current_transform(sitk.TranslationTransform(3, (1.0, 2.0, 3.0)), "test")
    a.session_controller.autosave_now(wait=True)
    autosave = a.session_controller.recovery.autosave_path
    assert autosave.exists()
    # the run "crashes": its autosave now belongs to a process that no longer exists
    crashed = recovery_dir() / f"autosave-{_dead_pid()}.json"
    autosave.rename(crashed)

    b = make_window(panels=True, sessions=False)
    controller = SessionController(b)
    offered = []
    controller.ask_recover = offered.append
    controller.install(b)
    b.session_controller = controller
    qtbot.waitUntil(lambda: bool(offered), timeout=2000)
    controller.recover(offered[0][0])
    assert b.fixed_volume() is not None
    assert np.allclose(b.current_transform().TransformPoint((0, 0, 0)), (1, 2, 3))
    assert len(_landmark_dock(b).landmark_set().pairs) == 3
    assert not crashed.exists()
