"""The generated parameter panel: presets, refused values with a message, stages, export/import, state."""

from __future__ import annotations

import dataclasses
import json

import pytest

from regviewer.core.registration.params import Pipeline
from regviewer.core.registration.presets import load_preset
from regviewer.gui.widgets.params_panel import ParamsPanel


@pytest.fixture
def panel(qtbot):
    p = ParamsPanel()
    qtbot.addWidget(p)
    p.show()
    return p


def test_every_field_has_an_editor_and_advanced_is_folded(panel):
    stage = panel.pipeline().stages[0]
    for section in ("transform", "metric", "optimizer", "pyramid", "sampling"):
        for f in dataclasses.fields(getattr(stage, section)):
            assert (0, section, f.name) in panel._editors
    assert ("pipeline", "symmetric") in panel._editors
    assert not panel.advanced_box.isVisible()
    assert not panel.editor(0, "optimizer", "learning_rate").isVisible()  # advanced field folded
    assert panel.editor(0, "optimizer", "iterations").isVisible()
    panel.advanced_toggle.click()
    assert panel.editor(0, "optimizer", "learning_rate").isVisible()


def test_a_stage_shows_only_the_fields_of_its_model(qtbot, panel):
    """The affine stage has no grid spacing or field smoothing; a B-spline stage has a grid spacing."""
    panel.choose_preset("affine-bspline-mi")
    panel.stage_list.setCurrentRow(0)
    assert panel.pipeline().stages[0].transform.kind == "affine"

    def hidden(name):
        qtbot.wait(1)  # a layout shows newly added widgets from the event loop
        return not panel.editor(0, "transform", name).isVisible()

    assert hidden("grid_spacing_mm") and hidden("field_smoothing_mm")
    assert not hidden("kind")
    panel.editor(0, "transform", "kind").set_text("bspline")
    assert not hidden("grid_spacing_mm") and hidden("field_smoothing_mm")
    panel.editor(0, "transform", "kind").set_text("displacement")
    assert hidden("grid_spacing_mm") and not hidden("field_smoothing_mm")


def test_preset_chooser_and_modified_state(panel):
    panel.choose_preset("affine-bspline-mi")
    assert panel.pipeline() == load_preset("affine-bspline-mi")
    assert panel.preset_name() == "affine-bspline-mi" and panel.stage_list.count() == 2
    panel.editor(0, "optimizer", "iterations").set_text("20")
    assert panel.pipeline().stages[0].optimizer.iterations == 20
    assert panel.preset_name() is None
    assert panel.preset_combo.currentText() == "(custom)"


@pytest.mark.parametrize("path, text, words", [
    ((0, "optimizer", "iterations"), "-5", "between 1 and 10000"),
    ((0, "optimizer", "iterations"), "abc", "not a whole number"),
    ((0, "transform", "grid_spacing_mm"), "0.1", "between 1 and 500 mm"),
    ((0, "pyramid", "shrink_factors"), "4, 2", "smoothing sigmas"),  # Pipeline.validate() refuses the mismatch
])
def test_invalid_values_are_refused_with_a_message(panel, path, text, words):
    if path[-1] == "grid_spacing_mm":  # shown only for a B-spline stage
        panel.editor(0, "transform", "kind").set_text("bspline")
    before = panel.pipeline()
    editor = panel.editor(*path)
    editor.set_text(text)
    assert panel.pipeline() == before
    assert words in editor.error.text() and editor.error.isVisible()
    assert path in panel.errors()
    # correcting it clears the message and takes the value
    good = {"iterations": "33", "grid_spacing_mm": "12", "shrink_factors": "4, 2, 1"}[path[-1]]
    editor.set_text(good)
    assert not editor.error.isVisible() and path not in panel.errors()


def test_add_remove_reorder_stages_keeps_initializer_first(panel):
    panel.choose_preset("affine-mi")
    first_init = panel.pipeline().stages[0].initializer
    panel.add_stage("bspline")
    assert [s.transform.kind for s in panel.pipeline().stages] == ["affine", "bspline"]
    panel.move_stage(1, -1)
    stages = panel.pipeline().stages
    assert [s.transform.kind for s in stages] == ["bspline", "affine"]
    assert stages[0].initializer == first_init and stages[1].initializer == "none"
    assert panel.stage_list.currentRow() == 0
    panel.remove_stage(0)
    assert [s.transform.kind for s in panel.pipeline().stages] == ["affine"]
    panel.remove_stage(0)  # the last stage cannot be removed
    assert len(panel.pipeline().stages) == 1


def test_export_load_and_state_roundtrip(panel, tmp_path, qtbot):
    panel.choose_preset("rigid-mi")
    panel.editor("pipeline", "symmetric").set_text("true")
    path = panel.export_preset(tmp_path / "mine.json")
    exported = Pipeline.from_json(path.read_text())
    assert exported == panel.pipeline() and exported.symmetric
    state = json.loads(json.dumps(panel.get_state()))
    other = ParamsPanel()
    qtbot.addWidget(other)
    other.set_state(state)
    assert other.pipeline() == panel.pipeline()
    other.choose_preset("affine-mi")
    other.load_file(path)
    assert other.pipeline() == exported
    bad = tmp_path / "bad.json"
    bad.write_text('{"stages": [{"metric": {"kind": "nope"}}]}')
    from regviewer.core.errors import ParameterError

    with pytest.raises(ParameterError, match="bad.json"):
        other.load_file(bad)


def test_rebuilding_forms_never_leaves_floating_windows(panel, qtbot):
    """Regression: editors removed from a rebuilt form popped up as top-level windows."""
    from PyQt6 import QtWidgets

    panel.choose_preset("affine-bspline-mi")
    panel.set_pipeline(panel.pipeline())
    panel.stage_list.setCurrentRow(1)
    panel.add_stage("rigid")
    qtbot.wait(20)
    strays = [w for w in QtWidgets.QApplication.topLevelWidgets()
              if w.isVisible() and w is not panel and not isinstance(w, QtWidgets.QMainWindow)]
    assert strays == []


def test_an_advanced_section_with_nothing_for_the_model_is_not_shown_empty(qtbot, panel):
    """An affine stage has no advanced transform field: no empty "Transform model" box under Advanced;
    a B-spline stage has one (grid refinement), and the box comes back."""
    from PyQt6 import QtWidgets

    panel.choose_preset("affine-mi")
    panel.advanced_toggle.click()
    qtbot.wait(1)

    def transform_box_shown() -> bool:
        boxes = [b for b in panel.advanced_box.findChildren(QtWidgets.QGroupBox) if b.title() == "Transform model"]
        return len(boxes) == 1 and boxes[0].isVisible()

    assert not transform_box_shown()
    assert panel.editor(0, "optimizer", "regrow_step").isVisible()  # the Optimiser box is there
    panel.editor(0, "transform", "kind").set_text("bspline")
    qtbot.wait(1)
    assert transform_box_shown() and panel.editor(0, "transform", "refine_grid").isVisible()
    assert not any(w.isWindow() and isinstance(w, QtWidgets.QGroupBox) for w in QtWidgets.QApplication.topLevelWidgets()
                   if w.isVisible())  # no box ever shown loose, as a window of its own
