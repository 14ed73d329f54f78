"""The live-registration dock with a small fake host: run, apply, cancel, errors, history, state."""

from __future__ import annotations

import dataclasses as dc
import json
import time

import numpy as np
import pyqtgraph as pg
import pytest
import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import IncompatibleImagesError, RegviewerError
from regviewer.core.imaging.image import Volume, as_volume
from regviewer.core.registration.presets import load_preset
from regviewer.core.imaging.slicing import planes_for
from regviewer.gui.panels.live_panel import LiveRegistrationDock

from .fake_host import FakeHost as SharedFakeHost


class FakeHost(SharedFakeHost):
    """The shared fake with overlay views of every plane and the live dock in it."""

    def __init__(self, fixed: Volume, moving: Volume, with_3d=False):
        super().__init__(fixed, moving, all_planes=True, with_3d=with_3d,
                         initial=sitk.Transform(fixed.dimension, sitk.sitkIdentity))
        self.dock = LiveRegistrationDock(self)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.resize(1200, 700)

    @property
    def fixed(self):
        return self.workspace.fixed


def _short(preset="photo-2d", iterations=30, shrink=(8, 4), sigmas=(2.0, 1.0), min_step=1e-4):
    p = load_preset(preset)
    s = p.stages[0]
    s = dc.replace(s, optimizer=dc.replace(s.optimizer, iterations=iterations, min_step=min_step),
                   pyramid=dc.replace(s.pyramid, shrink_factors=shrink, smoothing_sigmas=sigmas))
    return dc.replace(p, stages=(s,))


def _creeping():
    """A run that lasts seconds: from the image centres in small steps at full resolution (from the
    pose search's start photo-2d converges before a test can cancel it)."""
    p = _short(iterations=5000, shrink=(1,), sigmas=(0.0,), min_step=1e-12)
    s = dc.replace(p.stages[0], initializer="geometry", optimizer=dc.replace(p.stages[0].optimizer, learning_rate=0.01))
    return dc.replace(p, stages=(s,))


@pytest.fixture(scope="module")
def retina(demo_data):
    fixed = demo_data / "retina_fixed.png"
    if not fixed.exists():
        pytest.skip("demo data not generated")
    return as_volume(str(fixed)), as_volume(str(demo_data / "retina_moving.png"))


@pytest.fixture
def host(qtbot, retina):
    h = FakeHost(*retina)
    qtbot.addWidget(h)
    h.show()
    return h


def test_run_to_completion_from_the_panel_and_apply(qtbot, host):
    dock = host.dock
    dock.params.set_pipeline(_short())
    assert not host.dock.grid_item(0).curve.isVisible()  # no grid before a run: it belongs to runs
    with qtbot.waitSignal(dock.runFinished, timeout=30000) as blocker:
        qtbot.mouseClick(dock.run_button, QtCore.Qt.MouseButton.LeftButton)
        assert dock.is_running() and not dock.run_button.isEnabled()
    record = blocker.args[0]
    assert not host.errors
    assert host.modes == ["checkerboard"]
    assert dock.snapshots_shown >= 1 and dock.plot.n_points == len(record.metric_curve) > 10
    assert any(b[1] == "L2" for b in dock.plot.boundaries)  # the second pyramid level is marked
    assert isinstance(host.previews[-1], sitk.Transform) and host.workspace.preview is not None
    assert dock.apply_button.isEnabled()
    x, y = dock.grid_item(0).curve.getData()  # the result's grid, until Apply or Revert
    assert len(x) > 0 and dock.grid_item(0).curve.isVisible()
    qtbot.mouseClick(dock.apply_button, QtCore.Qt.MouseButton.LeftButton)
    assert host.steps == ["Apply Run 1"] and host.workspace.source.run == 1
    p = (100.0, 120.0)
    assert np.allclose(host.transform.TransformPoint(p), record.transform.TransformPoint(p))
    assert not np.allclose(host.transform.TransformPoint(p), p)  # it moved
    assert dock.history.table()[0]["status"] == "finished"
    assert dock.history_table.rowCount() == 1
    assert not dock.grid_item(0).curve.isVisible()  # applied: the run's grid is gone
    # Revert undoes the Apply: back to the transform from before the run (identity)
    qtbot.mouseClick(dock.revert_button, QtCore.Qt.MouseButton.LeftButton)
    assert np.allclose(host.transform.TransformPoint(p), p) and host.workspace.history.redo_text == "Apply Run 1"
    # reproducibility text names the files and the seed
    text = dock.python_text()
    assert "retina_fixed.png" in text and "seed=0" in text
    compile(text, "<copied>", "exec")
    assert "regviewer register" in dock.command_line_text()


def test_cancel_stops_within_a_second_and_window_stays_responsive(qtbot, host):
    dock = host.dock
    dock.params.set_pipeline(_creeping())
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    dock.run()
    started = time.perf_counter()
    qtbot.waitUntil(lambda: dock.plot.n_points > 5 and time.perf_counter() - started > 0.6, timeout=20000)
    t0 = time.perf_counter()
    with qtbot.waitSignal(dock.runFinished, timeout=5000) as blocker:
        qtbot.mouseClick(dock.cancel_button, QtCore.Qt.MouseButton.LeftButton)
        assert time.perf_counter() - t0 < 0.1  # the click never waits for the engine
    stopped_after = time.perf_counter() - t0
    timer.stop()
    assert stopped_after < 1.0
    record = blocker.args[0]
    assert record.cancelled and dock.history.table()[-1]["status"] == "cancelled"
    assert dock.apply_button.isEnabled()  # the best transform so far can be applied
    gaps = np.diff(ticks)
    # the event loop kept running during the run (bounds loose: the test machine is shared)
    assert len(gaps) > 5 and np.median(gaps) < 0.2 and gaps.max() < 1.0


def test_engine_error_is_a_message_and_the_window_stays_usable(qtbot, host, tmp_path):
    dock = host.dock
    dock.params.set_pipeline(_short())
    empty = sitk.Image(list(host.fixed.size), sitk.sitkUInt8)
    empty.CopyInformation(host.fixed.sitk)
    path = tmp_path / "empty_mask.nii.gz"
    sitk.WriteImage(empty, str(path))
    dock.set_mask("fixed", str(path))
    dock.run()
    qtbot.waitUntil(lambda: bool(host.errors), timeout=20000)
    assert isinstance(host.errors[0], IncompatibleImagesError)
    assert "empty" in str(host.errors[0]) and "empty_mask" in str(host.errors[0])
    assert "failed" in dock.status.text()
    qtbot.waitUntil(lambda: not dock.is_running(), timeout=2000)
    assert dock.run_button.isEnabled() and not dock.apply_button.isEnabled()
    assert len(dock.history) == 0
    # usable: clear the mask and run again
    dock.set_mask("fixed", None)
    with qtbot.waitSignal(dock.runFinished, timeout=30000):
        dock.run()
    assert len(host.errors) == 1


def test_refused_parameter_or_missing_image_blocks_run_with_message(qtbot, host):
    dock = host.dock
    dock.params.editor(0, "optimizer", "iterations").set_text("-3")
    assert dock.run() is False
    assert "iterations" in str(host.errors[-1])
    dock.params.editor(0, "optimizer", "iterations").set_text("30")
    host.set_images(host.fixed, None)
    assert dock.run() is False
    assert isinstance(host.errors[-1], RegviewerError) and "Open a fixed and a moving" in str(host.errors[-1])


def test_session_state_round_trip_and_use_run(qtbot, host, retina, demo_data):
    dock = host.dock
    dock.params.set_pipeline(_short(iterations=10))
    # landmarks from the known truth: the TRE curve is drawn and the run records its TRE
    lm = pytest.importorskip("regviewer.core.landmarks.model")
    true = sitk.ReadTransform(str(demo_data / "retina_true_fixed_to_moving.h5"))
    landmark_set = host.workspace.landmarks
    for p in [(150.0, 150.0), (300.0, 160.0), (220.0, 320.0), (120.0, 300.0)]:
        landmark_set.add_pair(p, true.TransformPoint(p))
    dock.grid_spacing.setValue(7.0)
    with qtbot.waitSignal(dock.runFinished, timeout=30000):
        dock.run()
    assert len(dock.plot.tre_curve.getData()[0]) >= 1
    assert dock.history.records[0].tre_mm["n"] == 4
    dock.apply()
    state = json.loads(json.dumps(host.parts["registration"][0]()))
    session = host.workspace.to_session()  # the runs are the Workspace's
    other = FakeHost(*retina)
    qtbot.addWidget(other)
    other.workspace.restore(session, open_images=False)
    other.parts["registration"][1](state)
    assert other.dock.params.pipeline() == dock.params.pipeline()
    assert len(other.dock.history) == 1 and other.dock.grid_spacing.value() == 7.0
    assert other.workspace.source.run == 1  # the session remembers where the transform came from
    other.workspace.reset_transform()
    other.dock.use_run(1)
    p = (200.0, 50.0)
    assert np.allclose(other.transform.TransformPoint(p), host.transform.TransformPoint(p))
    assert other.steps[-1] == "Use Run 1"


def test_grid_follows_slice_and_3d(qtbot, demo_data):
    from types import SimpleNamespace

    img = sitk.Image([30, 24, 20], sitk.sitkFloat32)
    img.SetSpacing((2.0, 2.0, 2.0))
    vol = Volume(img)
    h = FakeHost(vol, vol, with_3d=True)
    qtbot.addWidget(h)
    h.dock.refresh_grid()
    assert not h._volume_view.polylines.get("grid")  # no run shown: no grid
    from regviewer.core.workspace.run_history import RunRecord

    def show_run(transform):  # a finished run's result, previewed
        record = h.workspace.runs.add(RunRecord(h.workspace.runs.next_number(), {}, transform))
        h.dock._shown_run = record.number
        h.dock.refresh_grid()

    show_run(sitk.Transform(3, sitk.sitkIdentity))
    assert h._volume_view.polylines["grid"]
    view = h.views[0]
    before = h.dock.grid_item(0).curve.getData()[1].copy()
    show_run(sitk.TranslationTransform(3, (0.0, 4.0, 0.0)))
    after = h.dock.grid_item(0).curve.getData()[1]
    assert np.allclose(after - before, 2.0)  # 4 mm along +y = 2 rows in the axial view
    view.depth += 6.0
    view.sliceChanged.emit()
    assert h.dock.grid.targets[0][2] == view.depth
    h.dock.grid_check.setChecked(False)
    assert not h.dock.grid_item(0).curve.isVisible() and h._volume_view.polylines["grid"] is None


def test_changing_images_during_a_run_cancels_it(qtbot, host):
    dock = host.dock
    dock.params.set_pipeline(_creeping())
    dock.run()
    qtbot.waitUntil(lambda: dock.plot.n_points > 2, timeout=20000)
    host.set_images(host.workspace.fixed, host.workspace.moving)
    qtbot.waitUntil(lambda: not dock.is_running(), timeout=3000)
    qtbot.wait(50)
    assert "images changed" in dock.status.text()
    assert len(dock.history) == 0 and not dock.apply_button.isEnabled()
