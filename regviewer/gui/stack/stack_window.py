"""The stack window: section k over k-1 (or over its reference) in any overlay mode, a
section slider, per-section status and flags, the volume's three planes and a 3D view of it
filling in live while the alignment runs, and corrections of one section carried to the
following sections: a drag or a nudge, or a fit to landmark pairs picked on the section and
its neighbour (Landmarks tab). Ctrl+Z undoes a correction.

Everything shown comes from `core.stack.view_model.StackViewModel`; this module only lays
out widgets and forwards user actions to the model or the runner. A correction changes the
model's transforms at once; resampling the sections it moved runs on a `LatestResult`
worker (the newest correction wins, an older job stops early) and only the result,
delivered on the GUI thread, touches the views.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.imaging.composite import OVERLAY_MODES, OverlaySettings
from regviewer.core.stack.view_model import StackViewModel
from regviewer.gui.background import LatestResult
from regviewer.gui.stack.image_views import DragBox, image_view
from regviewer.gui.stack.landmark_tool import SectionLandmarkTool
from regviewer.gui.stack.runner import StackRunner
from regviewer.gui.stack.volume3d import StackVolume3D

_COLUMNS = ("section", "status", "correlation", "flags")
RESAMPLE_KIND = "stack-resample"


class StackWindow(QtWidgets.QMainWindow):
    """Open with `StackWindow(sections, reference=None, **align_stack options)`; the
    alignment starts at once in the background (`runner`)."""

    def __init__(self, sections, reference=None, parent: QtWidgets.QWidget | None = None, start: bool = True,
                 **options) -> None:
        super().__init__(parent)
        self.setWindowTitle("regviewer — serial sections")
        self.sections_source, self.reference, self.options = sections, reference, options
        self.model: StackViewModel | None = None
        self._drag_before = None  # the dragged section's correction when the drag began
        self._expected = _count(sections)
        self._auto_slider: int | None = None  # the section the run last showed (None: not yet)
        self.result = None
        self.settings = OverlaySettings()
        self.jobs = LatestResult(self)
        self.runner = StackRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.section_aligned.connect(self._on_section)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._build()
        self.resize(1500, 900)
        if start:
            self.start()

    # --- layout ---------------------------------------------------------------------
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(central)
        self.overlay_widget, self.overlay_item = image_view(
            "Section k over k−1 (or its reference)", "Section k (moving) over section k−1 or its reference. Shift-drag moves section k, Ctrl-drag turns it; "
            "the sections after it follow when you release", DragBox(self.drag))
        self.landmark_tool = SectionLandmarkTool(self.jobs, editable=self._editable)
        self.landmark_tool.apply_requested.connect(self.apply_landmark_fit)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.overlay_widget, "Overlay")
        self.tabs.addTab(self.landmark_tool, "Landmarks")
        self.tabs.currentChanged.connect(lambda _i: self.redraw())
        self.section_widget, self.section_item = image_view("Aligned section k", "Aligned section (volume, section plane)")
        self.rows_widget, self.rows_item = image_view("Volume: sections × columns", "Volume: sections × columns at the middle row")
        self.cols_widget, self.cols_item = image_view("Volume: sections × rows", "Volume: sections × rows at the middle column")
        self.volume3d = StackVolume3D(self)
        grid.addWidget(self.tabs, 0, 0, 2, 1)
        grid.addWidget(self.section_widget, 0, 1)
        grid.addWidget(self.rows_widget, 0, 2)
        grid.addWidget(self.cols_widget, 1, 1)
        grid.addWidget(self.volume3d.widget, 1, 2)
        side = QtWidgets.QWidget()
        side.setFixedWidth(250)
        form = QtWidgets.QVBoxLayout(side)
        self.mode_box = QtWidgets.QComboBox()
        self.mode_box.addItems(OVERLAY_MODES)
        self.mode_box.currentTextChanged.connect(self.set_mode)
        form.addWidget(QtWidgets.QLabel("Overlay"))
        form.addWidget(self.mode_box)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setMinimum(0)
        self.slider.valueChanged.connect(lambda _=0: self.redraw())
        form.addWidget(QtWidgets.QLabel("Section"))
        form.addWidget(self.slider)
        nudge = QtWidgets.QHBoxLayout()
        for text, args in (("←", (-1, 0, 0)), ("→", (1, 0, 0)), ("↑", (0, -1, 0)), ("↓", (0, 1, 0)),
                           ("⟲", (0, 0, -1)), ("⟳", (0, 0, 1))):
            b = QtWidgets.QPushButton(text)
            b.setFixedWidth(32)
            b.setToolTip("Move this section and every section after it (1 px / 1°)")
            b.clicked.connect(lambda _=False, a=args: self.nudge(*a))
            nudge.addWidget(b)
        label = QtWidgets.QLabel("Manual correction (carried to later sections)")
        label.setWordWrap(True)
        form.addWidget(label)
        form.addLayout(nudge)
        self.undo_button = QtWidgets.QPushButton("Undo correction")
        self.undo_button.setToolTip("Put back the sections as they were before the last drag, nudge or landmark fit (Ctrl+Z)")
        self.undo_button.clicked.connect(self.undo)
        self.undo_button.setEnabled(False)
        form.addWidget(self.undo_button)
        self.undo_shortcut = QtGui.QShortcut(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Undo), self)
        self.undo_shortcut.activated.connect(self.undo)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        form.addWidget(self.cancel_button)
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setWordWrap(True)
        form.addWidget(self.status_label)
        form.addStretch(1)
        grid.addWidget(side, 0, 3, 3, 1)
        self.table = QtWidgets.QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellClicked.connect(lambda row, _col: self.slider.setValue(row))
        grid.addWidget(self.table, 2, 0, 1, 3)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(2, 2)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        self.setCentralWidget(central)
        self.progress_bar = QtWidgets.QProgressBar()
        self.statusBar().addPermanentWidget(self.progress_bar)

    # --- running ----------------------------------------------------------------------
    def start(self) -> None:
        self.statusBar().showMessage("Aligning…")
        self.runner.start(self.sections_source, reference=self.reference, **self.options)

    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(done)
        self.statusBar().showMessage(text)

    def _on_section(self, index: int, total: int, name: str, image) -> None:
        n = max(index + 1, total, self._expected)
        if self.model is None:  # the first aligned section (the anchor) brings the output grid
            self.model = StackViewModel(n, image)
        elif n > self.model.n:  # e.g. a multi-page TIFF whose count was not known up front
            self.model = self.model.grown(n)
        self.slider.setMaximum(self.model.n - 1)
        self.model.set_section(index, image, name)
        following = self._auto_slider is None or self.slider.value() == self._auto_slider
        if following and self.slider.value() != index:  # the slider follows the run until the user moves it
            self._auto_slider = index
            self.slider.setValue(index)  # valueChanged redraws
        else:
            self.redraw()

    def _on_finished(self, result) -> None:
        self.result = result
        refs = None
        if result.references is not None:
            import SimpleITK as sitk

            refs = [np.zeros(result.output_grid.GetSize()[::-1], np.float32) if r is None
                    else sitk.GetArrayFromImage(r) for r in result.references]
        self.model = StackViewModel.from_result(result, result.images)
        self.model.z_spacing = result.volume.GetSpacing()[2]
        self.model.references = refs
        self.slider.setMaximum(len(result.sections) - 1)
        self.slider.setValue(result.anchor if result.anchor is not None else 0)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setValue(self.progress_bar.maximum())
        self.statusBar().showMessage(f"{result.n_ok}/{len(result.sections)} sections aligned")
        self._fill_table()
        self.redraw()

    def _on_failed(self, message: str) -> None:
        self.cancel_button.setEnabled(False)
        self.statusBar().showMessage(message)
        self.status_label.setText(message)

    def set_model(self, model: StackViewModel) -> None:
        """Show an existing model (e.g. a result loaded from disk) without running."""
        self.model = model
        self.slider.setMaximum(model.n - 1)
        self._fill_table()
        self.redraw()

    # --- drawing ---------------------------------------------------------------------
    def _fill_table(self) -> None:
        m = self.model
        self.table.setRowCount(m.n)
        for k in range(m.n):
            metric = m.metrics[k]
            values = (m.names[k], m.statuses[k], "" if metric is None else f"{metric:.3f}", "; ".join(m.flags[k]))
            for c, v in enumerate(values):
                item = QtWidgets.QTableWidgetItem(v)
                if m.statuses[k] in ("flagged", "failed", "missing"):
                    item.setForeground(pg.mkColor("#d04040" if m.statuses[k] != "flagged" else "#c08000"))
                self.table.setItem(k, c, item)

    def set_mode(self, mode: str) -> None:
        self.settings = self.settings.with_(mode=mode)
        self.redraw()

    def current(self) -> int:
        return self.slider.value()

    def redraw(self) -> None:
        if self.model is None:
            return
        k = self.current()
        self.overlay_item.setImage(self.model.overlay(k, self.settings), autoLevels=False, levels=(0, 255))
        planes = self.model.planes(k)
        for item, key in ((self.section_item, "section"), (self.rows_item, "rows"), (self.cols_item, "cols")):
            item.setImage(planes[key], autoLevels=False, levels=(0, 255))
        # Sections are drawn as thick as the model says (real spacing, or stretched when thin).
        h, w = self.model.shape
        depth = self.model.n * self.model.display_thickness()
        self.rows_item.setRect(QtCore.QRectF(0, 0, w, depth))
        self.cols_item.setRect(QtCore.QRectF(0, 0, h, depth))
        self.status_label.setText(self.model.status_text(k))
        self.table.selectRow(k)
        if self.tabs.currentWidget() is self.landmark_tool:
            self.landmark_tool.show_section(self.model, k)
        self.undo_button.setEnabled(self.model.can_undo)
        self.volume3d.request(self.model, k)

    def _editable(self) -> bool:
        return self.model is not None and not self.runner.running

    def nudge(self, dx: float, dy: float, angle: float) -> None:
        """Correct the current section by hand; every later section follows it."""
        if self._editable():
            self.model.correct(self.current(), dx, dy, angle, deferred=True)
            self._resample()

    def drag(self, kind: str, last: tuple[float, float], now: tuple[float, float], started: bool,
             finished: bool) -> None:
        """A manual drag on the overlay: the current section follows the mouse; the sections
        after it take the whole correction when the drag ends (one undo step in all)."""
        if not self._editable():
            return
        k = self.current()
        if started or self._drag_before is None:
            self._drag_before = self.model.corrections[k].copy()
        self.model.correct(k, *self.model.drag_step(kind, last, now), propagate=False, undoable=started,
                           deferred=True)
        if finished:
            self.model.carry_forward(k, self._drag_before, deferred=True)
            self._drag_before = None
        self._resample()

    def apply_landmark_fit(self, k: int, correction) -> None:
        """The landmark tool's fit becomes section k's correction; later sections follow (see
        `StackViewModel.apply_landmark_correction`)."""
        if self._editable():
            self.model.apply_landmark_correction(k, correction, deferred=True)
            self._resample()

    def undo(self) -> None:
        if self._editable() and self.model.can_undo:
            self.model.undo(deferred=True)
            self._resample()

    @property
    def resampling(self) -> bool:
        return self.jobs.busy(RESAMPLE_KIND)

    def _resample(self) -> None:
        """Resample the corrected sections on a worker (the current one first); the newest
        request wins. The views are redrawn when the arrays arrive."""
        model = self.model
        if model.dirty:
            self.statusBar().showMessage(f"Resampling {len(model.dirty)} section(s)…")
            self.jobs.submit(RESAMPLE_KIND, model.resample_job(first=self.current()),
                             lambda result, error: self._resampled(model, result, error))
        self.undo_button.setEnabled(model.can_undo)

    def _resampled(self, model: StackViewModel, result, error) -> None:
        if model is not self.model:
            return  # a new result replaced the model meanwhile
        if error is not None:
            self.statusBar().showMessage(f"Resampling failed ({type(error).__name__}: {error})")
            return
        model.accept(result)
        self.statusBar().showMessage("Correction applied")
        self.redraw()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.runner.cancel()
        self.jobs.shutdown()
        self.volume3d.close()
        super().closeEvent(event)


def _count(sections) -> int:
    """How many sections to expect (for the slider while the alignment runs)."""
    try:
        from regviewer.core.stack.sections import list_section_files

        return len(sections) if isinstance(sections, (list, tuple)) else len(list_section_files(sections))
    except (OSError, TypeError, ValueError, Exception):  # noqa: BLE001 -- only a hint; the result has the truth
        return 1


def open_stack_dialog(parent: QtWidgets.QWidget) -> StackWindow | None:
    """File > Open Stack…: choose a folder of sections and open the stack window on it."""
    folder = QtWidgets.QFileDialog.getExistingDirectory(parent, "Open a folder of serial sections")
    if not folder:
        return None
    window = StackWindow(folder, parent=parent)
    window.setWindowFlag(QtCore.Qt.WindowType.Window, True)
    window.show()
    return window


__all__ = ["StackWindow", "open_stack_dialog"]
