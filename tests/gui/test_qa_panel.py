"""The QA dock against a small fake host: evaluation off the GUI thread, the Jacobian
overlay in every view (following slice changes), the grid, the histogram, the report."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import planes_for

from .fake_host import FakeHost as SharedFakeHost


def _volume(seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    img = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random((20, 28, 24)).astype(np.float32) * 100), 1.5)
    img.SetSpacing((2.0, 2.0, 2.0))
    img.SetOrigin((-24.0, -28.0, -20.0))
    return Volume(img, path=f"vol{seed}.nii.gz")


def _folding_transform(volume: Volume) -> sitk.Transform:
    """A local fold at the image centre (d u_x / dx = -3 there)."""
    ref = volume.sitk
    z, y, x = np.indices(ref.GetSize()[::-1], dtype=float)
    c = (np.array(ref.GetSize()) - 1) / 2
    g = np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 8.0)
    field = np.zeros(x.shape + (3,))
    field[..., 0] = -6.0 * (x - c[0]) * g  # mm, 2 mm voxels
    img = sitk.GetImageFromArray(field, isVector=True)
    img.CopyInformation(ref)
    return sitk.DisplacementFieldTransform(img)


class FakeHost(SharedFakeHost):
    """The shared fake with two test volumes and overlay views of every plane."""

    def __init__(self):
        super().__init__(_volume(0), _volume(1), all_planes=True,
                         initial=sitk.TranslationTransform(3, (2.0, 0.0, 0.0)))


@pytest.fixture
def dock(qtbot):
    from regviewer.gui.panels.qa_panel import QADock

    host = FakeHost()
    qtbot.addWidget(host)
    dock = QADock(host)
    host.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)
    host.resize(1000, 700)
    host.show()
    yield dock
    dock.wait(10.0)


def _evaluate(qtbot, dock):
    with qtbot.waitSignal(dock.evaluated, timeout=20000):
        assert dock.evaluate()


def test_evaluates_off_thread_and_shows_numbers(qtbot, dock):
    _evaluate(qtbot, dock)
    e = dock.evaluation
    assert e.jacobian_stats["folding_voxels"] == 0
    assert e.displacement_stats["mean"] == pytest.approx(2.0, abs=1e-4)
    texts = [dock.table.item(i, 0).text() for i in range(dock.table.rowCount())]
    assert "Deformation" in texts and any("Mutual information" in t for t in texts)
    assert "No warning" in dock.flags_label.text()
    assert dock.report_button.isEnabled()
    x, h = dock.histogram_bars.opts["x"], dock.histogram_bars.opts["height"]
    assert len(x) > 0 and np.asarray(h).max() > 0


def test_labels_are_plain_before_and_after_an_evaluation(qtbot, dock):
    """No "Images changed" before anything happened; moved-points and overlap rows say what they are."""
    dock._on_images_changed()  # what the window does when the first images open
    assert "changed" not in dock.status_label.text().lower()
    _evaluate(qtbot, dock)
    rows = {dock.table.item(i, 0).text().strip(): dock.table.item(i, 0) for i in range(dock.table.rowCount())}
    moved = [k for k in rows if k.startswith("Points moved")]
    overlap = [k for k in rows if "covered by the moving image" in k]
    assert len(moved) == 3 and len(overlap) == 1 and not any(k.startswith("Displacement") for k in rows)
    assert "not an error" in rows[moved[0]].toolTip() and "similarity" in rows[overlap[0]].toolTip()


def test_transform_change_reevaluates_automatically(qtbot, dock):
    _evaluate(qtbot, dock)
    with qtbot.waitSignal(dock.evaluated, timeout=20000):
        dock.host.set_current_transform(sitk.TranslationTransform(3, (0.0, 5.0, 0.0)), "move")
    assert dock.evaluation.displacement_stats["mean"] == pytest.approx(5.0, abs=1e-4)


def test_jacobian_overlay_in_every_view_marks_folding_and_follows_slices(qtbot, dock):
    dock.host.transform = _folding_transform(dock.host.fixed_volume())
    _evaluate(qtbot, dock)
    assert any("folds" in f for f in dock.evaluation.flags)
    dock.overlay_check.setChecked(True)
    for view in dock.host.views:
        item = dock.overlay_item(view)
        assert item.getViewBox() is view.view_box and item.isVisible()
        image = item.image
        assert image.shape[:2] == view.plane.shape and image.shape[2] == 4
        yellow = np.all(image[..., :3] == (255, 230, 0), axis=-1)
        assert yellow.any(), view.plane.orientation  # the fold sits at the centre slice of every plane
    # scroll the axial view far from the fold: no folding colour there
    axial = dock.host.views[0]
    axial.depth = axial.plane.depth_range[0]
    axial.sliceChanged.emit()
    image = dock.overlay_item(axial).image
    assert not np.all(image[..., :3] == (255, 230, 0), axis=-1).any()
    assert len(dock.folding_bars.opts["x"]) > 0  # histogram shows folding bars
    dock.overlay_check.setChecked(False)
    assert not dock.overlay_item(axial).isVisible()


def test_grid_drawn_in_views(qtbot, dock):
    _evaluate(qtbot, dock)
    dock.grid_check.setChecked(True)
    grid = dock.overlays.grid_item(dock.host.views[0])
    assert grid.n_points() > 0
    dock.grid_check.setChecked(False)
    assert not grid.curve.isVisible()


def test_write_report(qtbot, dock, tmp_path):
    assert not dock.write_report_to(str(tmp_path / "none.html"))  # nothing evaluated yet
    _evaluate(qtbot, dock)
    path = tmp_path / "qa.html"
    with qtbot.waitSignal(dock.reportWritten, timeout=30000) as blocker:
        assert dock.write_report_to(str(path))
    assert blocker.args[0] == str(path)
    assert path.exists() and "Registration quality report" in path.read_text(encoding="utf-8")
    assert any("qa.html" in m for m in dock.host.messages)


def test_errors_go_to_the_host(qtbot, dock, tmp_path):
    dock.mask_path = str(tmp_path / "missing_mask.nii.gz")
    with qtbot.waitSignal(dock.failed, timeout=20000):
        dock.evaluate()
    assert dock.host.errors and "missing_mask" in str(dock.host.errors[0])
    assert "failed" in dock.status_label.text()


def test_no_images_is_a_message(qtbot, dock):
    dock.host.set_images(None, None)
    assert not dock.evaluate()
    assert "Open a fixed" in dock.status_label.text()


def test_session_state_round_trip(qtbot, dock, tmp_path):
    get_state, set_state = dock.host.parts["qa"]
    dock.auto_check.setChecked(False)
    dock.overlay_check.setChecked(True)
    dock.mask_path = str(tmp_path / "mask.nii.gz")
    saved = get_state()
    dock.overlay_check.setChecked(False)
    dock.mask_path = None
    set_state(saved)
    assert dock.overlay_check.isChecked() and dock.mask_path.endswith("mask.nii.gz")
    assert "mask.nii.gz" in dock.inputs_label.text()


def test_qa_behind_another_tab_waits_until_its_tab_is_selected(qtbot, make_window, retina_paths):
    """An evaluation costs seconds and hundreds of MB: a hidden QA tab must not run one."""
    window = make_window(*retina_paths, panels=True)
    qa = window.panels.get("QADock")
    if qa is None:
        pytest.skip("the window did not load the QA dock")
    window.right_docks()[0].raise_()
    window.set_current_transform(sitk.TranslationTransform(2, (3.0, 1.0)), "move")
    qtbot.wait(800)
    assert qa.evaluation is None
    with qtbot.waitSignal(qa.evaluated, timeout=30000):
        qa.raise_()
    assert qa.evaluation is not None
