"""The live-registration dock's History tab and its "Copy as Python / command line":
the Workspace's run history as a table, Use this run, Load its parameters, and the text
that reproduces a run (`core.registration.reproduce`). A mixin of `LiveRegistrationDock`
(kept apart so each file has one job); it reads `self.history` (the Workspace's runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.registration.params import Pipeline
from regviewer.core.registration.reproduce import RunSpec, as_command_line, as_python, is_linear, save_initial_transform

HISTORY_COLUMNS = ("Run", "Preset", "Stages", "Final metric", "Time (s)", "TRE mean / max (mm)", "Status")


class RunHistoryTab:
    """Mixed into `LiveRegistrationDock`."""

    def _build_history_page(self) -> QtWidgets.QWidget:
        history_page = QtWidgets.QWidget()
        history_layout = QtWidgets.QVBoxLayout(history_page)
        history_layout.setContentsMargins(0, 0, 0, 0)
        self.history_table = QtWidgets.QTableWidget(0, len(HISTORY_COLUMNS))
        self.history_table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.history_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.verticalHeader().hide()
        self.history_table.horizontalHeader().setStretchLastSection(True)
        self.history_table.itemSelectionChanged.connect(self._on_history_selected)
        history_layout.addWidget(self.history_table, 1)
        row = QtWidgets.QHBoxLayout()
        self.use_run_button = QtWidgets.QPushButton("Use this run")
        self.use_run_button.setToolTip("Make the selected run's transform the current one (undoable)")
        self.use_run_button.clicked.connect(lambda: self.use_run(self.selected_run()))
        self.params_from_run_button = QtWidgets.QPushButton("Load its parameters")
        self.params_from_run_button.clicked.connect(lambda: self.load_run_parameters(self.selected_run()))
        row.addWidget(self.use_run_button)
        row.addWidget(self.params_from_run_button)
        row.addStretch(1)
        history_layout.addLayout(row)
        return history_page


    # --- history ----------------------------------------------------------------------------------------
    def _refresh_history(self) -> None:
        rows = self.history.table()
        self.history_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            tre = "—" if row["tre_mean_mm"] is None else f"{row['tre_mean_mm']:.2f} / {row['tre_max_mm']:.2f}"
            metric = "—" if row["final_metric"] is None else f"{row['final_metric']:.5g}"
            values = (str(row["run"]), row["preset"], row["stages"], metric, f"{row['time_s']:.1f}", tre, row["status"])
            for c, text in enumerate(values):
                item = QtWidgets.QTableWidgetItem(text)
                if c == 6 and row["stop_reason"]:
                    item.setToolTip(row["stop_reason"])
                self.history_table.setItem(r, c, item)
        self.history_table.resizeColumnsToContents()

    def selected_run(self) -> int | None:
        rows = self.history_table.selectionModel().selectedRows() if self.history_table.selectionModel() else []
        if not rows:
            return self.history.records[-1].number if len(self.history) else None
        return int(self.history_table.item(rows[0].row(), 0).text())

    def _on_history_selected(self) -> None:
        number = self.selected_run()
        if number is None or self.is_running():
            return
        record = self.history.get(number)
        names = [s.get("name", f"stage {i + 1}") for i, s in enumerate(record.params.get("stages", []))]
        self.plot.show_curve(record.metric_curve, names)

    def use_run(self, number: int | None) -> None:
        """Go back to a run: its transform becomes the current one (undoable)."""
        if number is None or self.is_running():
            return
        record = self.history.get(number)
        self._shown_run = None
        try:
            self.workspace.use_run(number)
        except RegviewerError as exc:
            self.host.show_error(exc)
        self.status.setText(f"{record.label} is now the current transform")
        self._update_buttons()

    def load_run_parameters(self, number: int | None) -> None:
        if number is None:
            return
        record = self.history.get(number)
        self.params.set_pipeline(Pipeline.from_dict(record.params), preset=record.preset)
        self.seed_spin.setValue(record.seed)

    # --- reproducibility ----------------------------------------------------------------------------------
    def run_spec(self, number: int | None = None) -> RunSpec:
        """The selected (or given) run's inputs and parameters; the panel's own when there is no run."""
        number = self.selected_run() if number is None else number
        if number is None:
            inputs = self._inputs()
            current = self.host.current_transform()
            return RunSpec(inputs["fixed"], inputs["moving"], self.params.pipeline(), preset=self.params.preset_name(),
                           seed=int(self.seed_spin.value()), fixed_mask=inputs["fixed_mask"],
                           moving_mask=inputs["moving_mask"], initial_transform=current,
                           initial_transform_path=self._saved_initial(current, 0))
        record = self.history.get(number)
        inputs = record.inputs
        return RunSpec(inputs.get("fixed"), inputs.get("moving"), record.params, preset=record.preset, seed=record.seed,
                       fixed_mask=inputs.get("fixed_mask"), moving_mask=inputs.get("moving_mask"),
                       initial_transform=record.initial_transform,
                       initial_transform_path=self._saved_initial(record.initial_transform, record.number))

    def _saved_initial(self, transform: Any, number: int) -> str | None:
        """A non-linear starting transform cannot be written inline: save it where the text can refer to it."""
        if transform is None or is_linear(transform):
            return None
        folder = Path(QtCore.QStandardPaths.writableLocation(
            QtCore.QStandardPaths.StandardLocation.AppDataLocation) or Path.home() / ".regviewer") / "runs"
        try:
            return str(save_initial_transform(transform, folder, number))
        except RegviewerError as exc:
            self.host.show_error(exc)
            return None

    def python_text(self, number: int | None = None) -> str:
        return as_python(self.run_spec(number))

    def command_line_text(self, number: int | None = None) -> str:
        return as_command_line(self.run_spec(number))

    def _copy(self, text: str) -> None:
        QtGui.QGuiApplication.clipboard().setText(text)
        self.host.show_message("Copied to the clipboard")

