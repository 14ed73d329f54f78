"""The issue's whole sequence in the real window: Run, Apply, a manual move, Run, Apply,
a landmark fit, Save Session, close, reopen: everything is back, and Ctrl+Z walks back
through that mixed sequence in order with the manual-alignment fields matching the image
at every step."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtCore

from .conftest import activate
from .test_live_panel import _short

POINTS = [(150.0, 150.0), (300.0, 160.0), (220.0, 320.0)]


def _same(a, b, points=POINTS) -> bool:
    return all(np.allclose(a.TransformPoint(p), b.TransformPoint(p), atol=1e-6) for p in points)


def _run_and_apply(qtbot, dock) -> None:
    with qtbot.waitSignal(dock.runFinished, timeout=30000):
        qtbot.mouseClick(dock.run_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dock.apply_button, QtCore.Qt.MouseButton.LeftButton)


def _fields_match_image(window) -> None:
    """The manual fields rebuild exactly the transform the views draw."""
    manual = window.manual_dock
    shown = {key: spin.value() for key, spin in manual.spins.items()}
    ws = window.workspace
    assert shown["tx"] == round(ws.manual.translation[0], 1) and shown["rz"] == round(ws.manual.rotation_deg[2], 1)
    assert window.displayed_transform() is ws.transform
    assert _same(ws.manual_transform(manual.alignment), ws.transform)


def test_run_apply_move_run_apply_fit_save_reopen_and_undo_in_order(qtbot, make_window, retina_paths, tmp_path):
    w = make_window(*retina_paths, panels=True, sessions=True)
    live, landmarks = w.panels["LiveRegistrationDock"], w.panels["LandmarkDock"]
    live.params.set_pipeline(_short(iterations=8))
    steps = []  # (undo text, transform) after each edit

    def remember():
        steps.append((w.workspace.history.undo_text, w.current_transform()))

    _run_and_apply(qtbot, live)
    remember()
    w.manual_dock.spins["tx"].setValue(4.0)  # a typed value: one "Move moving image" step after 250 ms
    qtbot.waitUntil(lambda: w.workspace.history.undo_text == "Move moving image", timeout=3000)
    remember()
    _run_and_apply(qtbot, live)
    remember()
    landmarks.set_model("rigid")
    for p in POINTS:
        landmarks.place_fixed(p)
        remember()
        landmarks.place_moving(w.current_transform().TransformPoint(p))
        remember()
    landmarks.set_apply_live(True)  # fits now and applies: "Landmark fit"
    landmarks.wait_for_fit()
    qtbot.waitUntil(lambda: w.workspace.history.undo_text == "Landmark fit", timeout=3000)
    remember()
    assert w.workspace.source.kind == "landmark-fit" and w.undo_action.text() == "Undo Landmark fit"
    path = w.session_controller.save_session(tmp_path / "work.rvsession.json")
    pairs = landmarks.landmark_set().pairs
    w.close()

    b = make_window(panels=True, sessions=True)
    b.session_controller.open_session(path)
    assert _same(b.current_transform(), steps[-1][1])
    assert b.panels["LandmarkDock"].landmark_set().pairs == pairs
    assert len(b.panels["LiveRegistrationDock"].history) == 2 and b.workspace.source.kind == "landmark-fit"
    _fields_match_image(b)
    activate(qtbot, b)
    for description, transform in reversed(steps):
        assert b.undo_action.text() == f"Undo {description}"
        assert _same(b.current_transform(), transform)
        _fields_match_image(b)
        qtbot.keyClick(b.visible_slice_views()[0], QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert _same(b.current_transform(), b.workspace.manual_transform(b.workspace.manual)) and not b.workspace.history.can_undo
    assert all(np.allclose(b.current_transform().TransformPoint(p), p) for p in POINTS)
    assert b.panels["LandmarkDock"].landmark_set().pairs == []
    # Reset after a redo returns to identity, undoably
    qtbot.keyClick(b.visible_slice_views()[0], QtCore.Qt.Key.Key_Z,
                   QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert b.workspace.source.kind == "run"
    b.manual_dock.reset()
    assert all(np.allclose(b.current_transform().TransformPoint(p), p) for p in POINTS)
    assert b.undo_action.text() == "Undo Reset transform"


def test_images_opened_on_the_workspace_by_a_script_are_shown(qtbot, make_window, retina_paths):
    """The window and scripts share one Workspace: `ws.open(...)` from Python shows the pair."""
    window = make_window()
    window.workspace.open(*[str(p) for p in retina_paths])
    assert window.visible_slice_views() and window.visible_slice_views()[0].last_image is not None
    assert "retina_fixed" in window.windowTitle()
