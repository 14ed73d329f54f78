"""Picking in the single overlay view: the moving point is the anatomy under the cursor,
the moving image at T(x) for the transform ON SCREEN (a run's preview included), and its
marker is drawn back at T⁻¹(m), i.e. where it was clicked."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from .conftest import click


@pytest.fixture
def window(make_window, brain_paths):
    w = make_window(*brain_paths, panels=True)
    w.apply_layout("single", "axial")
    w.set_interaction_mode("landmark")
    return w


def _rigid(window, angles=(0.1, 0.05, 0.2), shift=(6.0, -4.0, 9.0)) -> sitk.Euler3DTransform:
    t = sitk.Euler3DTransform()
    t.SetCenter(tuple(window.fixed_volume().center_physical()))
    t.SetRotation(*angles)
    t.SetTranslation(shift)
    return t


def _pick_pair(qtbot, window, fixed_at=(40, 50), moving_at=(60, 70)):
    qtbot.wait(50)  # the layout settles its geometry
    view = window.visible_slice_views()[0]
    assert view.role == "overlay" and getattr(view, "space", "fixed") == "fixed"
    click(qtbot, view, fixed_at)
    click(qtbot, view, moving_at)
    qtbot.wait(10)
    [pair] = window.workspace.landmarks.pairs
    return view, pair, np.asarray(view.to_physical(*moving_at))


def test_overlay_click_records_the_moving_point_through_the_displayed_transform(qtbot, window):
    T = _rigid(window)
    window.set_current_transform(T, "Known rigid")
    view, pair, x = _pick_pair(qtbot, window)
    voxel = max(window.fixed_volume().sitk.GetSpacing())
    expected = np.asarray(T.TransformPoint(tuple(x)))
    assert np.linalg.norm(np.asarray(pair.moving) - expected) < voxel  # T(x), within click rounding
    assert np.linalg.norm(np.asarray(pair.moving) - x) > 5.0  # not the fixed-frame click position
    # Its marker is drawn at T⁻¹(m): back where it was clicked, on this slice.
    squares = [m for m in window.panels["LandmarkDock"].markers.markers(view) if m.which == "moving"]
    assert len(squares) == 1
    shown = np.asarray(view.plane.to_physical(squares[0].pos().x(), squares[0].pos().y(), view.depth))
    assert np.linalg.norm(shown - x) < voxel
    assert "through-plane" in window.statusBar().currentMessage()
    assert "through-plane" in window.panels["LandmarkDock"].picking.prompt_label.toolTip()


def test_a_run_preview_is_what_the_overlay_click_reads_through(qtbot, window):
    """During a run the views draw its preview, not the current transform: the moving
    point is the preview's T(x) (the old code used the current transform: 8 mm off)."""
    current = _rigid(window)
    window.set_current_transform(current, "Known rigid")
    preview = _rigid(window, shift=(6.0, 4.0, 9.0))  # 8 mm away along P
    window.workspace.set_preview(preview)
    qtbot.wait(10)
    _view, pair, x = _pick_pair(qtbot, window)
    voxel = max(window.fixed_volume().sitk.GetSpacing())
    assert np.linalg.norm(np.asarray(pair.moving) - np.asarray(preview.TransformPoint(tuple(x)))) < voxel
    assert np.linalg.norm(np.asarray(pair.moving) - np.asarray(current.TransformPoint(tuple(x)))) > 4.0


def test_the_prompt_in_the_overlay_view_says_what_the_moving_click_means(qtbot, window):
    qtbot.wait(50)
    click(qtbot, window.visible_slice_views()[0], (40, 50))
    prompt = window.panels["LandmarkDock"].picking.prompt()
    assert "through-plane" in prompt and "Fixed | Moving" in prompt
