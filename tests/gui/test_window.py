"""The main window driven through its real widgets: open, scroll, click, layouts,
window/level, errors, saves, drag-and-drop."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.imaging.io import read_image
from regviewer.gui.host import RegistrationHost, SliceViewLike

from .conftest import click, drag, skip_without_vtk_display


def test_window_implements_the_host_protocols(brain_window):
    w = brain_window
    assert isinstance(w, RegistrationHost)
    assert all(isinstance(v, SliceViewLike) for v in w.visible_slice_views())
    assert w.fixed_volume().dimension == 3 and w.moving_volume() is not None
    assert w.current_transform().GetDimension() == 3


def test_three_views_with_orientation_letters_and_cursor_at_centre(brain_window):
    w = brain_window
    views = {v.plane.orientation: v for v in w.visible_slice_views()}
    assert set(views) == {"axial", "coronal", "sagittal"}
    assert [views["axial"].letter(e) for e in ("left", "right", "top", "bottom")] == ["R", "L", "A", "P"]
    assert [views["coronal"].letter(e) for e in ("left", "right", "top", "bottom")] == ["R", "L", "S", "I"]
    assert [views["sagittal"].letter(e) for e in ("left", "right", "top", "bottom")] == ["A", "P", "S", "I"]
    centre = w.fixed_volume().center_physical()
    for v in views.values():
        assert v.last_rgb is not None and v.last_rgb.shape[:2] == v.plane.shape and v.last_rgb.max() > 0
        assert np.isclose(v.depth, v.plane.depth_of(centre))


def test_wheel_and_keys_scroll_and_move_the_linked_cursor(qtbot, brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    before = axial.depth
    with qtbot.waitSignal(axial.sliceChanged, timeout=1000):
        qtbot.keyClick(axial, QtCore.Qt.Key.Key_Up)
    assert np.isclose(axial.depth, before + axial.plane.depth_step)
    # the cursor followed, so the other views' crosshairs are on the new slice
    assert np.isclose(w._cursor[2], axial.depth)
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_PageDown)
    assert np.isclose(axial.depth, before + axial.plane.depth_step * -4)
    axial.view_box.wheelEvent(_FakeWheel(120))
    assert np.isclose(axial.depth, before + axial.plane.depth_step * -3)


class _FakeWheel:
    def __init__(self, delta):
        self._delta = delta

    def modifiers(self):
        return QtCore.Qt.KeyboardModifier.NoModifier

    def delta(self):
        return self._delta

    def accept(self):
        pass


def test_click_moves_the_crosshair_in_every_view_and_status_shows_both_intensities(qtbot, brain_window):
    w = brain_window
    axial, coronal = w.view("overlay", "axial"), w.view("overlay", "coronal")
    click(qtbot, axial, (30, 40))
    expected = axial.to_physical(30, 40)
    assert np.allclose(w._cursor, expected, atol=1.0)
    col, row, depth = coronal.plane.to_plane(w._cursor)
    assert np.isclose(coronal.depth, np.clip(depth, *coronal.plane.depth_range), atol=1e-6)
    assert abs(coronal.v_line.value() - col) < 1e-6
    text = w.position_label.text()
    assert "mm LPS" in text and "fixed" in text and "moving" in text


def test_layouts(brain_window):
    w = brain_window
    w.apply_layout("single", "coronal")
    assert [(v.role, v.plane.orientation) for v in w.visible_slice_views()] == [("overlay", "coronal")]
    w.apply_layout("side_by_side", "axial")
    views = w.visible_slice_views()
    assert [v.role for v in views] == ["fixed", "moving"]
    fixed_view, moving_view = views
    assert fixed_view.isVisible() and moving_view.isVisible()
    # the moving view shows the moving image resampled into the fixed frame
    assert not np.array_equal(fixed_view.last_rgb, moving_view.last_rgb)
    w.apply_layout("1x3+3d")
    assert len(w.visible_slice_views()) == 3


def test_2d_pair_shows_one_view(make_window, retina_paths):
    w = make_window(*retina_paths)
    views = w.visible_slice_views()
    assert len(views) == 1 and views[0].plane.dimension == 2
    assert views[0].last_rgb.shape[2] == 3
    w.apply_layout("side_by_side")
    assert len(w.visible_slice_views()) == 2


def test_errors_show_a_dialog_and_keep_the_window_usable(brain_window, tmp_path):
    w = brain_window
    before = w.fixed_volume()
    assert not w.open_images(str(tmp_path / "missing.nii.gz"), None)
    assert "does not exist" in w.last_error and "Traceback" not in w.last_error
    assert w.fixed_volume() is before
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not an image at all")
    assert not w.open_images(str(bad), None)
    assert "bad.nii.gz" in w.last_error
    retina = w.fixed_volume()
    w.refresh_views()  # still draws
    assert retina is before


def test_window_level_drag_and_presets(qtbot, brain_window):
    w = brain_window
    w.set_interaction_mode("window_level")
    win0, lev0 = w.window_level("fixed")
    axial = w.view("overlay", "axial")
    drag(qtbot, axial, (20, 20), (60, 20))
    win1, lev1 = w.window_level("fixed")
    assert win1 > win0 and np.isclose(lev1, lev0)
    w.apply_window_preset("full range")
    arr = w.fixed_volume().array()
    assert np.isclose(w.window_level("fixed")[0], float(arr.max()) - float(arr.min()))


def test_window_level_presets_fit_the_image_and_drag_shows_on_colour(qtbot, make_window, brain_paths, retina_paths):
    brain = make_window(*brain_paths)
    offered = [brain.wl_preset_box.itemText(i) for i in range(brain.wl_preset_box.count())]
    assert not any("CT" in name for name in offered) and any("percentiles" in name for name in offered)  # an MR
    retina = make_window(*retina_paths)
    assert [retina.wl_preset_box.itemText(i) for i in range(retina.wl_preset_box.count())] == ["auto", "full range"]
    retina.set_interaction_mode("window_level")
    view = retina.visible_slice_views()[0]
    before = np.array(view.last_rgb, copy=True)
    drag(qtbot, view, (200, 300), (200, 100))  # up: lower level, brighter
    after = np.array(view.last_rgb)
    assert after.mean() > before.mean() + 5


def test_landmark_mode_click_emits_a_fixed_frame_point(qtbot, brain_window):
    w = brain_window
    w.set_interaction_mode("landmark")
    w.apply_layout("side_by_side", "axial")
    moving_view = w.visible_slice_views()[1]
    cursor_before = w._cursor
    with qtbot.waitSignal(moving_view.clicked, timeout=1000) as blocker:
        click(qtbot, moving_view, (40, 50))
    point, role, _mods = blocker.args
    assert role == "moving"
    assert np.allclose(point, moving_view.to_physical(40, 50), atol=1.0)
    assert w._cursor == cursor_before  # landmark clicks do not move the crosshair


def test_saves_are_atomic_and_guard_the_inputs(brain_window, tmp_path):
    from regviewer.gui import file_actions

    w = brain_window
    w.set_current_transform(sitk.TranslationTransform(3, (2.0, 0.0, 0.0)), "test")
    tfm = tmp_path / "t.tfm"
    assert file_actions.save_transform(w, tfm)
    assert "FIXED image points to MOVING" in tfm.read_text()
    assert np.allclose(sitk.ReadTransform(str(tfm)).TransformPoint((0, 0, 0)), (2, 0, 0))
    out = tmp_path / "resampled.nii.gz"
    assert file_actions.save_resampled(w, out)
    assert read_image(out).size == w.fixed_volume().size
    shot = tmp_path / "shot.png"
    assert file_actions.save_screenshot(w, shot)
    assert shot.stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".regviewer-tmp")]
    # overwriting an input image needs a yes
    asked = []
    w.confirm = lambda title, text: asked.append(text) or False
    moving_path = w.moving_volume().path
    size_before = (tmp_path / "x").exists()
    assert not file_actions.save_resampled(w, moving_path)
    assert asked and not size_before


def test_drop_and_recent_files(brain_window, brain_paths, retina_paths):
    from regviewer.gui import file_actions

    w = brain_window
    file_actions.handle_dropped_paths(w, [str(p) for p in retina_paths])
    assert w.fixed_volume().dimension == 2
    recent = file_actions.recent_pairs()
    assert recent[0] == (str(retina_paths[0]), str(retina_paths[1]))
    assert recent[1] == (str(brain_paths[0]), str(brain_paths[1]))


def test_preview_transform_does_not_change_the_current_one(qtbot, brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    before = axial.last_rgb.copy()
    calls = []
    w.on_transform_changed(lambda: calls.append(1))
    w.show_preview_transform(sitk.TranslationTransform(3, (10.0, 0.0, 0.0)))
    qtbot.waitUntil(lambda: not np.array_equal(axial.last_rgb, before), timeout=1000)
    assert w.current_transform().GetName() != "TranslationTransform" and not calls
    w.show_preview_transform(None)
    w.flush_preview()
    assert np.array_equal(axial.last_rgb, before)
    w.set_current_transform(sitk.TranslationTransform(3, (10.0, 0.0, 0.0)), "move")
    assert calls == [1]
    w.undo_transform()
    assert np.allclose(w.current_transform().TransformPoint((1, 2, 3)), (1, 2, 3))
    w.redo_transform()
    assert np.allclose(w.current_transform().TransformPoint((1, 2, 3)), (11, 2, 3))


def test_3d_view_under_xcb(make_window, brain_paths):
    skip_without_vtk_display()
    w = make_window(*brain_paths, three_d=True)
    vv = w.volume_view()
    assert vv is not None
    vv.set_polylines("grid", [np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0]], float)], (1, 0, 0))
    assert vv.polyline_names() == ["grid"]
    vv.set_polylines("grid", None)
    assert vv.polyline_names() == []
    image = vv.snapshot()
    assert image is not None and image.width() > 10


def test_dicom_folder_with_several_series_asks_which(brain_window, brain_paths, monkeypatch, tmp_path):
    from regviewer.core.errors import MultipleSeriesError
    from regviewer.core.imaging.io import DicomSeries
    from regviewer.gui import file_actions

    w = brain_window
    series = [DicomSeries("1.2.3", "T1", 94, ()), DicomSeries("1.2.4", "T2", 94, ())]
    calls = []

    def fake_read(path, time_point=None, series_uid=None):
        calls.append(series_uid)
        if series_uid is None:
            raise MultipleSeriesError(path, series)
        return read_image(brain_paths[1])

    monkeypatch.setattr(file_actions, "read_image", fake_read)
    asked = []
    w.choose_dicom_series = lambda folder, found: asked.append([s.series_uid for s in found]) or "1.2.4"
    assert w.open_images(str(tmp_path), None)
    assert asked == [["1.2.3", "1.2.4"]] and calls == [None, "1.2.4"]
    # cancelling the chooser keeps the current images
    before = w.fixed_volume()
    w.choose_dicom_series = lambda folder, found: None
    assert not w.open_images(str(tmp_path), None)
    assert w.fixed_volume() is before


def test_middle_drag_pans_and_right_drag_zooms(qtbot, brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    (x0, x1), _ = axial.view_box.viewRange()
    drag(qtbot, axial, (40, 40), (60, 40), button=QtCore.Qt.MouseButton.MiddleButton)
    (x2, x3), _ = axial.view_box.viewRange()
    assert x2 < x0 - 5 and np.isclose(x3 - x2, x1 - x0)
    cursor = w._cursor
    (_, _), (y2, y3) = axial.view_box.viewRange()
    drag(qtbot, axial, (40, 40), (20, 20), button=QtCore.Qt.MouseButton.RightButton)
    (x4, x5), (y4, y5) = axial.view_box.viewRange()
    assert abs((x5 - x4) - (x3 - x2)) > 1 or abs((y5 - y4) - (y3 - y2)) > 1  # zoomed
    assert w._cursor == cursor


def test_3d_polylines_are_not_hidden_by_the_slice_planes(make_window, brain_paths):
    """After a run the warped grid leaves its plane; the opaque slices must not cut it up."""
    skip_without_vtk_display()
    w = make_window(*brain_paths, three_d=True)
    vv = w.volume_view()
    axial = w.view("overlay", "axial")
    vv.set_plane_image("axial", axial.plane, axial.depth, np.full(axial.plane.shape + (3,), 90, np.uint8))
    centre = np.asarray(w.fixed_volume().center_physical())
    # A red line 20 mm below the axial slice, under its middle: the camera looks down on it.
    below = centre + (0, 0, axial.depth - centre[2] - 20.0)
    vv.set_polylines("grid", [np.array([below - (60, 0, 0), below + (60, 0, 0)])], (1, 0, 0))
    image = vv.snapshot()
    ptr = image.constBits()
    arr = np.frombuffer(ptr.asstring(image.sizeInBytes()), np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
    assert red.sum() > 30


def test_3d_plane_pictures_wait_for_the_next_frame_and_only_the_newest_is_uploaded(make_window, brain_paths):
    """Slice steps redraw the 2D views many times between two 3D frames: one upload per frame."""
    skip_without_vtk_display()
    w = make_window(*brain_paths, three_d=True)
    vv = w.volume_view()
    axial = w.view("overlay", "axial")
    rows, cols = axial.plane.shape
    vv.set_plane_image("axial", axial.plane, axial.depth, np.full((rows, cols), 10, np.uint8))  # grey is fine
    vv.set_plane_image("axial", axial.plane, axial.depth + 2, np.full((rows, cols, 3), 200, np.uint8))
    assert "axial" in vv._pending
    vv._render_now()
    assert vv._pending == {}
    source, _texture, vtk_image, _actor = vv._planes["axial"]
    assert vtk_image.GetDimensions()[:2] == (cols, rows)
    assert vtk_image.GetPointData().GetScalars().GetRange(0) == (200.0, 200.0)  # the newest picture
    assert source.GetOrigin()[2] == pytest.approx(axial.plane.to_physical(-0.5, -0.5, axial.depth + 2)[2])
    assert vv.render_window.GetMultiSamples() == 0  # software OpenGL: no 4x multisampling


def test_a_window_with_the_live_panel_starts_a_spare_engine_when_images_open(make_window, brain_paths):
    """So a run does not wait a second for a process to start and import the engine."""
    from regviewer.core.registration import remote

    remote.discard_spare()
    try:
        w = make_window(*brain_paths, panels=True)
        assert "LiveRegistrationDock" in w.panels
        assert remote._Spare.process is not None and remote._Spare.process.is_alive()
        assert remote.spare_ready(60.0)
        w.close()  # the spare has no window to serve any more, and a late timer starts none
        assert remote._Spare.process is None
        w._prewarm_engine()
        assert remote._Spare.process is None
    finally:
        remote.discard_spare()


def test_the_3d_view_is_made_only_when_its_layout_is_shown_and_gets_what_was_set_before(make_window, brain_paths):
    """VTK costs ~170 MB and most of a second: a window in another layout does not pay it."""
    skip_without_vtk_display()
    w = make_window(three_d=True)
    w.apply_layout("single")
    assert w.open_images(*(str(p) for p in brain_paths)), w.last_error
    vv = w.volume_view()
    assert vv is not None and not vv.created
    centre = np.asarray(w.fixed_volume().center_physical())
    vv.set_polylines("grid", [np.array([centre - (30, 0, 0), centre + (30, 0, 0)])], (1, 0, 0))
    assert vv.polyline_names() == ["grid"] and not vv.created
    w.apply_layout("1x3+3d")
    assert vv.created and vv.isVisible()
    assert vv.polyline_names() == ["grid"]  # handed over to the real view
    assert set(vv._planes) | set(vv._pending) == {"axial", "coronal", "sagittal"}  # the slices drawn on show
    image = vv.snapshot()
    assert image is not None and image.width() > 50


def test_the_live_grid_is_bent_in_3d_only_when_the_3d_view_is_on_screen(qtbot, make_window, brain_paths):
    """The lazy 3D view exists in every layout; the warped 3D grid is computed beside the engine only
    when the view is shown."""
    skip_without_vtk_display()
    w = make_window(*brain_paths, panels=True, three_d=True)
    grid = w.panels["LiveRegistrationDock"].grid
    grid.visible_check.setChecked(True)
    w.apply_layout("1x3+3d", "axial")
    qtbot.waitUntil(lambda: grid._want_3d(), timeout=5000)
    w.apply_layout("single", "axial")
    qtbot.waitUntil(lambda: not grid._want_3d(), timeout=5000)
