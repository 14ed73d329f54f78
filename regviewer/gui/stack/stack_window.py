"""The stack window: section k over k-1 (or over its reference) in any overlay mode, a
section slider, per-section status and flags, a manual nudge carried to the following
sections, and the volume's three planes filling in live while the alignment runs.

Everything shown comes from `core.stack.view_model.StackViewModel`; this module only
lays out widgets and forwards user actions to the model or the runner.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

from regviewer.core.imaging.composite import OVERLAY_MODES, OverlaySettings
from regviewer.core.stack.view_model import StackViewModel
from regviewer.gui.stack.runner import StackRunner

_COLUMNS = ("section", "status", "correlation", "flags")


class _DragBox(pg.ViewBox):
    """Shift-drag moves the current section, Ctrl-drag turns it (about the view centre);
    other gestures are pyqtgraph's (pan, zoom)."""

    def __init__(self, on_drag) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._on_drag = on_drag
        self._kind: str | None = None

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        mods = ev.modifiers()
        if ev.isStart():
            self._kind = ("translate" if mods & QtCore.Qt.KeyboardModifier.ShiftModifier else
                          "rotate" if mods & QtCore.Qt.KeyboardModifier.ControlModifier else None)
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or self._kind is None:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        last, now = self.mapSceneToView(ev.lastScenePos()), self.mapSceneToView(ev.scenePos())
        self._on_drag(self._kind, (last.x(), last.y()), (now.x(), now.y()), ev.isFinish())
        if ev.isFinish():
            self._kind = None


def _image_view(caption: str, title: str, on_drag=None) -> tuple[pg.GraphicsLayoutWidget, pg.ImageItem]:
    """A view with its `caption` drawn above it (what it shows) and `title` as the tooltip (how to use it)."""
    widget = pg.GraphicsLayoutWidget()
    box = _DragBox(on_drag) if on_drag is not None else pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    widget.addLabel(caption, row=0, col=0, size="9pt")
    widget.addItem(box, row=1, col=0)
    widget.view_box = box
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    widget.setToolTip(title)
    return widget, item


class StackWindow(QtWidgets.QMainWindow):
    """Open with `StackWindow(sections, reference=None, **align_stack options)`; the
    alignment starts at once in the background (`runner`)."""

    def __init__(self, sections, reference=None, parent: QtWidgets.QWidget | None = None, start: bool = True,
                 **options) -> None:
        super().__init__(parent)
        self.setWindowTitle("regviewer — serial sections")
        self.sections_source, self.reference, self.options = sections, reference, options
        self.model: StackViewModel | None = None
        self._drag_total = (0.0, 0.0, 0.0)
        self._expected = _count(sections)
        self._auto_slider: int | None = None  # the section the run last showed (None: not yet)
        self.result = None
        self.settings = OverlaySettings()
        self.runner = StackRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.section_aligned.connect(self._on_section)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self._build()
        self.resize(1400, 860)
        if start:
            self.start()

    # --- layout ---------------------------------------------------------------------
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(central)
        self.overlay_widget, self.overlay_item = _image_view(
            "Section k over k−1 (or its reference)", "Section k (moving) over section k−1 or its reference. Shift-drag moves section k, Ctrl-drag turns it; "
            "the sections after it follow when you release", self.drag)
        self.section_widget, self.section_item = _image_view("Aligned section k", "Aligned section (volume, section plane)")
        self.rows_widget, self.rows_item = _image_view("Volume: sections × columns", "Volume: sections × columns at the middle row")
        self.cols_widget, self.cols_item = _image_view("Volume: sections × rows", "Volume: sections × rows at the middle column")
        grid.addWidget(self.overlay_widget, 0, 0, 2, 1)
        grid.addWidget(self.section_widget, 0, 1)
        grid.addWidget(self.rows_widget, 0, 2)
        grid.addWidget(self.cols_widget, 1, 1)
        side = QtWidgets.QWidget()
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
        form.addWidget(QtWidgets.QLabel("Manual correction (carried to later sections)"))
        form.addLayout(nudge)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        form.addWidget(self.cancel_button)
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setWordWrap(True)
        form.addWidget(self.status_label)
        form.addStretch(1)
        grid.addWidget(side, 1, 2)
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

    def nudge(self, dx: float, dy: float, angle: float) -> None:
        """Correct the current section by hand; every later section follows it."""
        if self.model is None or self.runner.running:
            return
        self.model.correct(self.current(), dx, dy, angle)
        self.redraw()

    def drag(self, kind: str, last: tuple[float, float], now: tuple[float, float], finished: bool) -> None:
        """A manual drag on the overlay: the current section follows the mouse at once; the
        sections after it take the whole correction when the drag ends."""
        if self.model is None or self.runner.running:
            return
        k = self.current()
        sx, sy = self.model.grid.GetSpacing()
        if kind == "translate":
            step = ((now[0] - last[0]) * sx, (now[1] - last[1]) * sy, 0.0)
        else:
            h, w = self.model.shape
            c = ((w - 1) / 2.0, (h - 1) / 2.0)
            a0 = np.degrees(np.arctan2(last[1] - c[1], last[0] - c[0]))
            a1 = np.degrees(np.arctan2(now[1] - c[1], now[0] - c[0]))
            step = (0.0, 0.0, float((a1 - a0 + 180.0) % 360.0 - 180.0))
        self.model.correct(k, *step, propagate=False)
        self._drag_total = tuple(a + b for a, b in zip(self._drag_total, step))
        if finished:
            if k + 1 < self.model.n:
                self.model.correct(k + 1, *self._drag_total, propagate=True)
            self._drag_total = (0.0, 0.0, 0.0)
        self.redraw()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.runner.cancel()
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
