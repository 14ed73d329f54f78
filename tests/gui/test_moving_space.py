"""The Fixed | Moving layout with each image in its own space, and the guided picking flow,
driven by simulated clicks and keys in the real window on the demo brain pair whose true
fixed→moving affine is known (resources/demo/brain_true_affine.tfm)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore

from .conftest import DEMO, activate, click


@pytest.fixture(autouse=True)
def _fits_inline(monkeypatch):
    from regviewer.gui.panels import landmark_panel

    monkeypatch.setattr(landmark_panel, "SLOW_FIT_SECONDS", 60.0)


@pytest.fixture
def window(make_window, brain_paths):
    w = make_window(*brain_paths, panels=True)
    w.apply_layout("side_by_side", "axial")
    return w


def _step_to_depth(qtbot, view, depth: float) -> None:
    """Up/Down keys in `view` until its slice is the one nearest `depth` (as a user scrolls)."""
    steps = int(round((depth - view.depth) / view.plane.depth_step))
    key = QtCore.Qt.Key.Key_Up if steps > 0 else QtCore.Qt.Key.Key_Down
    for _ in range(abs(steps)):
        qtbot.keyClick(view, key)


def test_each_image_is_navigated_in_its_own_space(qtbot, window):
    fixed_view, moving_view = window.visible_slice_views()
    assert (fixed_view.space, moving_view.space) == ("fixed", "moving")
    assert moving_view.plane.origin == pytest.approx(window.moving_space._planes["axial"].origin)
    window.moving_space.set_linked(False)
    fixed_depth, moving_depth = fixed_view.depth, moving_view.depth
    for _ in range(4):
        qtbot.keyClick(moving_view, QtCore.Qt.Key.Key_Up)
    assert moving_view.depth == pytest.approx(moving_depth + 4 * moving_view.plane.depth_step)
    assert fixed_view.depth == fixed_depth  # unlinked: the fixed side stays
    # Its own zoom: zooming the moving view leaves the fixed one alone.
    before = fixed_view.view_box.viewRect()
    moving_view.view_box.scaleBy((0.5, 0.5))
    assert fixed_view.view_box.viewRect() == before
    # Any plane on either side.
    window.moving_space.set_orientation("sagittal")
    assert (fixed_view.plane.orientation, moving_view.plane.orientation) == ("axial", "sagittal")
    assert "moving (own space)" in moving_view._title.text()

    # Linked through the current transform: the moving cursor follows T(p), and back.
    window.moving_space.set_orientation("as fixed")
    window.moving_space.set_linked(True)
    window.set_current_transform(sitk.TranslationTransform(3, (0.0, 0.0, 10.0)), "shift")
    p = fixed_view.to_physical(40, 50)
    window.center_on(p)
    assert np.allclose(window.moving_space.cursor, np.asarray(p) + (0, 0, 10))
    assert moving_view.depth == pytest.approx(fixed_view.depth + 10)
    click(qtbot, moving_view, (30, 60))  # navigate mode: moves the moving cursor ...
    q = np.asarray(window.moving_space.cursor)
    assert np.allclose(window.view_state().cursor, q - (0, 0, 10), atol=1e-6)  # ... and the fixed one to T⁻¹(q)


def _brain_points() -> list[tuple[float, ...]]:
    """Eight fixed points on eight different axial slices, spread through the brain."""
    fixed = sitk.ReadImage(str(DEMO / "brain_t1_fixed.nii.gz"))
    out = []
    for k, (di, dj, dk) in enumerate([(-18, -22, -14), (18, -22, -10), (-18, 22, -6), (18, 22, -2),
                                      (-15, -18, 4), (15, -18, 8), (-15, 18, 12), (15, 18, 16)]):
        out.append(fixed.TransformContinuousIndexToPhysicalPoint((49.0 + di, 58.0 + dj, 45.0 + dk)))
    return out


def test_guided_picking_on_different_slices_recovers_the_true_affine(qtbot, window):
    dock = window.panels["LandmarkDock"]
    picking = dock.picking
    truth = sitk.ReadTransform(str(DEMO / "brain_true_affine.tfm"))
    dock.set_model("affine")
    fixed_view, moving_view = window.visible_slice_views()
    window.set_interaction_mode("landmark")
    activate(qtbot, window)
    assert picking.prompt().startswith("Next: L1")
    prediction_errors = []
    for i, p in enumerate(_brain_points()):
        window.center_on(p)  # the user scrolls the fixed view to the slice ...
        col, row, _ = fixed_view.plane.to_plane(p)
        click(qtbot, fixed_view, (col, row))  # ... and clicks the landmark
        pair = dock.landmark_set().pairs[-1]
        assert pair.moving is None and pair.name == f"L{i + 1}"
        assert "moving view" in picking.prompt()
        # The moving view jumped to the predicted position (the fit once there is one).
        predicted = np.asarray(window.moving_space.cursor)
        assert np.allclose(predicted, picking.last_prediction)
        q = np.asarray(truth.TransformPoint(pair.fixed))
        prediction_errors.append(float(np.linalg.norm(predicted - q)))
        # The user scrolls the moving view to the slice nearest the true point and clicks it.
        _step_to_depth(qtbot, moving_view, moving_view.plane.depth_of(q))
        mcol, mrow, _ = moving_view.plane.to_plane(q)
        click(qtbot, moving_view, (mcol, mrow))
        assert dock.landmark_set().pairs[-1].complete
    pairs = dock.landmark_set().pairs
    assert len({round(p.fixed[2], 3) for p in pairs}) == 8  # eight different fixed slices
    assert len({round(p.moving[2], 1) for p in pairs}) >= 6  # and moving slices of the moving image
    # After four pairs the affine fit predicts the moving point far better than identity.
    assert max(prediction_errors[5:]) < 3.0 < min(prediction_errors[:4])

    qtbot.mouseClick(picking.fit_button, QtCore.Qt.MouseButton.LeftButton)
    dock.wait_for_fit()
    assert picking.apply_button.isEnabled()
    qtbot.mouseClick(picking.apply_button, QtCore.Qt.MouseButton.LeftButton)
    fitted = window.current_transform()
    # True error over the brain: within the clicking noise (half a 2 mm slice through the plane).
    mask = sitk.ReadImage(str(DEMO / "brain_mask_fixed.nii.gz"))
    idx = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[::97]
    points = [mask.TransformIndexToPhysicalPoint([int(i) for i in ijk[::-1]]) for ijk in idx]
    errors = np.array([np.linalg.norm(np.subtract(fitted.TransformPoint(x), truth.TransformPoint(x)))
                       for x in points])
    assert errors.mean() < 1.0 and errors.max() < 2.0, (errors.mean(), errors.max())


def test_escape_drops_a_half_pair_and_shortcuts_fit_and_apply(qtbot, window):
    dock = window.panels["LandmarkDock"]
    fixed_view, _moving_view = window.visible_slice_views()
    window.set_interaction_mode("landmark")
    activate(qtbot, window)
    click(qtbot, fixed_view, (40, 50))
    assert len(dock.landmark_set().pairs) == 1 and dock.picking.escape_shortcut.isEnabled()
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_Escape)
    assert dock.landmark_set().pairs == [] or len(dock.landmark_set().pairs) == 0
    assert dock.picking.prompt().startswith("Next: L1")
    assert not dock.picking.escape_shortcut.isEnabled()
    # Translation from three complete pairs, applied with the keyboard.
    dock.set_model("translation")
    for col, row in ((30, 40), (60, 45), (45, 80)):
        click(qtbot, fixed_view, (col, row))
        click(qtbot, _moving_view, (col + 2, row))
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_F,
                   QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    dock.wait_for_fit()
    assert dock.fit_result is not None
    qtbot.keyClick(fixed_view, QtCore.Qt.Key.Key_A,
                   QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    shift = np.asarray(window.current_transform().TransformPoint((0.0, 0.0, 0.0)))
    assert abs(abs(shift[0]) - 4.0) < 0.6  # two 2 mm pixels along the screen's x axis


def test_markers_follow_the_previewed_transform(qtbot, window):
    dock = window.panels["LandmarkDock"]
    window.apply_layout("single", "axial")
    view = window.visible_slice_views()[0]
    p = view.to_physical(40, 50)
    dock.landmark_set().add_pair(fixed=p, moving=p)
    square = [m for m in dock.markers.markers(view) if m.which == "moving"][0]
    assert (square.pos().x(), square.pos().y()) == pytest.approx((40, 50))
    window.show_preview_transform(sitk.TranslationTransform(3, (-6.0, 0.0, 0.0)))  # a run's snapshot
    window.flush_preview()
    square = [m for m in dock.markers.markers(view) if m.which == "moving"][0]
    col, _row, _ = view.plane.to_plane(np.asarray(p) + (6.0, 0, 0))
    assert square.pos().x() == pytest.approx(col)


def test_moving_view_settings_are_a_session_part(window):
    space = window.moving_space
    space.set_linked(False)
    space.set_orientation("coronal")
    space.jump_to((1.0, 2.0, 3.0))
    state = space.state()
    space.set_linked(True)
    space.set_orientation("as fixed")
    space.restore_state(state)
    assert (space.linked, space.orientation) == (False, "coronal")
    assert np.allclose(space.cursor, (1.0, 2.0, 3.0))
    assert window.visible_slice_views()[1].plane.orientation == "coronal"


def test_a_moving_image_on_another_grid_is_shown_and_picked_on_its_own_grid(qtbot, window):
    from regviewer.core.imaging.image import Volume

    fixed = window.fixed_volume()
    src = window.moving_volume().sitk
    # The moving image on a coarser, shifted grid (3 mm voxels, origin moved 7 mm).
    grid = sitk.Image([int(n * 2 / 3) for n in src.GetSize()], src.GetPixelID())
    grid.SetSpacing((3.0, 3.0, 3.0))
    grid.SetDirection(src.GetDirection())
    grid.SetOrigin(tuple(np.asarray(src.GetOrigin()) + (0.0, 0.0, 7.0)))
    moving = Volume(sitk.Resample(src, grid), path="coarse.nii.gz")
    window.set_volumes(fixed, moving)
    window.apply_layout("side_by_side", "axial")
    qtbot.wait(50)
    fixed_view, moving_view = window.visible_slice_views()
    assert moving_view.plane.spacing == (3.0, 3.0) and moving_view.plane.depth_step == 3.0
    assert fixed_view.plane.spacing == (2.0, 2.0)
    dock = window.panels["LandmarkDock"]
    window.set_interaction_mode("landmark")
    click(qtbot, fixed_view, (40, 50))
    click(qtbot, moving_view, (20, 25))
    pair = dock.landmark_set().pairs[-1]
    assert np.allclose(pair.moving, moving_view.to_physical(20, 25), atol=0.6)  # a screen pixel
    marker = [m for m in dock.markers.markers(moving_view) if m.which == "moving"][0]
    assert (marker.pos().x(), marker.pos().y()) == pytest.approx((20, 25), abs=0.2)


def test_dragging_a_moving_marker_in_its_own_space_and_selecting_a_row(qtbot, window):
    from .conftest import drag

    dock = window.panels["LandmarkDock"]
    fixed_view, moving_view = window.visible_slice_views()
    window.moving_space.set_linked(False)
    window.set_interaction_mode("landmark")
    click(qtbot, fixed_view, (40, 50))
    click(qtbot, moving_view, (45, 52))
    before = np.asarray(dock.landmark_set().pairs[0].moving)
    drag(qtbot, moving_view, (45, 52), (49, 52))
    qtbot.waitUntil(lambda: not np.allclose(dock.landmark_set().pairs[0].moving, before), timeout=2000)
    after = np.asarray(dock.landmark_set().pairs[0].moving)
    assert np.allclose(after, moving_view.to_physical(49, 52), atol=0.6)  # moving space, no transform
    assert np.allclose(dock.landmark_set().pairs[0].fixed, fixed_view.to_physical(40, 50), atol=0.6)
    # Selecting the row shows its moving point in the (unlinked) moving view.
    window.moving_space.jump_to(np.asarray(after) + (0, 0, 20))
    dock.select(0)
    assert np.allclose(window.moving_space.cursor, after)
