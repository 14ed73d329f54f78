"""The stack window's tools on one section: landmark pairs fitted and applied (the later
sections follow, Ctrl+Z undoes), corrections resampled off the GUI thread, and the 3D view
of the aligned volume (under Xvfb with QT_QPA_PLATFORM=xcb)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from tests.stack_phantom import block, cut

from .conftest import aligned_stack_window, skip_without_vtk_display


@pytest.fixture
def aligned_window(qtbot, tmp_path):
    planes = block(5, seed=8)
    cut(planes, tmp_path, seed=9)
    return aligned_stack_window(qtbot, tmp_path)


def _shift(after: np.ndarray, before: np.ndarray) -> int:
    """The horizontal shift (px) that best maps `before` onto `after` in the middle columns."""
    misfit = {s: np.abs(after[:, 30:66] - before[:, 30 - s:66 - s]).mean() for s in range(-10, 11)}
    return min(misfit, key=misfit.get)


def test_landmark_pairs_fitted_and_applied_move_the_section_and_the_later_ones(qtbot, aligned_window):
    from PyQt6 import QtGui

    from .conftest import click, drag

    w = aligned_window
    model, tool = w.model, w.landmark_tool
    w.slider.setValue(2)
    w.tabs.setCurrentWidget(tool)
    qtbot.wait(50)
    before = [a.copy() for a in model.aligned]
    fixed_view = SimpleNamespace(view_box=tool.fixed_widget.view_box, graphics=tool.fixed_widget)
    moving_view = SimpleNamespace(view_box=tool.moving_widget.view_box, graphics=tool.moving_widget)
    points = [(30, 30), (66, 30), (64, 66), (32, 62)]
    for p in points:  # neighbour point, then the "same" point on section 2, 6 px to its right
        click(qtbot, fixed_view, p)
        click(qtbot, moving_view, (p[0] + 6, p[1]))
    pairs = model.landmarks(2)
    assert len(pairs) == 4 and all(f is not None and m is not None for _n, f, m in pairs)
    assert np.allclose([m[0] - f[0] for _n, f, m in pairs], 6, atol=0.6)
    assert len(tool.markers("fixed")) == 4 and len(tool.markers("moving")) == 4
    drag(qtbot, moving_view, (36, 30), (41, 33))  # a marker drags: its point follows
    qtbot.waitUntil(lambda: abs(model.to_pixel(model.landmarks(2)[0][2])[0] - 41) < 0.7, timeout=5_000)
    drag(qtbot, moving_view, (41, 33), (36, 30))
    qtbot.waitUntil(lambda: abs(model.to_pixel(model.landmarks(2)[0][2])[1] - 30) < 0.7, timeout=5_000)
    qtbot.waitUntil(tool.apply_button.isEnabled, timeout=10_000)
    assert "rigid fit to 4 pairs" in tool.fit_label.text()
    tool.apply_button.click()
    qtbot.waitUntil(lambda: not w.resampling and not model.dirty, timeout=10_000)
    assert np.array_equal(model.aligned[1], before[1])  # before the section: unchanged
    for k in (2, 3, 4):  # the section and every later one moved 6 px left
        assert _shift(model.aligned[k], before[k]) == -6, k
    for _n, fixed, moving in model.landmarks(2):  # its points moved with it, onto the neighbour's
        assert np.allclose(fixed, moving, atol=0.8)
    assert w.undo_button.isEnabled()
    assert w.undo_shortcut.key() == QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Undo)  # Ctrl+Z
    w.undo_button.click()
    assert model.dirty or w.resampling  # the correction is taken back; the sections are being redone
    qtbot.waitUntil(lambda: not w.resampling and not model.dirty, timeout=10_000)
    for k in (2, 3, 4):  # back where the alignment put them (resampled in float, not the volume's 8 bits)
        assert _shift(model.aligned[k], before[k]) == 0 and np.abs(model.aligned[k] - before[k]).mean() < 1.0, k


def test_a_correction_is_resampled_off_the_gui_thread_and_the_newest_wins(qtbot, aligned_window, monkeypatch):
    from PyQt6 import QtCore

    from regviewer.core.stack import section_corrections

    w = aligned_window
    model = w.model
    w.slider.setValue(1)
    before = [a.copy() for a in model.aligned]
    threads, real = [], section_corrections.resample_sections

    def slow(jobs, grid, stop=lambda: False):
        threads.append(threading.current_thread())
        time.sleep(0.4)  # a large stack: the GUI must not wait for this
        return real(jobs, grid, stop)

    monkeypatch.setattr(section_corrections, "resample_sections", slow)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    start = time.monotonic()
    w.nudge(2, 0, 0)
    w.nudge(2, 0, 0)  # a second correction before the first is shown: only the newest result is shown
    assert time.monotonic() - start < 0.3  # the nudges returned at once
    assert np.array_equal(model.aligned[3], before[3])  # nothing resampled on the GUI thread
    qtbot.waitUntil(lambda: not w.resampling and not model.dirty, timeout=10_000)
    timer.stop()
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert len(ticks) >= 10  # the event loop kept running while the worker resampled
    for k in (1, 2, 3, 4):
        assert _shift(model.aligned[k], before[k]) == 4, k
    assert np.array_equal(model.aligned[0], before[0])


def test_the_3d_view_shows_the_aligned_volume_and_is_throttled(qtbot, aligned_window):
    skip_without_vtk_display()
    from regviewer.gui.views.volume_view import LazyVolumeView

    w = aligned_window
    v3d = w.volume3d
    assert isinstance(v3d.view, LazyVolumeView)
    qtbot.waitUntil(lambda: v3d.view.created, timeout=10_000)  # the stack window always shows its 3D view
    qtbot.waitUntil(lambda: v3d.shown == {"section", "rows", "cols"}, timeout=10_000)
    qtbot.waitUntil(lambda: not v3d._timer.isActive(), timeout=5_000)
    pushes = v3d.pushes
    for k in range(5):  # a burst of changes costs one update, not five
        w.slider.setValue(k)
    qtbot.wait(300)
    assert v3d.pushes <= pushes + 1
    qtbot.waitUntil(lambda: v3d.pushes == pushes + 1, timeout=5_000)
    image = v3d.view.snapshot()
    assert image is not None and image.width() > 50


def test_landmarks_wait_for_the_alignment_to_finish(qtbot, aligned_window, monkeypatch):
    """A point picked while the stack aligns would sit on a section the run's final fit still
    moves (and the result replaces the model): the tool refuses it and says why."""
    from .conftest import click

    w = aligned_window
    tool = w.landmark_tool
    w.slider.setValue(2)
    w.tabs.setCurrentWidget(tool)
    qtbot.wait(50)
    moving_view = SimpleNamespace(view_box=tool.moving_widget.view_box, graphics=tool.moving_widget)
    monkeypatch.setattr(type(w.runner), "running", property(lambda self: True))
    click(qtbot, moving_view, (40, 40))
    assert w.model.landmarks(2) == []
    assert "still aligning" in tool.fit_label.text()
    monkeypatch.undo()
    click(qtbot, moving_view, (40, 40))
    assert len(w.model.landmarks(2)) == 1
