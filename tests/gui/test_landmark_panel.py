"""The landmark dock driven through a fake host: clicks, table, markers, fit, undo."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.landmarks.model import LandmarkSet, load_landmarks
from regviewer.gui.views.landmark_markers import COLOURS
from regviewer.gui.panels.landmark_panel import LandmarkDock

from .fake_host import FakeHost


@pytest.fixture(autouse=True)
def _fits_inline(monkeypatch):
    """Quick fits run inline, whatever the machine's load (the threaded path has its own test)."""
    from regviewer.gui.panels import landmark_panel

    monkeypatch.setattr(landmark_panel, "SLOW_FIT_SECONDS", 60.0)


@pytest.fixture
def host(qtbot):
    window = FakeHost()
    qtbot.addWidget(window)
    return window


@pytest.fixture
def dock(host):
    d = LandmarkDock(host)
    host.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, d)
    yield d
    d.shutdown()


def _plane_points(host, n=3):
    """Non-collinear points on the views' current slice (FIXED frame, LPS mm)."""
    plane, depth = host.views[0].plane, host.views[0].depth
    cols_rows = [(4, 5), (15, 6), (8, 14), (18, 16), (3, 17), (12, 10)][:n]
    return [plane.to_physical(c, r, depth) for c, r in cols_rows]


def _place_pairs_by_clicks(host, points):
    fixed_view, moving_view = host.views
    for p in points:
        fixed_view.click_at(p)
        moving_view.click_at(p)


def test_clicks_make_pairs_in_the_right_spaces(host, dock):
    points = _plane_points(host)
    _place_pairs_by_clicks(host, points)
    pairs = dock.landmark_set().pairs
    assert [p.name for p in pairs] == ["L1", "L2", "L3"]
    for pair, p in zip(pairs, points):
        assert np.allclose(pair.fixed, p)
        # The moving view shows the moving image in the fixed frame under T: a click at p is T(p).
        assert np.allclose(pair.moving, np.asarray(p) + (5.0, 0.0, 0.0))
    assert host.workspace.landmarks is dock.landmark_set()
    assert dock.table.rowCount() == 3
    assert dock.table.item(0, 1).text() == "L1"
    assert host.modified_count >= 6


def test_fit_applied_live_and_undo_redo_by_keys(qtbot, host, dock):
    host.show()
    qtbot.waitExposed(host)
    dock.set_model("rigid")
    dock.set_apply_live(True)
    host.transform = sitk.TranslationTransform(3, (0.0, 0.0, 0.0))
    points = _plane_points(host)
    # Moving points are the fixed ones shifted by (3, -2, 1): place them in the fixed view and type them in.
    shift = np.array([3.0, -2.0, 1.0])
    for p in points:
        host.views[0].click_at(p)
        dock.place_moving(tuple(np.asarray(p) + shift))
    fit = dock.fit_result
    assert fit is not None and fit.rms_mm < 1e-6
    assert host.transform_history[-1] == "Landmark fit"
    assert np.allclose(host.transform.TransformPoint((1.0, 2.0, 3.0)), np.array([1.0, 2.0, 3.0]) + shift, atol=1e-6)
    assert dock.table.item(0, 4).text() == "0.00"

    before = dock.landmark_set().to_dict()
    host.activateWindow()
    with qtbot.waitActive(host):
        host.activateWindow()
    fitted = host.transform
    # One history: the first Ctrl+Z undoes the fit's transform step, the second the landmark edit.
    qtbot.keyClick(host, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert dock.landmark_set().to_dict() == before
    assert not np.allclose(host.transform.TransformPoint((1.0, 2.0, 3.0)), fitted.TransformPoint((1.0, 2.0, 3.0)))
    qtbot.keyClick(host, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert len(dock.landmark_set().pairs) == 3 and dock.landmark_set().pairs[2].moving is None
    assert "L3" in dock.summary.text() or "3" in dock.summary.text() or dock.fit_error is not None
    assert host.workspace.history.can_redo  # the refit after undo did not push a new step
    redo = QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(host, QtCore.Qt.Key.Key_Z, redo)
    qtbot.keyClick(host, QtCore.Qt.Key.Key_Z, redo)
    assert dock.landmark_set().to_dict() == before
    assert np.allclose(host.transform.TransformPoint((1.0, 2.0, 3.0)), fitted.TransformPoint((1.0, 2.0, 3.0)))
    assert dock.fit_result is not None and dock.fit_result.rms_mm < 1e-6


def test_too_few_points_says_so_without_a_traceback(host, dock):
    dock.set_model("affine")
    _place_pairs_by_clicks(host, _plane_points(host, 2))
    assert dock.fit_result is None
    assert dock.fit_error is not None and str(dock.fit_error) in dock.summary.text()
    assert host.errors == []


def test_table_edits_are_commands_and_selection_centres_views(host, dock):
    _place_pairs_by_clicks(host, _plane_points(host))
    dock.table.item(1, 1).setText("nose")
    assert dock.landmark_set().pairs[1].name == "nose"
    dock.table.item(0, 0).setCheckState(QtCore.Qt.CheckState.Unchecked)
    assert dock.landmark_set().pairs[0].enabled is False
    dock.table.item(2, 1).setText("nose")  # duplicate: refused with a dialog, table restored
    assert dock.landmark_set().pairs[2].name == "L3" and host.errors
    assert dock.table.item(2, 1).text() == "L3"
    dock.select(2)
    assert np.allclose(host.centered[-1], dock.landmark_set().pairs[2].fixed)
    dock.landmark_set().undo_stack.undo()
    dock.landmark_set().undo_stack.undo()
    assert dock.landmark_set().pairs[0].enabled and dock.landmark_set().pairs[1].name == "L2"
    dock.select(0)
    dock.delete_selected()
    assert [p.name for p in dock.landmark_set().pairs] == ["L2", "L3"]


def test_markers_follow_the_set_and_a_drag_moves_the_landmark(qtbot, host, dock):
    points = _plane_points(host)
    _place_pairs_by_clicks(host, points)
    fixed_view, moving_view = host.views
    fixed_markers = dock.markers.markers(fixed_view)
    assert len(fixed_markers) == 3 and len(dock.markers.markers(moving_view)) == 3
    col, row, _ = fixed_view.plane.to_plane(points[0])
    assert np.allclose((fixed_markers[0].pos().x(), fixed_markers[0].pos().y()), (col, row))
    # Moving markers sit at T^-1(moving) in the fixed frame: where the click was.
    moving_marker = dock.markers.markers(moving_view)[1]
    col1, row1, _ = moving_view.plane.to_plane(points[1])
    assert np.allclose((moving_marker.pos().x(), moving_marker.pos().y()), (col1, row1), atol=1e-6)

    n_steps = len(dock.landmark_set().undo_stack)
    marker = fixed_markers[0]
    marker.setPos(col + 2, row + 1)
    marker.sigPositionChangeFinished.emit(marker)
    qtbot.waitUntil(lambda: len(dock.landmark_set().undo_stack) == n_steps + 1)
    expected = fixed_view.plane.to_physical(col + 2, row + 1, fixed_view.plane.depth_of(points[0]))
    assert np.allclose(dock.landmark_set().pairs[0].fixed, expected)

    moving_marker = dock.markers.markers(moving_view)[1]
    moving_marker.setPos(col1 - 1, row1)
    moving_marker.sigPositionChangeFinished.emit(moving_marker)
    qtbot.waitUntil(lambda: len(dock.landmark_set().undo_stack) == n_steps + 2)
    shifted = moving_view.plane.to_physical(col1 - 1, row1, moving_view.plane.depth_of(points[1]))
    assert np.allclose(dock.landmark_set().pairs[1].moving, np.asarray(shifted) + (5, 0, 0))

    # Far from the current slice, markers are hidden.
    fixed_view.depth += 20 * fixed_view.plane.depth_step
    fixed_view.sliceChanged.emit()
    assert dock.markers.markers(fixed_view) == []


def test_outlier_is_flagged_and_coloured_red(host, dock):
    dock.set_model("affine")
    rng = np.random.default_rng(3)
    fixed = rng.uniform(-15, 15, size=(16, 3))
    matrix = np.array([[1.05, 0.02, 0.0], [-0.03, 0.97, 0.01], [0.0, 0.02, 1.02]])
    moving = fixed @ matrix.T + (1.0, 2.0, 3.0) + rng.normal(0, 0.2, size=fixed.shape)
    moving[4] += (15.0, -12.0, 10.0)
    for f, m in zip(fixed, moving):
        dock.place_fixed(tuple(f))
        dock.place_moving(tuple(m))
    fit = dock.fit_result
    assert fit is not None and 4 in fit.flagged
    assert "mm from where the other 15 pairs place it" in dock.table.item(4, 5).toolTip()
    red = dock.markers._classes[4]
    assert red == "bad" and all(c in ("good", "warn") for i, c in enumerate(dock.markers._classes) if i != 4)
    assert "flagged" in dock.summary.text()
    assert COLOURS["bad"][0] > 200


def test_fixed_points_on_one_slice_warn_in_the_summary(host, dock):
    dock.set_model("affine")
    rng = np.random.default_rng(4)
    fixed = np.column_stack([rng.uniform(-40, 40, size=(6, 2)), rng.uniform(-1, 1, 6)])  # one axial slice
    for f in fixed:
        dock.place_fixed(tuple(f))
        dock.place_moving(tuple(f + (2.0, 1.0, 3.0)))
    assert dock.fit_result is not None and dock.fit_result.warnings
    assert "one plane" in dock.summary.text()


def test_slow_fits_run_off_the_gui_thread(qtbot, host, dock):
    dock.set_model("affine")
    dock.set_apply_live(True)
    dock._slow_fits["affine"] = True  # as if the last affine fit took > 50 ms
    for f in [(0, 0, 0), (10, 0, 0), (0, 10, 0), (0, 0, 10), (5, 5, 5)]:
        dock.place_fixed(f)
        dock.place_moving(tuple(np.asarray(f) + 1.0))
    qtbot.waitUntil(lambda: dock.fit_result is not None and len(dock.fit_result.pair_indices) == 5, timeout=10000)
    assert np.allclose(host.transform.TransformPoint((0, 0, 0)), (1, 1, 1), atol=1e-6)


def test_import_export_round_trip(tmp_path, host, dock):
    _place_pairs_by_clicks(host, _plane_points(host, 4))
    dock.export_landmarks(tmp_path / "pairs.csv")
    dock.export_landmarks(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json")
    dock.set_model("translation")
    dock.export_fit_transform(tmp_path / "fit.tfm")
    assert "FIXED" in (tmp_path / "fit.tfm").read_text()
    original = dock.landmark_set().to_dict()
    dock.landmark_set().clear()
    dock.import_landmarks(tmp_path / "pairs.csv")
    assert dock.landmark_set().to_dict() == original
    dock.landmark_set().undo_stack.undo()  # the import is one undo step
    assert dock.landmark_set().pairs == []
    dock.import_landmarks(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json")
    loaded = dock.landmark_set().pairs
    assert [p.name for p in loaded] == ["L1", "L2", "L3", "L4"]
    assert np.allclose([p.moving for p in loaded], [p["moving"] for p in original["pairs"]], atol=1e-4)


def test_session_parts_restore_without_moving_the_transform(host, dock):
    _place_pairs_by_clicks(host, _plane_points(host))
    dock.set_model("similarity")
    session, panel = host.workspace.to_session(), host.parts["landmark_panel"][0]()
    expected = dock.landmark_set().to_dict()
    other = LandmarkDock(host)
    other.set_apply_live(True)
    host.workspace.landmarks.clear()
    n_transforms = len(host.transform_history)
    other._restoring = True  # what the session controller's loading does
    host.parts["landmark_panel"][1](panel)
    host.workspace.restore(session, open_images=False)
    other._restoring = False
    assert other.model == "similarity"
    assert other.landmark_set().to_dict() == expected
    assert len(host.transform_history) == n_transforms + 1  # the session's transform, put back (not an undo step)
    assert host.workspace.history.undo_text == "Move moving point of L3"  # the saved history came back
    assert other.fit_result is not None
    other.shutdown()


def test_overlay_view_click_pairs(qtbot):
    window = FakeHost(roles=("overlay",))
    qtbot.addWidget(window)
    dock = LandmarkDock(window)
    view = window.views[0]
    p = view.plane.to_physical(5, 5, view.depth)
    q = view.plane.to_physical(8, 6, view.depth)
    view.click_at(p)
    view.click_at(q)
    [pair] = dock.landmark_set().pairs
    assert np.allclose(pair.fixed, p) and np.allclose(pair.moving, np.asarray(q) + (5, 0, 0))
    assert len(dock.markers.markers(view)) == 2  # fixed circle and moving square
    dock.shutdown()


def test_2d_images_pair_and_fit(qtbot):
    from .fake_host import small_volume

    window = FakeHost(small_volume(dimension=2), small_volume(dimension=2))
    qtbot.addWidget(window)
    dock = LandmarkDock(window)
    assert dock.landmark_set().dimension == 2
    dock.set_model("rigid")
    fixed_view, moving_view = window.views
    for col, row in [(3, 4), (15, 5), (9, 14)]:
        p = fixed_view.plane.to_physical(col, row)
        fixed_view.click_at(p)
        moving_view.click_at(p)
    assert dock.fit_result is not None and dock.fit_result.rms_mm < 1e-6
    assert np.allclose(dock.fit_result.transform.TransformPoint((0.0, 0.0)), (5.0, 0.0))
    assert len(dock.markers.markers(fixed_view)) == 3
    dock.shutdown()


def _slow_rigid_pairs(monkeypatch, n=1000, seconds_per_fold=0.005):
    """n rigid pairs whose leave-one-out folds each take `seconds_per_fold` (a fit of seconds)."""
    import time

    from regviewer.core.landmarks import fitting
    from regviewer.core.landmarks.model import LandmarkPair

    folds = []
    real = fitting._predict

    def slow_predict(*args, **kwargs):
        folds.append(1)
        time.sleep(seconds_per_fold)
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "_predict", slow_predict)
    rng = np.random.default_rng(0)
    fixed = rng.uniform(0, 50, (n, 3))
    pairs = [LandmarkPair(f"L{i}", tuple(fixed[i]), tuple(fixed[i] + 2.0)) for i in range(n)]
    return pairs, folds


def test_a_long_fit_shows_progress_and_cancel_stops_it(qtbot, host, dock, monkeypatch):
    host.show()
    dock.set_model("rigid")
    pairs, folds = _slow_rigid_pairs(monkeypatch)
    dock.landmark_set().replace_all(pairs, "many pairs")  # > INLINE_MAX_PAIRS: off the GUI thread
    assert dock.fit_progress.isHidden()  # not for the first half second
    qtbot.waitUntil(lambda: dock.fit_progress.isVisible(), timeout=5000)
    assert dock.fit_progress.label.text().startswith("Fitting… (1000 pairs)")
    qtbot.waitUntil(lambda: "leave-one-out" in dock.fit_progress.label.text(), timeout=5000)
    qtbot.mouseClick(dock.fit_progress.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cancelled" in str(dock.fit_error), timeout=5000)
    assert dock.fit_result is None
    assert "cancelled" in dock.summary.text()
    assert dock.fit_progress.isHidden()
    stopped_at = len(folds)
    assert stopped_at < len(pairs)  # the leave-one-out loop stopped early
    qtbot.wait(200)
    assert len(folds) == stopped_at  # and stays stopped


def test_a_new_edit_cancels_the_running_fit_and_the_newest_result_wins(qtbot, host, dock, monkeypatch):
    dock.set_model("rigid")
    pairs, folds = _slow_rigid_pairs(monkeypatch)
    dock.landmark_set().replace_all(pairs, "many pairs")
    qtbot.waitUntil(lambda: len(folds) > 10, timeout=5000)
    dock.landmark_set().replace_all(pairs[:250], "fewer pairs")  # supersedes the 1000-pair fit
    qtbot.waitUntil(lambda: dock.fit_result is not None, timeout=20000)
    assert len(dock.fit_result.pair_indices) == 250
    assert len(folds) < 1000 + 250  # the 1000-pair fit did not run to its end
    assert dock.fit_progress.isHidden()
