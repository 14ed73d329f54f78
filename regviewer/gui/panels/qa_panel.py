"""The QA dock: is the current registration trustworthy? Numbers, pictures, a report.

Thin Qt over `regviewer.core.qa.evaluation.evaluate_registration` (the same call as
`regviewer evaluate`): it runs on a QThreadPool worker whenever the host's current
transform (fixed → moving) changes, and the GUI thread only shows the result:
the tables and warning flags, a Jacobian-determinant colour overlay in every slice
view (diverging colours centred at 1, folding in yellow; `qa.jacobian_rgba`), the
deformation grid (`core.grid`, drawn with the live panel's grid item), a histogram
of Jacobian values, and a "Write report…" button (`core.report.write_report`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.qa.histogram import jacobian_histogram
from regviewer.gui.background import LatestResult
from regviewer.gui.views.qa_overlay import QAOverlays

AUTO_DELAY_MS = 400  # wait for the transform to settle before re-evaluating
HISTOGRAM_BINS = 80



log = logging.getLogger(__name__)

class QADock(QtWidgets.QDockWidget):
    """Quality numbers, Jacobian overlay, grid and histogram for the host's current transform."""

    evaluated = QtCore.pyqtSignal(object)  # the core Evaluation
    reportWritten = QtCore.pyqtSignal(str)
    failed = QtCore.pyqtSignal(object)  # the error of an evaluation or report

    def __init__(self, host, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Quality (QA)", parent if parent is not None else (host if isinstance(host, QtWidgets.QWidget) else None))
        self.setObjectName("QADock")
        self.host = host
        self.evaluation = None  # regviewer.core.qa.evaluation.Evaluation of the current transform
        self.mask_path: str | None = None
        self.labels_fixed_path: str | None = None
        self.labels_moving_path: str | None = None
        self._log2_range = 1.0
        self._background = getattr(host, "background", None) or LatestResult(self)
        self.overlays = QAOverlays(host)
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(AUTO_DELAY_MS)
        self._timer.timeout.connect(self.evaluate)
        self._build()
        host.on_transform_changed(self._on_transform_changed)
        host.on_images_changed(self._on_images_changed)
        self.visibilityChanged.connect(self._on_visibility_changed)
        host.register_session_part("qa", self.state, self.restore_state)

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        layout.setContentsMargins(6, 6, 6, 6)

        row = QtWidgets.QHBoxLayout()
        self.evaluate_button = QtWidgets.QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Measure the current transform (runs in the background)")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.auto_check = QtWidgets.QCheckBox("Auto")
        self.auto_check.setToolTip("Re-evaluate whenever the transform changes")
        self.auto_check.setChecked(True)
        self.report_button = QtWidgets.QPushButton("Write report…")
        self.report_button.setToolTip("A self-contained HTML report (pictures, tables, parameters) to file or share")
        self.report_button.clicked.connect(self._ask_report_path)
        self.report_button.setEnabled(False)
        row.addWidget(self.evaluate_button)
        row.addWidget(self.auto_check)
        row.addStretch(1)
        row.addWidget(self.report_button)
        layout.addLayout(row)

        inputs = QtWidgets.QHBoxLayout()
        self.mask_button = QtWidgets.QPushButton("Mask…")
        self.mask_button.setToolTip("A fixed-image mask: Jacobian, displacement and similarity are measured inside it")
        self.mask_button.clicked.connect(lambda: self._choose_file("mask"))
        self.labels_button = QtWidgets.QPushButton("Label maps…")
        self.labels_button.setToolTip("Fixed and moving label maps for Dice and 95 % Hausdorff per label")
        self.labels_button.clicked.connect(lambda: self._choose_file("labels"))
        self.inputs_label = QtWidgets.QLabel("No mask, no labels")
        self.inputs_label.setStyleSheet("color: #777;")
        inputs.addWidget(self.mask_button)
        inputs.addWidget(self.labels_button)
        inputs.addWidget(self.inputs_label, 1)
        layout.addLayout(inputs)

        self.status_label = QtWidgets.QLabel("Not evaluated yet")
        self.flags_label = QtWidgets.QLabel("")
        self.flags_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        layout.addWidget(self.flags_label)

        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["measure", "value", ""])
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 2)

        show = QtWidgets.QHBoxLayout()
        self.overlay_check = QtWidgets.QCheckBox("Jacobian overlay")
        self.overlay_check.setToolTip("Blue: shrinks, clear: volume kept, red: grows; yellow: folding (det ≤ 0)")
        self.overlay_check.toggled.connect(self._refresh_overlays)
        self.opacity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(70)
        self.opacity_slider.setToolTip("Overlay opacity")
        self.opacity_slider.valueChanged.connect(self._refresh_overlays)
        self.grid_check = QtWidgets.QCheckBox("Grid")
        self.grid_check.setToolTip("The deformation grid: a regular fixed grid moved by the transform")
        self.grid_check.toggled.connect(self._refresh_overlays)
        show.addWidget(self.overlay_check)
        show.addWidget(self.opacity_slider, 1)
        show.addWidget(self.grid_check)
        layout.addLayout(show)
        self.scale_label = QtWidgets.QLabel("")
        self.scale_label.setStyleSheet("color: #777;")
        layout.addWidget(self.scale_label)

        self.histogram = pg.PlotWidget()
        self.histogram.setMinimumHeight(110)
        self.histogram.setLabel("bottom", "Jacobian determinant")
        self.histogram.setLabel("left", "voxels (log10)")
        self.histogram.setMouseEnabled(x=False, y=False)
        self.histogram_bars = pg.BarGraphItem(x=[], height=[], width=1.0, brush=(106, 143, 199))
        self.folding_bars = pg.BarGraphItem(x=[], height=[], width=1.0, brush=(255, 230, 0))
        self.histogram.addItem(self.histogram_bars)
        self.histogram.addItem(self.folding_bars)
        self.histogram.addItem(pg.InfiniteLine(1.0, angle=90, pen=pg.mkPen((200, 50, 50), width=1)))
        layout.addWidget(self.histogram, 1)
        self.setWidget(page)

    # ------------------------------------------------------------------ inputs
    def _choose_file(self, what: str) -> None:
        filters = "Images (*.nii *.nii.gz *.nrrd *.mha *.mhd *.tif *.png);;All files (*)"
        if what == "mask":
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Fixed-image mask", "", filters)
            if path:
                self.set_mask(path)
            return
        fixed, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Fixed label map", "", filters)
        if not fixed:
            return
        moving, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Moving label map", str(Path(fixed).parent), filters)
        if moving:
            self.set_labels(fixed, moving)

    def set_mask(self, path: str | None) -> None:
        self.mask_path = str(path) if path else None
        self._update_inputs_label()
        self.evaluate()

    def set_labels(self, fixed_path: str | None, moving_path: str | None) -> None:
        self.labels_fixed_path = str(fixed_path) if fixed_path else None
        self.labels_moving_path = str(moving_path) if moving_path else None
        self._update_inputs_label()
        self.evaluate()

    def state(self) -> dict:
        """What a session file keeps of this panel (file paths and display choices)."""
        return {"mask": self.mask_path, "labels_fixed": self.labels_fixed_path, "labels_moving": self.labels_moving_path,
                "auto": self.auto_check.isChecked(), "overlay": self.overlay_check.isChecked(),
                "opacity": self.opacity_slider.value(), "grid": self.grid_check.isChecked()}

    def restore_state(self, state: dict) -> None:
        self.mask_path = state.get("mask")
        self.labels_fixed_path = state.get("labels_fixed")
        self.labels_moving_path = state.get("labels_moving")
        self.auto_check.setChecked(bool(state.get("auto", True)))
        self.overlay_check.setChecked(bool(state.get("overlay", False)))
        self.opacity_slider.setValue(int(state.get("opacity", 70)))
        self.grid_check.setChecked(bool(state.get("grid", False)))
        self._update_inputs_label()
        self._schedule_auto()

    def _update_inputs_label(self) -> None:
        parts = [f"mask: {Path(self.mask_path).name}" if self.mask_path else "no mask"]
        if self.labels_fixed_path:
            parts.append(f"labels: {Path(self.labels_fixed_path).name} / {Path(self.labels_moving_path or '').name}")
        self.inputs_label.setText(", ".join(parts))

    def _run_extras(self) -> tuple[list | None, dict | None]:
        """Metric curve and parameters of the run the current transform came from, when
        it came from one (the Workspace records the source of every transform)."""
        ws = self.host.workspace
        if ws.source.kind != "run" or ws.source.run is None:
            return None, None
        try:
            record = ws.runs.get(ws.source.run)
        except KeyError:
            return None, None
        history = [{"stage": s, "stage_name": None, "level": lvl, "iteration": it, "metric": m, "elapsed": None}
                   for s, lvl, it, m in record.metric_curve]
        return history or None, record.params

    def _landmarks(self):
        landmark_set = self.host.workspace.landmarks
        complete = [p for p in landmark_set.pairs if p.fixed is not None and p.moving is not None]
        return landmark_set if complete else None

    # ------------------------------------------------------------------ evaluation
    def _on_screen(self) -> bool:
        # A dock behind another tab still reports isVisible(); its visible region is empty.
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _schedule_auto(self) -> None:
        """Auto-evaluate only while the panel is on screen: an evaluation takes seconds of
        CPU and hundreds of MB, which a hidden tab must not cost the views."""
        if not self.auto_check.isChecked():
            return
        if self._on_screen():
            self._timer.start()
        else:
            self._stale = True

    def _on_visibility_changed(self, visible: bool) -> None:
        """Qt emits this when the panel's tab is selected, too: catch up then."""
        if visible and getattr(self, "_stale", False) and self.auto_check.isChecked():
            self._stale = False
            self._timer.start()

    def _on_transform_changed(self) -> None:
        self._schedule_auto()

    def _on_images_changed(self) -> None:
        self.evaluation = None
        self.overlays.evaluation = None
        self.overlays.hide_all()
        self.status_label.setText("Not measured yet: Evaluate measures the current alignment")
        self.report_button.setEnabled(False)
        self._schedule_auto()

    def evaluate(self) -> bool:
        """Start evaluating the host's current transform in the background (False if no images)."""
        self._timer.stop()
        fixed, moving = self.host.fixed_volume(), self.host.moving_volume()
        if fixed is None or moving is None:
            self.status_label.setText("Open a fixed and a moving image to evaluate")
            return False
        from regviewer.core.transforms.ops import copy_transform

        transform = copy_transform(self.host.current_transform())  # the worker owns its own copy
        history, params = self._run_extras()
        landmarks = self._landmarks()
        kwargs = dict(mask=self.mask_path, landmarks=landmarks, history=history, params=params)
        if self.labels_fixed_path and self.labels_moving_path:
            kwargs.update(labels_fixed=self.labels_fixed_path, labels_moving=self.labels_moving_path)

        def work():
            from regviewer.core.qa.evaluation import evaluate_registration
            from regviewer.core.qa.jacobian_colours import jacobian_log2_range

            evaluation = evaluate_registration(fixed, moving, transform, **kwargs)
            values = evaluation.jacobian_values()
            return evaluation, jacobian_log2_range(values), jacobian_histogram(values, HISTOGRAM_BINS)

        self.status_label.setText("Evaluating…")
        self._background.submit("qa-evaluation", work, lambda result, error: self._finished("evaluation", result, error))
        return True

    def busy(self) -> bool:
        return self._background.busy("qa-evaluation") or self._background.busy("qa-report")

    def wait(self, timeout: float = 30.0) -> None:
        """Block until the newest evaluation and report are delivered (tests, scripts)."""
        for kind in ("qa-evaluation", "qa-report"):
            self._background.wait(kind, timeout)

    def _finished(self, kind: str, result, error) -> None:
        if error is None:
            self._on_done(kind, result)
            return
        if not isinstance(error, RegviewerError):
            log.error("QA evaluation failed", exc_info=error)  # the traceback goes to the log, not the dialog
            error = RegviewerError(f"Evaluation failed: {type(error).__name__}: {error}")
        self._on_failed(kind, error)

    def _on_done(self, kind: str, result) -> None:
        if kind == "report":
            self.status_label.setText(f"Report written: {result}")
            self.host.show_message(f"QA report written to {result}")
            self.reportWritten.emit(result)
            return
        evaluation, self._log2_range, (centres, counts, width) = result
        self.evaluation = evaluation
        self.status_label.setText(f"Evaluated in {evaluation.elapsed_s:.1f} s")
        flags = evaluation.flags
        self.flags_label.setText("✓ No warning signs found" if not flags else "⚠ " + "\n⚠ ".join(flags))
        self.flags_label.setStyleSheet("color: #2e7d32;" if not flags else "color: #b26a00;")
        self._fill_table(evaluation)
        self._show_histogram(centres, counts, width)
        self.scale_label.setText(
            f"Colour scale: ×{2 ** -self._log2_range:.3g} (blue) … 1 … ×{2 ** self._log2_range:.3g} (red); yellow = folding"
        )
        self.report_button.setEnabled(True)
        self._refresh_overlays()
        self.evaluated.emit(evaluation)

    def _on_failed(self, kind: str, error) -> None:
        self.failed.emit(error)
        self.status_label.setText("Evaluation failed" if kind == "evaluation" else "The report could not be written")
        self.host.show_error(error)

    def _fill_table(self, evaluation) -> None:
        from regviewer.core.qa.evaluation import MEASURE_HELP  # loaded with the first evaluation

        rows: list[tuple[str, str, str]] = []
        for name, (headers, body) in evaluation.tables.items():
            rows.append((name, "", ""))
            for r in body:
                if len(r) >= 3 and name == "Similarity":
                    rows.append((f"  {r[0]}", f"{_fmt(r[2])}", f"before {_fmt(r[1])}"))
                elif name == "Labels":
                    rows.append((f"  label {r[0]}", f"Dice {_fmt(r[1])}", f"HD95 {_fmt(r[2])} mm"))
                elif name == "Landmarks (TRE)":
                    rows.append((f"  {r[0]}", f"{_fmt(r[3])} mm", ""))
                else:
                    rows.append((f"  {r[0]}", _fmt(r[1]), ""))
        self.table.setRowCount(len(rows))
        bold = QtGui.QFont()
        bold.setBold(True)
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(MEASURE_HELP.get(row[0].strip(), ""))
                if not row[1] and not row[2]:
                    item.setFont(bold)
                self.table.setItem(i, j, item)

    def _show_histogram(self, centres: np.ndarray, counts: np.ndarray, width: float) -> None:
        heights = np.log10(counts + 1.0)
        folding = centres <= 0
        self.histogram_bars.setOpts(x=centres[~folding], height=heights[~folding], width=width * 0.9)
        self.folding_bars.setOpts(x=centres[folding], height=heights[folding], width=width * 0.9)

    # ------------------------------------------------------------------ overlays
    def overlay_item(self, view) -> pg.ImageItem:
        """The Jacobian ImageItem this dock keeps in `view` (made on first use)."""
        return self.overlays.image_item(view)

    def _refresh_overlays(self) -> None:
        self.overlays.show_jacobian = self.overlay_check.isChecked()
        self.overlays.show_grid = self.grid_check.isChecked()
        self.overlays.opacity = self.opacity_slider.value() / 100.0
        self.overlays.evaluation = self.evaluation
        self.overlays.log2_range = self._log2_range
        self.overlays.refresh()

    # ------------------------------------------------------------------ report
    def _ask_report_path(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Write QA report", "qa_report.html", "HTML (*.html)")
        if path:
            if not path.lower().endswith((".html", ".htm")):
                path += ".html"
            self.write_report_to(path)

    def write_report_to(self, path: str) -> bool:
        """Write the HTML report of the current evaluation in the background."""
        evaluation = self.evaluation
        if evaluation is None:
            self.host.show_message("Evaluate first: there is nothing to report yet")
            return False

        def work():
            from regviewer.core.qa.report import write_report

            return str(write_report(evaluation, path))

        self.status_label.setText("Writing the report…")
        self._background.submit("qa-report", work, lambda result, error: self._finished("report", result, error))
        return True


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "∞"
        return f"{float(v):.4g}"
    return str(v)
