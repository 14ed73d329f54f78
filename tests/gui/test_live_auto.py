"""The window's Registration panel: auto is the default, and warnings from the verification are shown."""

from __future__ import annotations

import os

import pytest
import SimpleITK as sitk
from PyQt6 import QtCore


def _dock(window):
    dock = getattr(window, "panels", {}).get("LiveRegistrationDock")
    if dock is None:
        pytest.skip("the window did not load the live-registration dock")
    return dock


def test_auto_is_the_windows_default_and_a_rolled_back_stage_is_reported(qtbot, make_window, retina_paths,
                                                                           monkeypatch):
    from regviewer.core.registration import stages as stages_module

    window = make_window(*retina_paths, panels=True)
    dock = _dock(window)
    assert dock.params.preset_name() == "auto"

    def bad_stage(stage, fixed, moving, previous, run, *args, **kwargs):
        run.stop_reasons.append("test")
        return sitk.TranslationTransform(2, (-200.0, 150.0))  # far off: the verification must undo it

    monkeypatch.setattr(stages_module, "run_method_stage", bad_stage)
    # The window runs the engine in a child process, which this patch cannot reach: run it here instead.
    from regviewer.core.registration import engine, remote
    monkeypatch.setattr(remote, "run_in_process",
                        lambda job, progress=None, cancel=None, **_: engine.register(**job, progress=progress, cancel=cancel))
    with qtbot.waitSignal(dock.runFinished, timeout=60000):
        qtbot.mouseClick(dock.run_button, QtCore.Qt.MouseButton.LeftButton)
    text = dock.status.text()
    assert "with 2 warnings" in text and "made the alignment worse" in text
    assert "auto: 2D" in text  # the pipeline auto chose is shown
    record = dock.history.records[-1]
    assert record.warnings and record.evaluation is not None and record.params["name"] == "auto"
    shot = os.environ.get("REGVIEWER_SCREENSHOT")
    if shot:  # for a person to look at: the panel with the chosen pipeline and the warning
        dock.raise_()
        dock.tabs.setCurrentIndex(1)
        qtbot.wait(200)
        window.grab().save(shot)
