"""The manual-alignment dock: sliders, numeric fields and mouse drags that move the
moving image, thin Qt over `core.manual.ManualAlignment` and the Workspace.

The numbers are the *visible motion of the moving image in the fixed frame*
(translation mm, rotations ° about LPS x/y/z, scale, about `centre`); the transform
made current is base ∘ M⁻¹ (fixed→moving), where base is the transform the move nudges
(identity, a run, a fit, a file). The fields always show the Workspace's current step
(`ws.manual`), so after Ctrl+Z they match the image. While the user drags, only a
preview is drawn; the move becomes current (ONE undo step, "Move moving image") when the
drag ends or the sliders rest for 250 ms. Reset returns to identity (undoable).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.transforms.manual import ManualAlignment, aligned_to_points, angle_between, centre_of_mass

_FIELDS = (
    # (key, label, min, max, step, decimals, suffix)
    ("tx", "Translate x (R→L)", -300.0, 300.0, 0.5, 1, " mm"),
    ("ty", "Translate y (A→P)", -300.0, 300.0, 0.5, 1, " mm"),
    ("tz", "Translate z (I→S)", -300.0, 300.0, 0.5, 1, " mm"),
    ("rx", "Rotate about x", -180.0, 180.0, 0.5, 1, "°"),
    ("ry", "Rotate about y", -180.0, 180.0, 0.5, 1, "°"),
    ("rz", "Rotate about z", -180.0, 180.0, 0.5, 1, "°"),
    ("scale", "Scale", 0.5, 2.0, 0.01, 3, ""),
)
_SLIDER_STEPS = 1000


class ManualAlignDock(QtWidgets.QDockWidget):
    """Dock with the manual-alignment controls; the window forwards Shift/Ctrl drags here."""

    def __init__(self, host, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Manual alignment", parent)
        self.setObjectName("ManualAlignDock")
        self.host = host
        self.alignment = host.workspace.manual  # what the fields show (ahead of the Workspace mid-drag)
        self._drag_start: ManualAlignment | None = None
        self._commit_timer = QtCore.QTimer(self)
        self._commit_timer.setSingleShot(True)
        self._commit_timer.setInterval(250)
        self._commit_timer.timeout.connect(self.commit)
        self._build_ui()
        host.on_images_changed(self._on_images_changed)
        host.on_transform_changed(self._on_transform_changed)

    # --- UI -------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        body = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(body)
        self.spins: dict[str, QtWidgets.QDoubleSpinBox] = {}
        self.sliders: dict[str, QtWidgets.QSlider] = {}
        self._rows: dict[str, list[QtWidgets.QWidget]] = {}
        for row, (key, label, lo, hi, step, decimals, suffix) in enumerate(_FIELDS):
            name = QtWidgets.QLabel(label)
            slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            slider.setRange(0, _SLIDER_STEPS)
            spin = QtWidgets.QDoubleSpinBox()
            spin.setRange(lo, hi)
            spin.setSingleStep(step)
            spin.setDecimals(decimals)
            spin.setSuffix(suffix)
            spin.setKeyboardTracking(False)
            slider.valueChanged.connect(lambda v, k=key, a=lo, b=hi: self._on_slider(k, a + (b - a) * v / _SLIDER_STEPS))
            slider.sliderPressed.connect(lambda: self._set_interacting(True))
            slider.sliderReleased.connect(lambda: self._set_interacting(False))
            spin.valueChanged.connect(lambda v, k=key: self._on_field(k, v))
            grid.addWidget(name, row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(spin, row, 2)
            self.spins[key], self.sliders[key] = spin, slider
            self._rows[key] = [name, slider, spin]
        buttons = QtWidgets.QHBoxLayout()
        self.centre_button = QtWidgets.QPushButton("Centre images")
        self.centre_button.setToolTip("Translate so the centres of the two image grids coincide")
        self.centre_button.clicked.connect(self.align_centres)
        self.mass_button = QtWidgets.QPushButton("Centres of mass")
        self.mass_button.setToolTip("Translate so the intensity centres of mass coincide")
        self.mass_button.clicked.connect(self.align_centres_of_mass)
        self.reset_button = QtWidgets.QPushButton("Reset")
        self.reset_button.setToolTip("Back to identity: no transform at all (Ctrl+Z undoes it)")
        self.reset_button.clicked.connect(self.reset)
        for b in (self.centre_button, self.mass_button, self.reset_button):
            buttons.addWidget(b)
        grid.addLayout(buttons, len(_FIELDS), 0, 1, 3)
        self.centre_label = QtWidgets.QLabel()
        self.centre_label.setStyleSheet("color: #888;")
        grid.addWidget(self.centre_label, len(_FIELDS) + 1, 0, 1, 3)
        hint = QtWidgets.QLabel("In a slice view: Shift-drag moves the moving image, "
                                "Ctrl-drag rotates it about the crosshair.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #888;")
        grid.addWidget(hint, len(_FIELDS) + 2, 0, 1, 3)
        grid.setRowStretch(len(_FIELDS) + 3, 1)
        self.setWidget(body)
        self._show_values()

    def _values(self) -> dict[str, float]:
        a = self.alignment
        return {"tx": a.translation[0], "ty": a.translation[1], "tz": a.translation[2],
                "rx": a.rotation_deg[0], "ry": a.rotation_deg[1], "rz": a.rotation_deg[2], "scale": a.scale}

    def _show_values(self) -> None:
        for key, value in self._values().items():
            spin, slider = self.spins[key], self.sliders[key]
            lo, hi = spin.minimum(), spin.maximum()
            for w in (spin, slider):
                w.blockSignals(True)
            spin.setValue(value)
            slider.setValue(int(round((np.clip(value, lo, hi) - lo) / (hi - lo) * _SLIDER_STEPS)))
            for w in (spin, slider):
                w.blockSignals(False)
        c = self.alignment.centre[: self.alignment.dimension]
        source = self.host.workspace.source
        on_top = "" if source.kind in ("manual", "identity") else f"\nMoves on top of the {source.describe()}"
        self.centre_label.setText("Centre of rotation/scale: (" + ", ".join(f"{v:.1f}" for v in c) + ") mm" + on_top)

    def _with_value(self, key: str, value: float) -> ManualAlignment:
        a = self.alignment
        if key == "scale":
            return replace(a, scale=float(value))
        vec_name, i = ("translation", "xyz".index(key[1])) if key[0] == "t" else ("rotation_deg", "xyz".index(key[1]))
        vec = list(getattr(a, vec_name))
        vec[i] = float(value)
        return replace(a, **{vec_name: tuple(vec)})

    def _on_slider(self, key: str, value: float) -> None:
        self.set_alignment(self._with_value(key, value), commit=False)
        self._commit_timer.start()

    def _on_field(self, key: str, value: float) -> None:
        self.set_alignment(self._with_value(key, value), commit=False)
        self._commit_timer.start()

    # --- state --------------------------------------------------------------------------------------
    @property
    def workspace(self):
        return self.host.workspace

    def transform(self) -> sitk.Transform:
        """The fixed→moving transform the fields give (the Workspace's base ∘ M⁻¹)."""
        return self.workspace.manual_transform(self.alignment)

    def set_alignment(self, alignment: ManualAlignment, commit: bool = True) -> None:
        """Show `alignment`; preview it, or (commit=True) make it the current transform."""
        self.alignment = alignment
        self._show_values()
        if self.host.fixed_volume() is None:
            return
        if commit:
            self.commit()
        else:
            self.workspace.set_preview(self.transform())

    def commit(self) -> None:
        """The fields' move becomes current: one undo step ("Move moving image")."""
        self._commit_timer.stop()
        if self.host.fixed_volume() is None:
            return
        if self.alignment == self.workspace.manual:
            self.workspace.set_preview(None)
            return
        try:
            self.workspace.move_manually(self.alignment)
        except RegviewerError as exc:
            self.host.show_error(exc)

    def reset(self) -> None:
        """Back to identity (undoable)."""
        self._commit_timer.stop()
        if self.host.fixed_volume() is not None:
            self.workspace.reset_transform()

    def align_centres(self) -> None:
        fixed, moving = self.host.fixed_volume(), self.host.moving_volume()
        if fixed is None or moving is None:
            return
        self._align(fixed.center_physical(), moving.center_physical())

    def align_centres_of_mass(self) -> None:
        fixed, moving = self.host.fixed_volume(), self.host.moving_volume()
        if fixed is None or moving is None:
            return
        self._align(centre_of_mass(fixed), centre_of_mass(moving))

    def _align(self, fixed_point: Sequence[float], moving_point: Sequence[float]) -> None:
        try:
            base = self.workspace.transform_state.manual_base
            self.set_alignment(aligned_to_points(self.alignment, fixed_point, moving_point, base))
        except RegviewerError as exc:
            self.host.show_error(exc)

    # --- mouse drags from slice views ---------------------------------------------------------------
    def drag(self, kind: str, start: Sequence[float], now: Sequence[float], finished: bool,
             axis: Sequence[float], pivot: Sequence[float]) -> None:
        """A Shift ("translate") or Ctrl ("rotate") drag in a slice view; points in fixed LPS mm.
        Each event is applied to the alignment at the drag's start, so nothing accumulates."""
        if self._drag_start is None:
            self._drag_start = self.alignment
            self._set_interacting(True)
        base = self._drag_start
        if kind == "translate":
            new = base.translated(np.asarray(now) - np.asarray(start))
        else:
            angle = angle_between(pivot, start, now, axis)
            new = base.rotated(axis, angle, pivot)
        self.set_alignment(new, commit=finished)
        if finished:
            self._set_interacting(False)
            self._drag_start = None

    def _set_interacting(self, active: bool) -> None:
        setter = getattr(self.host, "set_interacting", None)
        if setter is not None:
            setter(active)

    # --- Workspace events ------------------------------------------------------------------------------
    def _on_images_changed(self) -> None:
        fixed = self.host.fixed_volume()
        dim = fixed.dimension if fixed is not None else 3
        for key in ("tz", "rx", "ry"):
            for w in self._rows[key]:
                w.setVisible(dim == 3)
        self._on_transform_changed()

    def _on_transform_changed(self) -> None:
        """Any change (a move, Apply, a fit, undo, a session): show the current step's move."""
        if self._drag_start is not None:
            return  # mid-drag: the fields follow the mouse
        self._commit_timer.stop()
        self.alignment = self.workspace.manual
        self._show_values()

    def state(self) -> dict:
        return {"alignment": self.alignment.to_json()}
