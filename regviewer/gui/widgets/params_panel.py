"""The registration parameter panel, generated from the engine's parameter dataclasses.

Every editor here comes from a field of `regviewer.core.registration.params` (its type, default and
``metadata``: help, choices, min/max, unit, advanced), so adding a parameter to the
engine is one line there and it appears here by itself. The panel holds one valid
`Pipeline` at all times: an edit that the engine's own checks refuse (range, type,
`Pipeline.validate()`) is not taken, and its message stays next to the field until the
value is corrected.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_type_hints

from PyQt6 import QtCore, QtWidgets

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import ParameterError, RegviewerError
from regviewer.core.registration.params import Pipeline, Stage, TransformParams, applies_to
from regviewer.core.registration.presets import DEFAULT_PRESET, list_presets, load_preset
from regviewer.gui.widgets.param_fields import FieldEditor, Path_, field_label, parse_value

CUSTOM = "(custom)"


class ParamsPanel(QtWidgets.QWidget):
    """Preset chooser, pipeline options, the stage list and a generated editor for one stage.

    `pipeline()` is always valid; `errors()` lists the refused edits still on screen.
    Signals: `changed()` after every accepted edit.
    """

    changed = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._pipeline = Pipeline()
        self._preset: str | None = None
        self._editors: dict[Path_, FieldEditor] = {}
        self._errors: dict[Path_, str] = {}
        self._build()
        presets = [name for name, _ in list_presets()]
        if presets:
            self.choose_preset(DEFAULT_PRESET if DEFAULT_PRESET in presets else presets[0])
        else:
            self.set_pipeline(Pipeline())

    # --- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Preset"))
        self.preset_combo = QtWidgets.QComboBox()
        for name, description in list_presets():
            self.preset_combo.addItem(name, name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, description, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.addItem(CUSTOM, None)
        self.preset_combo.activated.connect(self._on_preset_activated)
        row.addWidget(self.preset_combo, 1)
        self.load_button = QtWidgets.QPushButton("Load…")
        self.load_button.setToolTip("Load parameters from a preset JSON file")
        self.load_button.clicked.connect(self._load_dialog)
        self.export_button = QtWidgets.QPushButton("Export…")
        self.export_button.setToolTip("Save these parameters as a preset JSON file")
        self.export_button.clicked.connect(self._export_dialog)
        row.addWidget(self.load_button)
        row.addWidget(self.export_button)
        outer.addLayout(row)
        self.preset_description = QtWidgets.QLabel()
        self.preset_description.setWordWrap(True)
        self.preset_description.setStyleSheet("color: #555;")
        outer.addWidget(self.preset_description)

        self.pipeline_box = QtWidgets.QWidget()
        self.pipeline_form = QtWidgets.QFormLayout(self.pipeline_box)
        self.pipeline_form.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.pipeline_box)

        stages_box = QtWidgets.QGroupBox("Stages (run top to bottom)")
        stages_layout = QtWidgets.QHBoxLayout(stages_box)
        self.stage_list = QtWidgets.QListWidget()
        self.stage_list.setMaximumHeight(90)
        self.stage_list.currentRowChanged.connect(self._on_stage_selected)
        stages_layout.addWidget(self.stage_list, 1)
        buttons = QtWidgets.QVBoxLayout()
        self.add_button = QtWidgets.QToolButton(text="Add")
        self.add_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.add_button)
        for kind in dataclasses.fields(TransformParams)[0].metadata["choices"]:
            menu.addAction(kind, lambda k=kind: self.add_stage(k))
        self.add_button.setMenu(menu)
        self.remove_button = QtWidgets.QToolButton(text="Remove")
        self.remove_button.clicked.connect(lambda: self.remove_stage(self.stage_list.currentRow()))
        self.up_button = QtWidgets.QToolButton(text="▲")
        self.up_button.setToolTip("Run this stage earlier")
        self.up_button.clicked.connect(lambda: self.move_stage(self.stage_list.currentRow(), -1))
        self.down_button = QtWidgets.QToolButton(text="▼")
        self.down_button.setToolTip("Run this stage later")
        self.down_button.clicked.connect(lambda: self.move_stage(self.stage_list.currentRow(), +1))
        for b in (self.add_button, self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        stages_layout.addLayout(buttons)
        outer.addWidget(stages_box)

        self.stage_editor = QtWidgets.QWidget()
        self.stage_layout = QtWidgets.QVBoxLayout(self.stage_editor)
        self.stage_layout.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stage_editor)
        outer.addStretch(1)

    # --- public API ---------------------------------------------------------------------
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def preset_name(self) -> str | None:
        """The preset's name while the parameters are exactly that preset, else None."""
        return self._preset

    def errors(self) -> dict[Path_, str]:
        return dict(self._errors)

    def editor(self, *path: Any) -> FieldEditor:
        """The editor at `path`, e.g. ``editor(0, "optimizer", "iterations")`` or ``editor("pipeline", "symmetric")``."""
        return self._editors[tuple(path)]

    def current_stage(self) -> int:
        return max(self.stage_list.currentRow(), 0)

    def choose_preset(self, name: str) -> None:
        self.set_pipeline(load_preset(name), preset=name)

    def set_pipeline(self, pipeline: Pipeline, preset: str | None = None, select: int = 0) -> None:
        pipeline.validate()
        self._pipeline = pipeline
        self._preset = preset
        self._errors.clear()
        self._refresh(select)
        self.changed.emit()

    def add_stage(self, kind: str = "affine") -> None:
        base = Stage()
        stage = dataclasses.replace(base, name=kind, transform=dataclasses.replace(base.transform, kind=kind),
                                    initializer="none")
        self._set_stages(self._pipeline.stages + (stage,), len(self._pipeline.stages))

    def remove_stage(self, index: int) -> None:
        stages = list(self._pipeline.stages)
        if len(stages) <= 1 or not 0 <= index < len(stages):
            return
        del stages[index]
        self._set_stages(tuple(stages), min(index, len(stages) - 1))

    def move_stage(self, index: int, offset: int) -> None:
        stages = list(self._pipeline.stages)
        target = index + offset
        if not (0 <= index < len(stages) and 0 <= target < len(stages)):
            return
        stages[index], stages[target] = stages[target], stages[index]
        self._set_stages(tuple(stages), target)

    def export_preset(self, path: str | Path) -> Path:
        """Write the parameters as a preset JSON file (atomic)."""
        p = Path(path)
        atomic_write_text(p, self._pipeline.to_json() + "\n")
        return p

    def load_file(self, path: str | Path) -> None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ParameterError(f"Cannot read parameters from '{p}': {exc.strerror or exc}") from None
        try:
            pipeline = Pipeline.from_json(text)
            pipeline.validate()
        except ParameterError as exc:
            raise ParameterError(f"'{p}' is not a valid parameter file: {exc}") from None
        self.set_pipeline(pipeline)

    def get_state(self) -> dict:
        return {"preset": self._preset, "pipeline": self._pipeline.to_dict(), "selected_stage": self.current_stage()}

    def set_state(self, state: dict) -> None:
        pipeline = Pipeline.from_dict(state.get("pipeline") or Pipeline().to_dict())
        self.set_pipeline(pipeline, preset=state.get("preset"), select=int(state.get("selected_stage", 0)))

    # --- edits ----------------------------------------------------------------------------
    def _set_stages(self, stages: tuple[Stage, ...], select: int) -> None:
        # The starting alignment (initializer) belongs to the start of the pipeline, whichever stage is first.
        start = next((s.initializer for s in self._pipeline.stages[:1] if s.initializer != "none"), "none")
        stages = tuple(dataclasses.replace(s, initializer=start if i == 0 else "none") for i, s in enumerate(stages))
        candidate = dataclasses.replace(self._pipeline, stages=stages)
        candidate.validate()
        self._pipeline = candidate
        self._preset = None
        self._errors.clear()
        self._refresh(select)
        self.changed.emit()

    def _on_edit(self, path: Path_, raw: Any) -> None:
        editor = self._editors[path]
        try:
            value = raw if isinstance(raw, bool) or editor.meta.get("choices") else parse_value(editor.hint, raw, editor.meta)
            candidate = self._replace(path, value)
            candidate.validate()
        except ParameterError as exc:
            self._errors[path] = str(exc)
            editor.show_error(str(exc))
            return
        self._errors.pop(path, None)
        editor.show_error(None)
        if candidate == self._pipeline:
            return
        self._pipeline = candidate
        self._preset = None
        self._update_preset_row()
        if path[-1] in ("name", "kind"):
            self._refresh_stage_names()
        if path[1:] == ("transform", "kind"):
            self._show_fields_for_model(path[0])
        self.changed.emit()

    def _replace(self, path: Path_, value: Any) -> Pipeline:
        if path[0] == "pipeline":
            return dataclasses.replace(self._pipeline, **{path[1]: value})
        index, *names = path
        stage = self._pipeline.stages[index]
        if len(names) == 1:
            new_stage = dataclasses.replace(stage, **{names[0]: value})
        else:
            sub = getattr(stage, names[0])
            new_stage = dataclasses.replace(stage, **{names[0]: dataclasses.replace(sub, **{names[1]: value})})
        stages = list(self._pipeline.stages)
        stages[index] = new_stage
        return dataclasses.replace(self._pipeline, stages=tuple(stages))

    def _show_fields_for_model(self, index: int) -> None:
        """Show a field only for the transform kinds it applies to (`models` metadata)."""
        kind = self._pipeline.stages[index].transform.kind
        any_shown: dict[QtWidgets.QFormLayout, bool] = {}
        for path, (form, f) in getattr(self, "_model_rows", {}).items():
            if path[0] == index and path in self._editors:
                shown = applies_to(f, kind)
                form.setRowVisible(self._editors[path], shown)
                any_shown[form] = any_shown.get(form, False) or shown
        for form, shown in any_shown.items():  # no empty box (an affine has no advanced transform field)
            box = form.parentWidget()
            if box is not None and (not shown or box.parentWidget() is not None):  # never show a loose box
                box.setHidden(not shown)

    # --- generated forms ------------------------------------------------------------------
    def _make_editor(self, path: Path_, owner: Any, f: dataclasses.Field, hint: Any) -> FieldEditor:
        editor = FieldEditor(path, hint, dict(f.metadata), getattr(owner, f.name))
        editor.edited.connect(self._on_edit)
        self._editors[path] = editor
        return editor

    def _refresh(self, select: int = 0) -> None:
        self._editors = {}
        self._update_preset_row()
        _clear_layout(self.pipeline_form)
        hints = get_type_hints(Pipeline)
        for f in dataclasses.fields(Pipeline):
            if f.name == "stages" or f.metadata.get("advanced"):
                continue
            self.pipeline_form.addRow(field_label(f.name), self._make_editor(("pipeline", f.name), self._pipeline, f, hints[f.name]))
        self._refresh_stage_names(select)

    def _refresh_stage_names(self, select: int | None = None) -> None:
        row = self.stage_list.currentRow() if select is None else select
        self.stage_list.blockSignals(True)
        self.stage_list.clear()
        for i, s in enumerate(self._pipeline.stages):
            self.stage_list.addItem(f"{i + 1}. {s.name} ({s.transform.kind})")
        row = min(max(row, 0), len(self._pipeline.stages) - 1)
        self.stage_list.setCurrentRow(row)
        self.stage_list.blockSignals(False)
        if select is not None:
            self._build_stage_form(row)
        self.remove_button.setEnabled(len(self._pipeline.stages) > 1)

    def _on_stage_selected(self, row: int) -> None:
        if 0 <= row < len(self._pipeline.stages):
            self._build_stage_form(row)

    def _build_stage_form(self, index: int) -> None:
        # Refused edits shown on the stage being left are dropped with their editors.
        self._errors = {k: v for k, v in self._errors.items() if k[0] == "pipeline"}
        self._editors = {k: v for k, v in self._editors.items() if k[0] == "pipeline"}
        _clear_layout(self.stage_layout)
        self._model_rows: dict[Path_, tuple[QtWidgets.QFormLayout, dataclasses.Field]] = {}
        stage = self._pipeline.stages[index]
        hints = get_type_hints(Stage)
        basic_box = QtWidgets.QGroupBox(f"Stage {index + 1}: {stage.name}")
        basic_form = QtWidgets.QFormLayout(basic_box)
        advanced_box = QtWidgets.QWidget()
        advanced_layout = QtWidgets.QVBoxLayout(advanced_box)
        advanced_layout.setContentsMargins(0, 0, 0, 0)
        advanced_forms: dict[str, QtWidgets.QFormLayout] = {}
        sections: list[QtWidgets.QGroupBox] = []

        def advanced_form(title: str) -> QtWidgets.QFormLayout:
            if title not in advanced_forms:
                group = QtWidgets.QGroupBox(title)
                advanced_forms[title] = QtWidgets.QFormLayout(group)
                advanced_layout.addWidget(group)
            return advanced_forms[title]

        for f in dataclasses.fields(Stage):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                sub = getattr(stage, f.name)
                sub_hints = get_type_hints(hint)
                title = f.metadata.get("help", field_label(f.name))
                group = QtWidgets.QGroupBox(title)
                form = QtWidgets.QFormLayout(group)
                for sf in dataclasses.fields(hint):
                    editor = self._make_editor((index, f.name, sf.name), sub, sf, sub_hints[sf.name])
                    target = advanced_form(title) if sf.metadata.get("advanced") else form
                    target.addRow(field_label(sf.name), editor)
                    self._model_rows[(index, f.name, sf.name)] = (target, sf)
                if form.rowCount():
                    sections.append(group)
                continue
            editor = self._make_editor((index, f.name), stage, f, hint)
            (advanced_form("Stage") if f.metadata.get("advanced") else basic_form).addRow(field_label(f.name), editor)
        self._show_fields_for_model(index)
        self.stage_layout.addWidget(basic_box)
        for group in sections:
            self.stage_layout.addWidget(group)
        self.advanced_toggle = QtWidgets.QToolButton(text="Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(QtCore.Qt.ArrowType.RightArrow)
        self.advanced_box = advanced_box
        advanced_box.setVisible(False)

        def toggle(on: bool) -> None:
            advanced_box.setVisible(on)
            self.advanced_toggle.setArrowType(QtCore.Qt.ArrowType.DownArrow if on else QtCore.Qt.ArrowType.RightArrow)

        self.advanced_toggle.toggled.connect(toggle)
        self.stage_layout.addWidget(self.advanced_toggle)
        self.stage_layout.addWidget(advanced_box)

    def _update_preset_row(self) -> None:
        idx = self.preset_combo.findData(self._preset) if self._preset else self.preset_combo.findText(CUSTOM)
        self.preset_combo.setCurrentIndex(idx)
        desc = self._pipeline.description if self._preset else (
            "Custom parameters" + (f" (from {self._pipeline.name})" if self._pipeline.name not in ("", "custom") else ""))
        self.preset_description.setText(desc)

    def _on_preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name is None:
            self._update_preset_row()
            return
        try:
            self.choose_preset(name)
        except RegviewerError as exc:
            QtWidgets.QMessageBox.warning(self, "Preset", str(exc))

    def _load_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load parameters", "", "Parameters (*.json)")
        if path:
            try:
                self.load_file(path)
            except RegviewerError as exc:
                QtWidgets.QMessageBox.warning(self, "Load parameters", str(exc))

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export preset", f"{self._pipeline.name}.json",
                                                        "Parameters (*.json)")
        if path:
            try:
                self.export_preset(path)
            except RegviewerError as exc:
                QtWidgets.QMessageBox.warning(self, "Export preset", str(exc))


def _clear_layout(layout: QtWidgets.QLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None:
            # Hide first: a widget just added to a visible layout has a queued "show"; without
            # this it would pop up as a top-level window once it has no parent.
            widget.hide()
            widget.setParent(None)
            widget.deleteLater()
        elif item.layout() is not None:
            _clear_layout(item.layout())
