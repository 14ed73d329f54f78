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


def test_the_spare_engine_gets_the_images_when_they_open_and_a_run_does_not_send_them_again(
        qtbot, make_window, retina_paths, monkeypatch):
    """Handing a 1 mm pair to the engine process at Run cost a quarter to half a second of a
    ~3.5 s run: the window sends the pair to the waiting process when it opens instead."""
    from regviewer.core.imaging.image import Volume
    from regviewer.core.registration import remote

    remote.discard_spare()
    try:
        window = make_window(*retina_paths, panels=True)
        dock = window.panels["LiveRegistrationDock"]
        assert remote.spare_ready(60.0)
        held = remote._Spare.stager.holds(remote._Spare.conn)
        assert held["fixed"] is window.fixed_volume().sitk and held["moving"] is window.moving_volume().sitk
        packed = []
        real_pack = remote._pack_image
        monkeypatch.setattr(remote, "_pack_image", lambda image, buffers: packed.append(image) or real_pack(image, buffers))
        dock.params.set_pipeline(_short(iterations=20))
        with qtbot.waitSignal(dock.runFinished, timeout=60000):
            dock.run()
        assert not [p for p in packed if isinstance(p, Volume)]  # the run sent only its job
        assert dock.history.records[-1].transform is not None
    finally:
        remote.discard_spare()
