"""The generated parameter panel offers the landmark weight (a basic field of each stage)."""

from __future__ import annotations

from regviewer.gui.widgets.params_panel import ParamsPanel


def test_landmark_weight_is_editable(qtbot):
    panel = ParamsPanel()
    qtbot.addWidget(panel)
    panel.show()
    editor = panel.editor(0, "landmark_weight")
    assert editor.isVisible()  # a basic field, not folded away
    editor.set_text("0.01")
    assert panel.pipeline().stages[0].landmark_weight == 0.01
    editor.set_text("-1")
    assert panel.errors()  # refused with a message, like every field
