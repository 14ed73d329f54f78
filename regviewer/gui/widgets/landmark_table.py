"""The landmark dock's table: one row per pair (on/off, name, both points in LPS mm, residual
and leave-one-out error), the flagged errors in red, the summary line under it, and the edits
made in the table itself (tick, rename, select). A mixin of `LandmarkDock`, kept apart so the
dock keeps the clicks, the fit and the undo plumbing; it reads the Workspace's landmarks
(`self._set`) and the newest fit (`self.fit_result`) and draws, it computes nothing.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.gui.views.landmark_markers import PointMapper, error_classes

COLUMNS = ("On", "Name", "Fixed (LPS mm)", "Moving (LPS mm)", "Residual mm", "LOO mm")
HINT = "Click the fixed view, then the moving view, to make a pair."


def _format_point(point) -> str:
    return "—" if point is None else ", ".join(f"{x:.1f}" for x in point)


def _format_error(value) -> str:
    return "" if value is None else f"{value:.2f}"


class LandmarkTable:
    """Mixed into `LandmarkDock`: builds `self.table` and `self.summary` and keeps them drawn."""

    _filling = False  # True while the table is refilled: its itemChanged are not edits

    def _build_table(self, layout: QtWidgets.QBoxLayout) -> None:
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        layout.addWidget(self.table, 1)

        self.summary = QtWidgets.QLabel(HINT)
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

    def select(self, index: int | None) -> None:
        """Select a row and centre the views on its landmark (the fixed point, or the
        moving point mapped into the fixed frame when the pair is half-made)."""
        if index is None or not 0 <= index < len(self._set.pairs):
            self.table.clearSelection()
            return
        self.table.selectRow(index)

    def selected_index(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    # ------------------------------------------------------------------ edits in the table
    def _on_item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling:
            return
        index = item.row()
        if index >= len(self._set.pairs):
            return
        pair = self._set.pairs[index]
        if item.column() == 0:
            on = item.checkState() == QtCore.Qt.CheckState.Checked
            if on != pair.enabled:
                self._set.set_enabled(index, on)
        elif item.column() == 1:
            name = item.text().strip()
            if name and name != pair.name:
                try:
                    self._set.rename(index, name)
                except RegviewerError as exc:
                    self.host.show_error(exc)
                    self._refresh_all()

    def _on_selection_changed(self) -> None:
        index = self.selected_index()
        self.markers.set_selected(index)
        if index is None:
            return
        pair = self._set.pairs[index]
        if pair.fixed is not None:
            self.host.center_on(tuple(pair.fixed))
        elif pair.moving is not None:
            self.host.center_on(PointMapper(self.host.current_transform()).to_fixed(pair.moving))

    # ------------------------------------------------------------------ drawing
    def _errors(self) -> tuple[list, list, list]:
        """Per-pair residual, leave-one-out error and flag (None where not fitted)."""
        n = len(self._set.pairs)
        residuals: list = [None] * n
        loo: list = [None] * n
        flagged: list = [False] * n
        fit = self.fit_result
        if fit is None:
            return residuals, loo, flagged
        used = getattr(fit, "pair_indices", None)
        if used is None and len(fit.residuals_mm) == n:
            used = list(range(n))  # one entry per pair, NaN where a pair was not used
        if used is None:
            used = [i for i, p in enumerate(self._set.pairs)
                    if p.enabled and p.fixed is not None and p.moving is not None]
        if len(used) != len(fit.residuals_mm):
            return residuals, loo, flagged  # the set changed since this fit; wait for the next
        flags = set(getattr(fit, "flagged", []) or [])
        for k, i in enumerate(used):
            if i < n:
                value = float(fit.residuals_mm[k])
                residuals[i] = value if value == value else None
                if fit.loo_errors_mm is not None and k < len(fit.loo_errors_mm):
                    value = float(fit.loo_errors_mm[k])
                    loo[i] = value if value == value else None  # NaN: not computable
                flagged[i] = i in flags  # `flagged` holds indices into the set's pairs
        return residuals, loo, flagged

    def _refresh_all(self) -> None:
        residuals, loo, flagged = self._errors()
        pairs = self._set.pairs
        selected = self.selected_index()
        self._filling = True
        # Sizing columns to their contents while replacing items re-measures every row for
        # each item (3000 pairs: minutes); measure once, after the fill.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        try:
            self.table.setRowCount(len(pairs))
            for row, pair in enumerate(pairs):
                on = QtWidgets.QTableWidgetItem()
                on.setFlags(QtCore.Qt.ItemFlag.ItemIsUserCheckable | QtCore.Qt.ItemFlag.ItemIsEnabled
                            | QtCore.Qt.ItemFlag.ItemIsSelectable)
                on.setCheckState(QtCore.Qt.CheckState.Checked if pair.enabled else QtCore.Qt.CheckState.Unchecked)
                cells = [on, QtWidgets.QTableWidgetItem(str(pair.name))]
                for text in (_format_point(pair.fixed), _format_point(pair.moving),
                             _format_error(residuals[row]), _format_error(loo[row])):
                    cell = QtWidgets.QTableWidgetItem(text)
                    cell.setFlags(cell.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
                    cells.append(cell)
                if flagged[row]:
                    cells[5].setForeground(QtGui.QColor(220, 40, 40))
                    reason = getattr(self.fit_result, "flag_reason_for", lambda _i: None)(row)
                    cells[5].setToolTip(f"Probably a misplaced landmark: {reason}" if reason
                                        else "Probably a misplaced landmark")
                for column, cell in enumerate(cells):
                    self.table.setItem(row, column, cell)
            if selected is not None and selected < len(pairs):
                self.table.selectRow(selected)
        finally:
            header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
            self._filling = False
        errors = [l if l is not None else r for l, r in zip(loo, residuals)]
        self.markers.set_pairs(pairs, error_classes(errors, flagged), self.selected_index())
        self.summary.setText(self._summary_text())

    def _summary_text(self) -> str:
        if self.fit_result is not None:
            fit = self.fit_result
            text = f"{self.model}: RMS {fit.rms_mm:.2f} mm, max {fit.max_mm:.2f} mm"
            n_flagged = sum(self._errors()[2])
            if n_flagged:
                text += f" — {n_flagged} landmark(s) flagged as likely mistakes (hover the red error to see why)"
            for warning in getattr(fit, "warnings", ()):
                text += f"\n⚠ {warning}"
            return text
        if self.fit_error is not None:
            return str(self.fit_error)
        return HINT
