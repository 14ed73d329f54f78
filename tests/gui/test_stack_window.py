"""The stack window: runs align_stack in the background, fills in live, shows section k
over k-1 in every overlay mode, status and flags, and a manual nudge carried forward."""

from __future__ import annotations

import numpy as np
import pytest

from tests.stack_phantom import block, cut


@pytest.fixture
def stack_folder(tmp_path):
    planes = block(5, seed=8)
    cut(planes, tmp_path, seed=9)
    (tmp_path / "s2.png").write_bytes(b"broken")
    return tmp_path


def test_stack_window_aligns_and_shows_sections(qtbot, stack_folder, tmp_path_factory):
    from regviewer.core.imaging.composite import OVERLAY_MODES
    from regviewer.gui.stack.stack_window import StackWindow

    seen = []
    w = StackWindow(stack_folder, neighbours=1, start=False)
    qtbot.addWidget(w)
    w.runner.section_aligned.connect(lambda i, n, name, img: seen.append(i))
    with qtbot.waitSignal(w.runner.finished, timeout=120_000):
        w.start()
    assert seen and seen[0] == 3  # the anchor (middle readable section) arrives first: the volume fills in live
    model = w.model
    assert model.statuses[2] == "missing" and model.statuses.count("ok") == 4
    assert w.table.rowCount() == 5 and w.table.item(2, 1).text() == "missing"
    for mode in OVERLAY_MODES:
        w.mode_box.setCurrentText(mode)
        img = w.overlay_item.image
        assert img.shape[:2] == (96, 96) and img.max() > 0, mode
    w.slider.setValue(4)
    assert "s4" in w.status_label.text()
    rows_plane = w.rows_item.image
    assert rows_plane.shape == (5, 96) and not rows_plane[2].any() and rows_plane[4].any()
    before = [None if a is None else a.copy() for a in model.aligned]
    w.slider.setValue(3)
    w.nudge(1, 0, 0)  # section 3 and the one after it move; earlier ones stay
    qtbot.waitUntil(lambda: not w.resampling, timeout=10_000)
    assert np.array_equal(before[1], model.aligned[1])
    assert not np.array_equal(before[3], model.aligned[3]) and not np.array_equal(before[4], model.aligned[4])
    assert np.allclose(model.aligned[3][:, 40:60], before[3][:, 39:59], atol=1e-3)
    shot = tmp_path_factory.mktemp("shots") / "stack_window.png"
    w.grab().save(str(shot))
    assert shot.stat().st_size > 10_000


def test_file_open_stack_opens_the_stack_window(make_window, qtbot, stack_folder, monkeypatch):
    from PyQt6 import QtWidgets

    from regviewer.gui.stack.stack_window import StackWindow

    window = make_window()
    action = next(a for a in window.file_menu.actions() if a.text() == "Open Stack…")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(stack_folder))
    action.trigger()
    stacks = [w for w in window.findChildren(StackWindow)]
    assert len(stacks) == 1
    with qtbot.waitSignal(stacks[0].runner.finished, timeout=120_000):
        pass
    assert stacks[0].model.statuses.count("ok") == 4
    stacks[0].close()


def test_shift_drag_moves_the_section_and_the_later_ones_follow(qtbot, stack_folder):
    from types import SimpleNamespace

    from PyQt6 import QtCore

    from .conftest import aligned_stack_window, drag

    w = aligned_stack_window(qtbot, stack_folder)
    model = w.model
    before = [None if a is None else a.copy() for a in model.aligned]
    w.slider.setValue(1)
    view = SimpleNamespace(view_box=w.overlay_widget.view_box, graphics=w.overlay_widget)
    drag(qtbot, view, (40, 40), (50, 40), modifiers=QtCore.Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: not w.resampling and not model.dirty, timeout=10_000)
    assert np.array_equal(before[0], model.aligned[0])  # before the dragged section: unchanged
    for k in (1, 3, 4):  # the dragged section and every later readable one moved ~10 px right
        misfit = [np.abs(model.aligned[k][:, 20:70] - before[k][:, 20 - s:70 - s]).mean() for s in range(16)]
        assert 8 <= int(np.argmin(misfit)) <= 12, (k, misfit)
