"""Generated editors for single parameter fields (used by `params_panel`).

Each editor is chosen from the field's type and metadata (choices → combo box, bool →
check box, numbers and lists → text), parses text the way the engine's JSON does, and
shows a refusal message under itself.
"""

from __future__ import annotations

from typing import Any

from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import ParameterError

_ERROR_STYLE = "color: #c01010;"
_BAD_FIELD_STYLE = "border: 1px solid #d02020; background: #fff0f0;"

Path_ = tuple  # an editor's address: ("pipeline", name) or (stage_index, [sub_field,] name)


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_value(hint: Any, text: str, meta: dict) -> Any:
    """Text → a value of `hint`, or ParameterError in plain words."""
    origin = getattr(hint, "__origin__", None)
    if origin is tuple:
        inner = hint.__args__[0]
        parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
        if not parts:
            raise ParameterError("give at least one value, separated by commas")
        return tuple(parse_value(inner, p, meta) for p in parts)
    text = text.strip()
    if hint is int:
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"'{text}' is not a whole number") from None
        if value != int(value):
            raise ParameterError(f"'{text}' is not a whole number")
        value = int(value)
    elif hint is float:
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(f"'{text}' is not a number") from None
    else:
        return text
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        unit = f" {meta['unit']}" if meta.get("unit") else ""
        raise ParameterError(f"must be between {format_value(lo)} and {format_value(hi)}{unit}")
    return value


def field_label(name: str) -> str:
    return name.replace("_mm", " (mm)").replace("_", " ").capitalize()


class FieldEditor(QtWidgets.QWidget):
    """One generated editor (combo, check box or line edit) with its error message under it."""

    edited = QtCore.pyqtSignal(object, object)  # (path, raw value: str | bool)

    def __init__(self, path: Path_, hint: Any, meta: dict, value: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.path, self.hint, self.meta = path, hint, meta
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        choices = meta.get("choices")
        if hint is bool:
            self.widget = QtWidgets.QCheckBox()
            self.widget.setChecked(bool(value))
            self.widget.toggled.connect(lambda on: self.edited.emit(self.path, bool(on)))
        elif choices:
            self.widget = QtWidgets.QComboBox()
            self.widget.addItems([str(c) for c in choices])
            self.widget.setCurrentText(str(value))
            self.widget.currentTextChanged.connect(lambda t: self.edited.emit(self.path, t))
        else:
            self.widget = QtWidgets.QLineEdit(format_value(value))
            self.widget.editingFinished.connect(lambda: self.edited.emit(self.path, self.widget.text()))
        tip = meta.get("help", "")
        if meta.get("unit"):
            tip += f" [{meta['unit']}]"
        if meta.get("min") is not None:
            tip += f" (range {format_value(meta.get('min'))} – {format_value(meta.get('max'))})"
        self.widget.setToolTip(tip)
        layout.addWidget(self.widget)
        self.error = QtWidgets.QLabel()
        self.error.setStyleSheet(_ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)

    def show_error(self, message: str | None) -> None:
        self.error.setText(message or "")
        self.error.setVisible(bool(message))
        if isinstance(self.widget, QtWidgets.QLineEdit):
            self.widget.setStyleSheet(_BAD_FIELD_STYLE if message else "")

    def set_text(self, text: str) -> None:
        """Type `text` and confirm it, as a user would (tests, scripting)."""
        if isinstance(self.widget, QtWidgets.QLineEdit):
            self.widget.setText(text)
            self.widget.editingFinished.emit()
        elif isinstance(self.widget, QtWidgets.QComboBox):
            self.widget.setCurrentText(text)
        else:
            self.widget.setChecked(text.lower() in ("1", "true", "yes", "on"))
