"""Region of interest drawn with the mouse in the real window: the box follows the drag,
is outlined, becomes the fixed mask of every run and of Copy as Python, and comes back
with the session."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .conftest import drag


def test_drag_a_box_and_paint_and_every_run_uses_the_mask(qtbot, make_window, brain_paths, tmp_path, monkeypatch):
    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True, sessions=True)
    w.apply_layout("single", "axial")
    w.set_interaction_mode("roi")
    qtbot.wait(50)  # the new layout settles its geometry
    view = w.visible_slice_views()[0]
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):  # the mask is written off the GUI thread
        drag(qtbot, view, (20, 30), (60, 70))
    box = w.roi.roi.box
    a, b = np.asarray(view.to_physical(20, 30)), np.asarray(view.to_physical(60, 70))
    assert np.allclose(box[0][:2], np.minimum(a, b)[:2], atol=0.6)
    assert np.allclose(box[1][:2], np.maximum(a, b)[:2], atol=0.6)
    corners = w.fixed_volume().corners_physical()
    assert np.isclose(box[0][2], corners[:, 2].min()) and np.isclose(box[1][2], corners[:, 2].max())
    xs, _ys = w.roi._items[id(view)][0].getData()
    assert len(xs) == 5  # the outline is drawn on this slice

    # The mask file on the fixed grid, 1 inside the box.
    path = w.roi.mask_path
    mask = sitk.ReadImage(str(path))
    assert mask.GetSize() == w.fixed_volume().sitk.GetSize()
    centre = (a + b) / 2
    assert mask[mask.TransformPhysicalPointToIndex(tuple(centre))] == 1
    assert mask[mask.TransformPhysicalPointToIndex(tuple(view.to_physical(5, 5)))] == 0

    # Every run and Copy as Python use it as the fixed mask.
    live = w.panels["LiveRegistrationDock"]
    assert live._make_job().fixed_mask == str(path)
    assert str(path) in live.python_text()

    # A coronal drag narrows the box's superior-inferior extent; painting adds to it.
    w.apply_layout("single", "coronal")
    qtbot.wait(50)
    coronal = w.visible_slice_views()[0]
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, coronal, (30, 40), (50, 60))
    lo, hi = w.roi.roi.box
    assert hi[2] - lo[2] < corners[:, 2].max() - corners[:, 2].min() - 10
    w.roi.tool_box.setCurrentText("paint")
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, coronal, (10, 10), (14, 10))
    assert len(w.roi.roi.balls) >= 2

    # Saved with the session, restored on open.
    saved = w.roi.roi
    session_path = w.session_controller.save_session(tmp_path / "case.rvsession")
    w.roi.clear()
    assert w.roi.roi.is_empty and live._mask("fixed") is None
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        w.session_controller.open_session(session_path)
    assert w.roi.roi == saved and live._mask("fixed") == str(path)


def test_a_box_on_a_2d_pair(qtbot, make_window, retina_paths, tmp_path, monkeypatch):
    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*retina_paths, panels=True)
    w.set_interaction_mode("roi")
    qtbot.wait(50)
    view = w.visible_slice_views()[0]
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, view, (100, 120), (300, 260))
    xs, _ys = w.roi._items[id(view)][0].getData()
    assert len(xs) == 5
    mask = sitk.ReadImage(str(w.roi.mask_path))
    assert mask.GetDimension() == 2 and mask.GetSize() == w.fixed_volume().sitk.GetSize()
    inside = sitk.GetArrayFromImage(mask)
    assert 0.1 < inside.mean() < 0.5


def test_a_session_whose_mask_folder_is_gone_writes_the_mask_afresh(qtbot, make_window, brain_paths, tmp_path,
                                                                     monkeypatch):
    from regviewer.core.imaging.roi import RegionOfInterest

    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True)
    region = RegionOfInterest().with_box((-20, -20, -20), (20, 20, 20))
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        w.roi.restore_state({"region": region.to_json(), "mask": str(tmp_path / "gone" / "roi.nii.gz")})
    assert w.roi.roi == region and w.roi.mask_path.parent == tmp_path / "roi"
    assert w.roi.mask_path.exists() and w.last_error is None


def test_the_mask_is_a_workspace_setting_and_a_new_pair_drops_the_old_region(qtbot, make_window, brain_paths,
                                                                              retina_paths, tmp_path, monkeypatch):
    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True)
    w.set_interaction_mode("roi")
    qtbot.wait(50)
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, w.visible_slice_views()[0], (20, 30), (60, 70))
    assert w.workspace.settings.fixed_mask == str(w.roi.mask_path)  # saved with the session, seen by scripts
    w.open_images(*[str(p) for p in retina_paths])
    assert w.roi.roi.is_empty and w.workspace.settings.fixed_mask is None
    live = w.panels["LiveRegistrationDock"]
    w.workspace.set_settings(fixed_mask=str(tmp_path / "m.nii.gz"))  # e.g. a restored session
    assert live._mask("fixed") == str(tmp_path / "m.nii.gz")


def test_save_mask_writes_where_the_person_chose(qtbot, make_window, retina_paths, tmp_path, monkeypatch):
    from PyQt6 import QtWidgets

    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*retina_paths, panels=True)
    w.set_interaction_mode("roi")
    qtbot.wait(50)
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, w.visible_slice_views()[0], (100, 120), (300, 260))
    chosen = tmp_path / "chosen_mask.nii.gz"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(chosen), ""))
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        w.roi._save_dialog()
    assert chosen.exists() and w.panels["LiveRegistrationDock"]._mask("fixed") == str(chosen)


def test_a_paint_stroke_then_ctrl_z_restores_the_previous_mask(qtbot, make_window, brain_paths, tmp_path,
                                                                  monkeypatch):
    """Each box drag, paint stroke and Clear is one step of the window's one undo history;
    Ctrl+Z puts the previous region back, redraws it and rewrites the mask runs use."""
    from PyQt6 import QtCore

    from .conftest import activate

    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True)
    w.apply_layout("single", "axial")
    w.set_interaction_mode("roi")
    qtbot.wait(50)
    view = w.visible_slice_views()[0]
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, view, (20, 30), (60, 70))
    box_only = w.roi.roi
    before = sitk.GetArrayFromImage(sitk.ReadImage(str(w.roi.mask_path)))
    w.roi.tool_box.setCurrentText("paint")
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, view, (80, 80), (95, 85))  # outside the box
    assert w.roi.roi.balls and w.workspace.history.undo_text == "Paint region"
    painted = sitk.GetArrayFromImage(sitk.ReadImage(str(w.roi.mask_path)))
    assert painted.sum() > before.sum()

    activate(qtbot, w)
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        qtbot.keyClick(w, QtCore.Qt.Key.Key_Z, ctrl)
    assert w.roi.roi == box_only and w.workspace.history.undo_text == "Draw region box"
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(w.roi.mask_path))), before)
    assert len(w.roi._items[id(view)][1].data) == 0  # the painted cut is gone from the view

    # Redo brings the stroke back; Clear is undoable too, and runs use the mask again after it.
    redo = ctrl | QtCore.Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        qtbot.keyClick(w, QtCore.Qt.Key.Key_Z, redo)
    assert w.roi.roi.balls
    w.roi.clear()
    live = w.panels["LiveRegistrationDock"]
    assert w.roi.roi.is_empty and live._mask("fixed") is None
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        qtbot.keyClick(w, QtCore.Qt.Key.Key_Z, ctrl)
    assert w.roi.roi.balls and live._mask("fixed") == str(w.roi.mask_path)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(w.roi.mask_path))), painted)


def test_a_region_set_by_a_script_thread_is_drawn_on_the_gui_thread(qtbot, make_window, brain_paths, tmp_path,
                                                                      monkeypatch):
    """The Workspace's ROI event goes through the Qt bridge like every other, so a script on
    another thread never touches the outline items itself."""
    import threading

    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True, sessions=True)
    w.apply_layout("single", "axial")
    qtbot.wait(50)
    view = w.visible_slice_views()[0]
    drawn_on: list[threading.Thread] = []
    real = w.roi._on_roi_changed

    def spy(roi):
        drawn_on.append(threading.current_thread())
        real(roi)

    w.bridge.roiChanged.disconnect()
    w.bridge.roiChanged.connect(spy)
    lo, hi = np.asarray(view.to_physical(20, 30)), np.asarray(view.to_physical(60, 70))
    z = w.fixed_volume().corners_physical()[:, 2]
    script = threading.Thread(target=lambda: w.workspace.set_roi(
        w.workspace.roi.with_box(tuple(np.minimum(lo, hi)[:2]) + (z.min(),), tuple(np.maximum(lo, hi)[:2]) + (z.max(),)),
        "Box from a script"))
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        script.start()
        script.join()
    assert drawn_on and all(t is threading.main_thread() for t in drawn_on)
    assert len(w.roi._items[id(view)][0].getData()[0]) == 5


def test_redo_answers_ctrl_y_too(make_window, brain_paths):
    from PyQt6 import QtGui

    w = make_window(*brain_paths)
    keys = {s.toString() for s in w.redo_action.shortcuts()}
    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= keys and w.undo_action.shortcut() == QtGui.QKeySequence("Ctrl+Z")


def test_an_undo_in_the_middle_of_a_stroke_stays_undone(qtbot, make_window, brain_paths, tmp_path, monkeypatch):
    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True)
    w.apply_layout("single", "axial")
    qtbot.wait(50)
    view = w.visible_slice_views()[0]
    lo, hi = np.asarray(view.to_physical(20, 30)), np.asarray(view.to_physical(60, 70))
    z = w.fixed_volume().corners_physical()[:, 2]
    w.workspace.set_roi(w.workspace.roi.with_box(tuple(np.minimum(lo, hi)[:2]) + (z.min(),),
                                                 tuple(np.maximum(lo, hi)[:2]) + (z.max(),)), "Draw box")
    w.roi.tool_box.setCurrentText("paint")
    here = tuple(view.to_physical(80, 80))
    w.roi.on_drag(view, here, here, finished=False)  # a stroke begins over the box
    w.workspace.undo()  # Ctrl+Z while the mouse is still down
    w.roi.on_drag(view, here, here, finished=True)
    assert w.roi.roi.box is None and w.roi.roi.balls  # the box stays undone; the stroke is its own step


def test_opening_a_session_writes_its_mask_once(qtbot, make_window, brain_paths, tmp_path, monkeypatch):
    """The Workspace's restore changes the region and then the session names its mask file:
    one write in all (a 256³ mask takes seconds to rasterise)."""
    import regviewer.gui.views.roi_item as roi_item

    monkeypatch.setenv("REGVIEWER_ROI_DIR", str(tmp_path / "roi"))
    w = make_window(*brain_paths, panels=True, sessions=True)
    w.apply_layout("single", "axial")
    w.set_interaction_mode("roi")
    qtbot.wait(50)
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        drag(qtbot, w.visible_slice_views()[0], (20, 30), (60, 70))
    session_path = w.session_controller.save_session(tmp_path / "case.rvsession")
    w.roi.clear()
    writes = []
    real = roi_item.write_mask
    monkeypatch.setattr(roi_item, "write_mask", lambda *a: writes.append(a) or real(*a))
    with qtbot.waitSignal(w.roi.maskWritten, timeout=20000):
        w.session_controller.open_session(session_path)
    qtbot.wait(300)
    assert len(writes) == 1
