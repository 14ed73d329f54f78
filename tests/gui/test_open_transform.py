"""File > Open Transform and dropped transform files: another tool's transform becomes
current (undoably) and the QA panel judges it."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.transforms.io import is_transform_file, write_transform
from regviewer.gui import file_actions


def _field(window, tmp_path):
    ref = window.fixed_volume().sitk
    arr = np.zeros(tuple(reversed(ref.GetSize())) + (ref.GetDimension(),))
    arr[..., 0] = 3.0  # 3 mm along x everywhere
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.CopyInformation(ref)
    path = tmp_path / "warp.nii.gz"
    sitk.WriteImage(field, str(path))
    return path


def test_open_and_drop_transforms_make_them_current_undoably(qtbot, make_window, brain_paths, tmp_path):
    w = make_window(*brain_paths, panels=True)
    tfm = tmp_path / "other_tool.tfm"
    write_transform(sitk.TranslationTransform(3, (4.0, 0.0, 0.0)), tfm)
    warp = _field(w, tmp_path)
    assert is_transform_file(tfm) and is_transform_file(warp) and not is_transform_file(brain_paths[0])

    assert file_actions.open_transform(w, tfm)
    p = tuple(float(c) for c in w.fixed_volume().center_physical())
    assert np.allclose(np.subtract(w.current_transform().TransformPoint(p), p), (4, 0, 0))
    assert w.workspace.source.kind == "file" and w.undo_action.text() == "Undo Open transform other_tool.tfm"

    qa = w.panels["QADock"]
    qa.raise_()
    with qtbot.waitSignal(qa.evaluated, timeout=30000):
        file_actions.handle_dropped_paths(w, [str(warp)])  # a dropped displacement field
    assert np.allclose(np.subtract(w.current_transform().TransformPoint(p), p), (3, 0, 0), atol=1e-6)
    assert w.fixed_volume().path == str(brain_paths[0])  # the images stayed
    w.undo()
    assert np.allclose(np.subtract(w.current_transform().TransformPoint(p), p), (4, 0, 0))


def test_a_bad_transform_file_is_a_message_not_a_change(qtbot, make_window, brain_paths, tmp_path):
    w = make_window(*brain_paths)
    bad = tmp_path / "broken.tfm"
    bad.write_text("#Insight Transform File V1.0\nnonsense\n")
    assert not file_actions.open_transform(w, bad)
    assert "broken.tfm" in (w.last_error or "") and not w.workspace.history.can_undo


def test_open_command_builds_a_workspace_with_the_transform(qtbot, brain_paths, tmp_path, monkeypatch):
    from regviewer.gui.app import make_window

    monkeypatch.setenv("REGVIEWER_NO_3D", "1")
    tfm = tmp_path / "t.tfm"
    write_transform(sitk.TranslationTransform(3, (0.0, 2.0, 0.0)), tfm)
    w = make_window(str(brain_paths[0]), str(brain_paths[1]), sessions=False, transform=str(tfm))
    qtbot.addWidget(w)
    assert w.workspace.fixed.path == str(brain_paths[0]) and w.visible_slice_views()
    assert w.workspace.source.path == str(tfm) and w.workspace.history.undo_text == "Open transform t.tfm"
