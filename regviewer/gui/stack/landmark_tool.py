"""Landmark pairs on one section of a stack: section k's neighbour (k−1, or its reference
plane) on the left, section k as aligned on the right. A click on the left places a
neighbour point, a click on the right the same anatomy on section k; markers drag.

Each edit refits the chosen model in the background (`core.stack.section_corrections.
fit_correction`, i.e. `core.landmarks.fitting`: residuals, leave-one-out errors, flagged
pairs) and colours the markers by error as the main window's landmark markers do. Apply
asks the window to make the fit section k's correction, which the sections after it take
too (as a drag does). No numbers are computed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from regviewer.core.stack.section_corrections import FIT_MODELS, fit_correction
from regviewer.gui.background import LatestResult
from regviewer.gui.stack.image_views import ClickBox, image_view
from regviewer.gui.views.landmark_markers import COLOURS, error_classes

FIT_KIND = "stack-landmark-fit"


class SectionLandmarkTool(QtWidgets.QWidget):
    """`show_section(model, k)` after any change; `apply_requested(k, correction)` when Apply is pressed."""

    apply_requested = QtCore.pyqtSignal(int, object)
    fitted = QtCore.pyqtSignal(object)  # the LandmarkFit (or None when there is none)

    def __init__(self, jobs: LatestResult, editable: Callable[[], bool] = lambda: True,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.editable = editable  # False while the stack is aligning: the run's result replaces the sections
        self.model = None
        self.k = 0
        self.fit = None  # (key, correction, LandmarkFit) of the pairs on screen, when fitted
        self._key = None
        self._markers: list[pg.TargetItem] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        views = QtWidgets.QHBoxLayout()
        self.fixed_widget, self.fixed_item = image_view(
            "Neighbour (k−1 or reference): click a point", "Click to place a point on the neighbour; drag a marker to move it",
            ClickBox(lambda c, r: self.place("fixed", c, r)))
        self.moving_widget, self.moving_item = image_view(
            "Section k: click the same point", "Click the same anatomy on section k; drag a marker to move it",
            ClickBox(lambda c, r: self.place("moving", c, r)))
        self.fixed_widget.view_box.setXLink(self.moving_widget.view_box)
        self.fixed_widget.view_box.setYLink(self.moving_widget.view_box)
        views.addWidget(self.fixed_widget)
        views.addWidget(self.moving_widget)
        layout.addLayout(views, 1)
        row = QtWidgets.QHBoxLayout()
        self.model_box = QtWidgets.QComboBox()
        self.model_box.addItems(FIT_MODELS)
        self.model_box.currentTextChanged.connect(lambda _t: self.request_fit())
        self.apply_button = QtWidgets.QPushButton("Apply to section and later")
        self.apply_button.setToolTip("Make the fit this section's correction; every later section follows (Ctrl+Z undoes)")
        self.apply_button.clicked.connect(self.apply)
        self.clear_button = QtWidgets.QPushButton("Clear pairs")
        self.clear_button.clicked.connect(self.clear)
        row.addWidget(QtWidgets.QLabel("Model"))
        row.addWidget(self.model_box)
        row.addWidget(self.apply_button)
        row.addWidget(self.clear_button)
        self.fit_label = QtWidgets.QLabel("")
        self.fit_label.setWordWrap(True)
        row.addWidget(self.fit_label, 1)
        layout.addLayout(row)
        self._set_fit(None, "")

    # --- inputs ---------------------------------------------------------------------
    def show_section(self, model, k: int) -> None:
        """Draw section k and its neighbour with k's pairs; refit when the pairs changed."""
        self.model, self.k = model, k
        if model is None:
            return
        below, name = model.below(k)
        fresh = self.fixed_item.image is None or self.fixed_item.image.shape != below.shape
        self.fixed_item.setImage(below, autoLevels=False, levels=(0, 255))
        self.moving_item.setImage(model.section(k), autoLevels=False, levels=(0, 255))
        if fresh:  # linked views do not range themselves on their first image
            self.fixed_widget.view_box.autoRange(padding=0.02)
        self.fixed_widget.ci.getItem(0, 0).setText(f"Neighbour: {name} — click a point", size="9pt")
        self.moving_widget.ci.getItem(0, 0).setText(f"Section k: {model.names[k]} — click the same point", size="9pt")
        if self._fit_key() != self._key:
            self.request_fit()
        self._draw_markers()

    def place(self, role: str, col: float, row: float, index: int | None = None) -> None:
        if self.model is None or self.model.aligned[self.k] is None:
            return
        if not self.editable():  # a point picked now would sit on a section the final fit still moves
            self.fit_label.setText("The stack is still aligning: place landmarks once it has finished")
            return
        if self.k in self.model.dirty:  # the picture shown is the one before the last correction
            self.fit_label.setText("Resampling this section after the correction; click again in a moment")
            return
        self.model.place_landmark(self.k, role, self.model.to_mm(col, row), index)
        self.request_fit()
        self._draw_markers()

    def clear(self) -> None:
        if self.model is not None:
            self.model.clear_landmarks(self.k)
            self.request_fit()
            self._draw_markers()

    def apply(self) -> None:
        if self.fit is not None and self.fit[0] == self._fit_key():
            self.apply_requested.emit(self.k, self.fit[1])

    # --- fitting (off the GUI thread) -------------------------------------------------
    def _fit_key(self):
        if self.model is None:
            return None
        return id(self.model), self.k, self.model_box.currentText(), tuple(self.model.landmarks(self.k))

    def request_fit(self) -> None:
        key = self._key = self._fit_key()
        self._set_fit(None, "")
        if key is None:
            return
        pairs = [p for p in self.model.landmark_pairs(self.k) if p.complete]
        if not pairs:
            self._set_fit(None, "Click a point on the neighbour, then the same point on section k.")
            return
        model_name = self.model_box.currentText()
        self.jobs.submit(FIT_KIND, lambda: fit_correction(pairs, model_name),
                         lambda result, error: self._fitted(key, result, error))

    def _fitted(self, key, result, error) -> None:
        if key != self._fit_key():
            return  # the pairs changed meanwhile; their own fit is on its way
        if error is not None:
            self._set_fit(None, str(error))
        else:
            correction, fit = result
            loo = "" if math.isnan(fit.loo_rms_mm) else f", leave-one-out {fit.loo_rms_mm:.2f}"
            flags = "".join(f"; {fit.names[fit.pair_indices.index(i)]}: {why}" for i, why in
                            zip(fit.flagged, fit.flag_reasons))
            warnings = "".join(f"; {w}" for w in fit.warnings)
            self._set_fit((key, correction, fit),
                          f"{fit.model} fit to {len(fit.pair_indices)} pairs: RMS {fit.rms_mm:.2f} mm{loo}{flags}{warnings}")
        self._draw_markers()

    def _set_fit(self, fit, text: str) -> None:
        self.fit = fit
        self.apply_button.setEnabled(fit is not None)
        self.fit_label.setText(text)
        self.fitted.emit(None if fit is None else fit[2])

    # --- markers ----------------------------------------------------------------------
    def _draw_markers(self) -> None:
        for marker in self._markers:
            marker.scene() and marker.getViewBox().removeItem(marker)
        self._markers = []
        if self.model is None:
            return
        pairs = self.model.landmarks(self.k)
        fit = self.fit[2] if self.fit is not None else None
        errors = [None if fit is None else fit.residual_for(i) for i in range(len(pairs))]
        flagged = [fit is not None and i in fit.flagged for i in range(len(pairs))]
        classes = error_classes(errors, flagged)
        for i, (name, fixed, moving) in enumerate(pairs):
            for role, point, widget, symbol in (("fixed", fixed, self.fixed_widget, "o"),
                                                ("moving", moving, self.moving_widget, "s")):
                if point is not None:
                    self._add_marker(widget.view_box, i, role, name, point, symbol, COLOURS[classes[i]])

    def _add_marker(self, box, index: int, role: str, name: str, point, symbol: str, colour) -> None:
        col, row = self.model.to_pixel(point)
        marker = pg.TargetItem(pos=(col, row), size=11, symbol=symbol, pen=pg.mkPen(colour, width=2),
                               movable=True, label=name, labelOpts={"offset": (8, -8), "color": colour})
        marker.setZValue(50)
        # After the drag's own event: placing redraws the markers, this one included.
        marker.sigPositionChangeFinished.connect(lambda m, i=index, r=role: QtCore.QTimer.singleShot(
            0, lambda: self.place(r, m.pos().x(), m.pos().y(), index=i)))
        box.addItem(marker)
        self._markers.append(marker)

    def markers(self, role: str) -> list[pg.TargetItem]:
        box = (self.fixed_widget if role == "fixed" else self.moving_widget).view_box
        return [m for m in self._markers if m.getViewBox() is box]


__all__ = ["SectionLandmarkTool"]
