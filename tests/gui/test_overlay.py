"""Overlay modes through the toolbar and keys: every mode draws what core.composite says."""

from __future__ import annotations

import numpy as np
from PyQt6 import QtCore

from regviewer.core.imaging.composite import OVERLAY_MODES

from .conftest import drag


def _axial(w):
    return w.view("overlay", "axial")


def test_every_mode_by_key_changes_the_overlay(qtbot, brain_window):
    w = brain_window
    w.set_current_transform(__import__("SimpleITK").TranslationTransform(3, (6.0, 4.0, 0.0)), "offset")
    images = {}
    for i, mode in enumerate(OVERLAY_MODES, start=1):
        qtbot.keyClick(_axial(w), getattr(QtCore.Qt.Key, f"Key_{i}"))
        assert w.overlay.mode == mode
        assert w.overlay.actions[mode].isChecked()
        rgb = _axial(w).last_rgb
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
        images[mode] = rgb.copy()
    # fusion is coloured, difference is grey, blend and checkerboard differ
    fusion = images["fusion"].astype(int)
    assert np.abs(fusion[..., 0] - fusion[..., 1]).max() > 50
    diff = images["difference"]
    assert (diff[..., 0] == diff[..., 1]).all()
    assert not np.array_equal(images["blend"], images["checkerboard"])
    # toolbar action works too
    w.overlay.actions["blend"].trigger()
    assert w.overlay.mode == "blend"


def test_blend_slider_and_checker_square(qtbot, brain_window):
    w = brain_window
    w.overlay.set_mode("blend")
    w.overlay._param_slider.setValue(0)
    assert w.overlay.settings.alpha == 0
    fixed_only = _axial(w).last_rgb.copy()
    w.overlay._param_slider.setValue(100)
    assert w.overlay.settings.alpha == 1
    assert not np.array_equal(fixed_only, _axial(w).last_rgb)
    w.overlay.set_mode("checkerboard")
    w.overlay._param_slider.setValue(8)
    assert w.overlay.settings.square_mm == 8


def test_curtain_divider_is_draggable(qtbot, brain_window):
    w = brain_window
    w.overlay.set_mode("curtain")
    view = _axial(w)
    line = view.curtain_line
    assert line is not None and line.movable
    cols = view.plane.shape[1]
    x0 = line.value()
    rows = view.plane.shape[0]
    drag(qtbot, view, (x0, rows / 2), (x0 + cols * 0.25, rows / 2))
    assert w.overlay.settings.curtain_position > 0.6
    w.overlay.set_mode("blend")
    assert view.curtain_line is None


def test_flicker_alternates(qtbot, brain_window):
    w = brain_window
    w.overlay.set_parameter(flicker_hz=10.0)
    w.overlay.set_mode("flicker")
    seen = set()

    def both():
        seen.add(w.overlay.flicker_shows)
        return seen == {"fixed", "moving"}

    qtbot.waitUntil(both, timeout=2000)
    w.overlay.set_mode("blend")
    assert not w.overlay._flicker_timer.isActive()


def test_overlay_settings_survive_in_the_view_state(brain_window):
    w = brain_window
    w.overlay.set_mode("checkerboard")
    w.overlay.set_parameter(square_mm=12.0)
    w.apply_layout("single", "sagittal")
    state = w.view_state_json()
    w.overlay.set_mode("blend")
    w.apply_layout("1x3+3d")
    w.restore_view_state(state)
    assert w.overlay.mode == "checkerboard" and w.overlay.settings.square_mm == 12.0
    assert w.layout_name == "single" and w.visible_slice_views()[0].plane.orientation == "sagittal"


def test_keys_do_not_fire_while_typing_in_a_field(qtbot, brain_window):
    w = brain_window
    w.overlay.set_mode("blend")
    spin = w.manual_dock.spins["tx"]
    spin.setFocus()
    qtbot.keyClick(spin, QtCore.Qt.Key.Key_A)  # not a digit: harmless either way
    assert w.overlay.mode == "blend"


def test_the_mode_parameter_is_shown_only_for_its_mode(brain_window):
    """The checkerboard's "Square" control is hidden in difference and fusion modes."""
    w = brain_window
    shown = lambda: [a.isVisible() for a in w.overlay._param_actions]  # noqa: E731
    w.overlay.set_mode("checkerboard")
    assert all(shown()) and w.overlay._param_label.text().strip() == "Square"
    for mode in ("difference", "fusion"):
        w.overlay.set_mode(mode)
        assert not any(shown()), mode
    w.overlay.set_mode("blend")
    assert all(shown()) and w.overlay._param_label.text().strip() == "Moving weight"
