"""The overlay-mode controller: which composite the overlay views show, and its knobs.

It owns a `core.composite.OverlaySettings`, a toolbar (one checkable action per mode,
keys 1–6, plus the current mode's parameter) and the flicker timer. It never touches
pixels: it emits `changed` and the window redraws the overlay views.
"""

from __future__ import annotations

import time

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.composite import OVERLAY_MODES, OverlaySettings, flicker_frame

_LABELS = {
    "blend": ("Blend", "Alpha blend of fixed and moving (1)"),
    "checkerboard": ("Checker", "Checkerboard of fixed and moving squares (2)"),
    "difference": ("Difference", "Absolute difference |fixed − moving| (3)"),
    "fusion": ("Fusion", "Colour fusion: fixed magenta, moving green (4)"),
    "flicker": ("Flicker", "Alternate fixed and moving at a set rate (5)"),
    "curtain": ("Curtain", "A draggable divider: fixed left, moving right (6)"),
}


class OverlayController(QtCore.QObject):
    """Overlay mode + parameters; `changed` fires on any edit and on each flicker tick."""

    changed = QtCore.pyqtSignal()

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.settings = OverlaySettings()
        self._t0 = time.monotonic()
        self._flicker_timer = QtCore.QTimer(self)
        self._flicker_timer.timeout.connect(self._on_flicker_tick)
        self.flicker_shows = "fixed"
        self.toolbar = QtWidgets.QToolBar("Overlay", parent)
        self.toolbar.setObjectName("overlay_toolbar")
        self.actions: dict[str, QtGui.QAction] = {}
        group = QtGui.QActionGroup(self)
        for i, mode in enumerate(OVERLAY_MODES, start=1):
            text, tip = _LABELS[mode]
            action = QtGui.QAction(text, self)
            action.setCheckable(True)
            action.setToolTip(tip)
            action.setShortcut(QtGui.QKeySequence(str(i)))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, m=mode: self.set_mode(m))
            group.addAction(action)
            self.toolbar.addAction(action)
            self.actions[mode] = action
        self.toolbar.addSeparator()
        self._param_label = QtWidgets.QLabel()
        self._param_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self._param_slider.setFixedWidth(140)
        self._param_slider.valueChanged.connect(self._on_slider)
        self._param_value = QtWidgets.QLabel()
        self._param_value.setMinimumWidth(52)
        # a toolbar shows or hides a widget through the action addWidget returns, not the widget
        self._param_actions = [self.toolbar.addWidget(w) for w in (self._param_label, self._param_slider, self._param_value)]
        self.set_settings(self.settings)

    # --- public ------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.settings.mode

    def set_mode(self, mode: str) -> None:
        self.set_settings(self.settings.with_(mode=mode))

    def set_settings(self, settings: OverlaySettings) -> None:
        self.settings = settings
        self.actions[settings.mode].setChecked(True)
        self._configure_param()
        if settings.mode == "flicker":
            self._t0 = time.monotonic()
            self._flicker_timer.start(max(10, int(1000 / settings.flicker_hz)))
        else:
            self._flicker_timer.stop()
            self.flicker_shows = "fixed"
        self.changed.emit()

    def set_parameter(self, **changes) -> None:
        """Change a parameter (alpha, square_mm, flicker_hz, curtain_position) without a slider."""
        self.set_settings(self.settings.with_(**changes))

    def stop(self) -> None:
        self._flicker_timer.stop()

    # --- the per-mode parameter slider -------------------------------------------------------
    # (label, field, slider min, slider max, slider → value, value → slider, format)
    _PARAMS = {
        "blend": ("Moving weight", "alpha", 0, 100, lambda v: v / 100, lambda x: round(x * 100), "{:.0%}"),
        "checkerboard": ("Square", "square_mm", 1, 100, float, round, "{:.0f} mm"),
        "flicker": ("Rate", "flicker_hz", 1, 40, lambda v: v / 4, lambda x: round(x * 4), "{:.2f} Hz"),
        "curtain": ("Divider", "curtain_position", 0, 100, lambda v: v / 100, lambda x: round(x * 100), "{:.0%}"),
    }

    def _configure_param(self) -> None:
        spec = self._PARAMS.get(self.settings.mode)
        visible = spec is not None
        for action in self._param_actions:
            action.setVisible(visible)
        if not visible:
            return
        label, field, lo, hi, _to_value, to_slider, fmt = spec
        self._param_label.setText(label + " ")
        self._param_slider.blockSignals(True)
        self._param_slider.setRange(lo, hi)
        self._param_slider.setValue(int(to_slider(getattr(self.settings, field))))
        self._param_slider.blockSignals(False)
        self._param_value.setText(fmt.format(getattr(self.settings, field)))

    def _on_slider(self, value: int) -> None:
        spec = self._PARAMS.get(self.settings.mode)
        if spec is None:
            return
        _label, field, _lo, _hi, to_value, _to_slider, _fmt = spec
        self.set_parameter(**{field: to_value(value)})

    def _on_flicker_tick(self) -> None:
        self.flicker_shows = flicker_frame(time.monotonic() - self._t0 + 1e-3, self.settings.flicker_hz)
        self.changed.emit()
