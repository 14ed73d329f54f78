"""Manual alignment through the real widgets: drags in a slice view, sliders, fields, buttons."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.transforms.manual import centre_of_mass

from .conftest import drag

SHIFT = QtCore.Qt.KeyboardModifier.ShiftModifier
CTRL = QtCore.Qt.KeyboardModifier.ControlModifier


def test_shift_drag_translates_the_moving_image(qtbot, brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    calls = []
    w.on_transform_changed(lambda: calls.append(1))
    start, end = (40, 50), (50, 45)
    drag(qtbot, axial, start, end, modifiers=SHIFT)
    p0, p1 = np.array(axial.to_physical(*start)), np.array(axial.to_physical(*end))
    moved = p1 - p0  # the overlay moved by this much (fixed frame)
    tx = w.current_transform()
    # fixed point p1 now shows what was at p0 before: T(p1) = p0
    assert np.allclose(tx.TransformPoint(tuple(p1)), tuple(p0), atol=0.6)
    assert np.allclose(w.manual_dock.alignment.translation, moved, atol=0.6)
    assert calls == [1]  # one committed change for the whole drag
    assert np.isclose(w.manual_dock.spins["tx"].value(), moved[0], atol=0.6)


def test_ctrl_drag_rotates_about_the_crosshair(qtbot, brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    cursor = np.array(w._cursor)
    col, row, _ = axial.plane.to_plane(cursor)
    drag(qtbot, axial, (col + 20, row), (col, row + 20), modifiers=CTRL)
    tx = w.current_transform()
    # the crosshair point does not move, and the rotation is about the axial normal by ~90°
    assert np.allclose(tx.TransformPoint(tuple(cursor)), cursor, atol=1e-3)
    a = w.manual_dock.alignment
    assert abs(abs(a.rotation_deg[2]) - 90) < 3 and abs(a.rotation_deg[0]) < 1e-6 and abs(a.rotation_deg[1]) < 1e-6


def test_sliders_and_fields_commit_after_a_pause(qtbot, brain_window):
    w = brain_window
    dock = w.manual_dock
    dock.spins["ty"].setValue(12.5)
    # previewed at once, committed when the user pauses
    qtbot.waitUntil(lambda: np.allclose(w.current_transform().TransformPoint((0, 12.5, 0)), (0, 0, 0)), timeout=2000)
    dock.sliders["scale"].setValue(dock.sliders["scale"].maximum())
    assert np.isclose(dock.alignment.scale, 2.0)
    dock.commit()
    c = np.array(dock.alignment.centre)
    tx = w.current_transform()
    assert np.allclose(tx.TransformPoint(tuple(c + np.array([0, 12.5, 0]) + [20, 0, 0])), tuple(c + [10, 0, 0]), atol=1e-6)
    dock.reset()
    assert np.allclose(w.current_transform().TransformPoint((5, 6, 7)), (5, 6, 7))


def test_centre_buttons(brain_window):
    w = brain_window
    dock = w.manual_dock
    dock.centre_button.click()
    fixed, moving = w.fixed_volume(), w.moving_volume()
    assert np.allclose(w.current_transform().TransformPoint(fixed.center_physical()), moving.center_physical(), atol=1e-6)
    dock.mass_button.click()
    assert np.allclose(w.current_transform().TransformPoint(centre_of_mass(fixed)), centre_of_mass(moving), atol=1e-6)


def test_manual_nudges_a_transform_set_by_someone_else(brain_window):
    w = brain_window
    w.set_current_transform(sitk.TranslationTransform(3, (3.0, 0.0, 0.0)), "landmark fit")
    w.manual_dock.set_alignment(w.manual_dock.alignment.translated((0, 0, 4)))
    # T = base ∘ M⁻¹ : fixed p → p − (0,0,4) → + (3,0,0)
    assert np.allclose(w.current_transform().TransformPoint((0, 0, 4)), (3, 0, 0))
    w.undo_transform()
    assert np.allclose(w.current_transform().TransformPoint((0, 0, 0)), (3, 0, 0))


def test_2d_manual_alignment(qtbot, make_window, retina_paths):
    w = make_window(*retina_paths)
    dock = w.manual_dock
    assert not dock.spins["tz"].isVisibleTo(dock) and dock.spins["rz"].isVisibleTo(dock)
    view = w.visible_slice_views()[0]
    drag(qtbot, view, (100, 100), (130, 100), modifiers=SHIFT)
    tx = w.current_transform()
    assert tx.GetDimension() == 2
    p1 = view.to_physical(130, 100)
    assert np.allclose(tx.TransformPoint(p1), view.to_physical(100, 100), atol=0.6)
