"""The live-registration dock inside the real main window (H5's MainWindow)."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt6 import QtCore

from .test_live_panel import _short


def test_real_window_runs_applies_and_draws_grid(qtbot, make_window, retina_paths):
    window = make_window(*retina_paths, panels=True)
    dock = getattr(window, "panels", {}).get("LiveRegistrationDock")
    if dock is None:
        pytest.skip("the window did not load the live-registration dock")
    assert "registration" in window.session_parts()
    item = dock.grid_item(0)
    assert item.curve.getViewBox() is window.slice_views()[0].view_box
    dock.params.set_pipeline(_short(iterations=20))
    previews = []
    original = window.show_preview_transform
    window.show_preview_transform = lambda tx: previews.append(tx) or original(tx)
    with qtbot.waitSignal(dock.runFinished, timeout=30000):
        qtbot.mouseClick(dock.run_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.overlay.mode == "checkerboard"
    assert any(p is not None for p in previews)
    assert window.displayed_transform() is not window.current_transform()  # result previewed, not yet current
    qtbot.mouseClick(dock.apply_button, QtCore.Qt.MouseButton.LeftButton)
    p = (150.0, 200.0)
    result = dock.history.records[-1].transform
    assert np.allclose(window.current_transform().TransformPoint(p), result.TransformPoint(p))
    window.undo_transform()  # Apply is one undoable step
    assert np.allclose(window.current_transform().TransformPoint(p), p)
