"""The live-registration dock: parameters, Run / Cancel / Apply / Revert, live views, history.

Thin Qt over core: the engine runs in `gui.worker`; the grid geometry comes from
`core.grid` (computed on the worker thread for each snapshot, the GUI only sets data);
runs are kept in the Workspace's run history (`ws.runs`), shown by the History tab
(`run_history_tab.py`, which also writes the "Copy as Python / command line" text); the
masks, seed and the job a run starts from are `widgets/run_inputs.py`'s. The dock talks to
the main window only through the `RegistrationHost` protocol (`gui/host.py`).

A run starts from the user's current transform (manual alignment or landmark fit;
fixed → moving) when there is one, else from the first stage's initializer. While it
runs, the overlay shows each snapshot (checkerboard by default), the deformation grid
bends in every slice view and the 3D view, and the metric plot grows. When it ends the
result is previewed (the Workspace's preview); Apply makes it the current transform (one
undoable step of the Workspace), Revert drops the preview, or undoes that Apply.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PyQt6 import QtCore, QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.workspace.run_history import landmark_tre
from regviewer.gui.views.grid_item import DeformationGridItem
from regviewer.gui.views.live_grid import DutyCycle, LiveGrid
from regviewer.gui.widgets.metric_plot import MetricPlot
from regviewer.gui.widgets.params_panel import ParamsPanel
from regviewer.gui.widgets.run_history_tab import RunHistoryTab
from regviewer.gui.widgets.run_inputs import LandmarkCopy, RunInputs
from regviewer.gui.worker import LiveSnapshot, RegistrationWorker

# Snapshots per second: what the eye needs (the overlay and the grid redraw no more often
# anyway); each costs the engine a transform copy and the window a plot and status update.
LIVE_RATE_HZ = 5.0


def describe_progress(progress: Any, n_stages: int) -> str:
    """Stage, level, iteration, metric and time in words."""
    return (f"Stage {progress.stage + 1}/{n_stages} ({progress.stage_name}) · level {progress.level + 1}/"
            f"{progress.n_levels} · iteration {progress.iteration} · metric {progress.metric:.5g} · "
            f"{progress.elapsed:.1f} s")


class LiveRegistrationDock(RunInputs, RunHistoryTab, QtWidgets.QDockWidget):
    """See the module docstring. `run()`, `cancel()`, `apply()`, `revert()` are the buttons' actions."""

    runFinished = QtCore.pyqtSignal(object)  # the RunRecord added to the history

    def __init__(self, host: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Registration", parent)
        self.setObjectName("LiveRegistrationDock")
        self.host = host
        self.workspace = host.workspace
        self.history = self.workspace.runs  # the Workspace's run history (sessions save it)
        self.worker: RegistrationWorker | None = None
        self._shown_run: int | None = None  # the run whose result is previewed, not yet applied
        self._discard_run = False
        self._run_context: dict = {}
        self._landmark_copy: LandmarkCopy | None = None
        self._overlay_budget = DutyCycle(share=0.15, min_interval_s=0.25)  # checkerboard redraws (the window reslices)
        self.snapshots_shown = 0
        self._build()
        self.history.subscribe(self._refresh_history)
        host.on_images_changed(self._on_images_changed)
        host.on_transform_changed(self._on_transform_changed)
        bridge = getattr(host, "bridge", None)
        if bridge is not None:  # the Workspace's settings, on the GUI thread
            bridge.settingsChanged.connect(self._show_settings_masks)
        host.register_session_part("registration", self.get_state, self.set_state)
        app = QtWidgets.QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._on_quit)
        self.grid = LiveGrid(host, self.grid_check, self.grid_spacing, self.refresh_grid)
        self.grid.auto_spacing()
        self.grid.sync_views()
        self.refresh_grid()
        self._update_buttons()

    # --- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        body = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.tabs = QtWidgets.QTabWidget()
        layout.addWidget(self.tabs, 1)

        # Parameters tab: the generated panel, masks and seed.
        self.params = ParamsPanel()
        params_page = QtWidgets.QWidget()
        params_layout = QtWidgets.QVBoxLayout(params_page)
        params_layout.setContentsMargins(0, 0, 0, 0)
        inputs = self._build_inputs_group()
        params_layout.addWidget(inputs)
        params_layout.addWidget(self.params)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(params_page)
        self.tabs.addTab(scroll, "Parameters")

        # Progress tab: words, the metric plot, live-view switches.
        progress_page = QtWidgets.QWidget()
        progress_layout = QtWidgets.QVBoxLayout(progress_page)
        progress_layout.setContentsMargins(0, 0, 0, 0)
        self.plot = MetricPlot()
        progress_layout.addWidget(self.plot, 1)
        switches = QtWidgets.QHBoxLayout()
        self.grid_check = QtWidgets.QCheckBox("Deformation grid")
        self.grid_check.setChecked(True)
        self.grid_check.setToolTip("A regular grid on the fixed image, bent by the transform (fixed → moving)")
        self.grid_check.toggled.connect(lambda _: self.grid.update_targets() or self.refresh_grid())
        self.grid_spacing = QtWidgets.QDoubleSpinBox()
        self.grid_spacing.setRange(1.0, 200.0)
        self.grid_spacing.setValue(10.0)
        self.grid_spacing.setSuffix(" mm")
        self.grid_spacing.valueChanged.connect(lambda _: self.grid.update_targets() or self.refresh_grid())
        self.checker_check = QtWidgets.QCheckBox("Checkerboard while running")
        self.checker_check.setChecked(True)
        self.auto_apply = QtWidgets.QCheckBox("Apply when finished")
        switches.addWidget(self.grid_check)
        switches.addWidget(self.grid_spacing)
        switches.addWidget(self.checker_check)
        switches.addWidget(self.auto_apply)
        switches.addStretch(1)
        progress_layout.addLayout(switches)
        self.tabs.addTab(progress_page, "Progress")

        self.tabs.addTab(self._build_history_page(), "History")

        # Always visible: status, buttons, copy actions.
        self.status = QtWidgets.QLabel("Ready")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QtWidgets.QHBoxLayout()
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setToolTip("Register the moving image to the fixed image, starting from the current alignment")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip("Make the result the current transform (undoable)")
        self.apply_button.clicked.connect(self.apply)
        self.revert_button = QtWidgets.QPushButton("Revert")
        self.revert_button.setToolTip("Go back to the transform from before the run")
        self.revert_button.clicked.connect(self.revert)
        copy = QtWidgets.QToolButton(text="Copy as")
        copy.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(copy)
        menu.addAction("Copy as Python", lambda: self._copy(self.python_text()))
        menu.addAction("Copy as command line", lambda: self._copy(self.command_line_text()))
        copy.setMenu(menu)
        for b in (self.run_button, self.cancel_button, self.apply_button, self.revert_button):
            buttons.addWidget(b)
        buttons.addWidget(copy)
        layout.addLayout(buttons)
        self.setWidget(body)

    # --- running ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def run(self) -> bool:
        """Start a run in the background; False (with a message) when it cannot start."""
        if self.is_running():
            return False
        try:
            job = self._make_job()
        except RegviewerError as exc:
            self.host.show_error(exc)
            return False
        self._shown_run = None
        self.plot.reset()
        landmark_set = self._landmark_set()
        self._landmark_copy = LandmarkCopy(landmark_set) if landmark_set is not None else None
        if self._landmark_copy is not None and not self._landmark_copy.pairs:
            self._landmark_copy = None
        self.workspace.set_settings(preset=self.params.preset_name(), pipeline=job.params.to_dict(), seed=job.seed,
                                    fixed_mask=self._inputs()["fixed_mask"], moving_mask=self._inputs()["moving_mask"])
        self._run_context = {"initial": job.initial_transform, "preset": self.params.preset_name(),
                             "seed": job.seed, "inputs": self._inputs(), "n_stages": len(job.params.stages),
                             "started_at": time.time()}
        if self.checker_check.isChecked():
            self._set_overlay_checkerboard()
        self.grid.update_targets()
        # the last snapshot only completes the plot: the end of the run draws the result
        self.worker = RegistrationWorker(job, rate_hz=LIVE_RATE_HZ, prepare=self._prepare, parent=self,
                                         prepare_final=False)
        self.worker.snapshot.connect(self._on_snapshot)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.start()
        self.status.setText("Starting…")
        self.tabs.setCurrentIndex(1)
        self._update_buttons()
        return True

    def _set_overlay_checkerboard(self) -> None:
        set_mode = getattr(self.host, "set_overlay_mode", None)
        if not callable(set_mode):  # the main window keeps its overlay controller as `.overlay`
            set_mode = getattr(getattr(self.host, "overlay", None), "set_mode", None)
        if callable(set_mode):
            set_mode("checkerboard")

    def cancel(self) -> None:
        """Ask the engine to stop; the best transform so far arrives as a (cancelled) result."""
        if self.is_running():
            self.worker.cancel()
            self.status.setText("Stopping… (the best transform so far will be kept)")
            self.cancel_button.setEnabled(False)

    def apply(self) -> None:
        """The previewed run becomes the current transform (one undo step)."""
        if self._shown_run is None:
            return
        record = self.history.get(self._shown_run)
        try:
            self.workspace.apply_run(record)
        except RegviewerError as exc:
            self.host.show_error(exc)
            return  # nothing was applied: the result stays previewed
        self._shown_run = None
        self.status.setText(f"{record.label} applied")
        self._update_buttons()
        self.refresh_grid()

    def revert(self) -> None:
        """Drop the previewed result, or undo the Apply that made it current."""
        if self._shown_run is not None:
            self._shown_run = None
            self.workspace.set_preview(None)
        elif self._applied_last():
            self.workspace.undo()
        self.status.setText("Back to the transform from before the run")
        self._update_buttons()
        self.refresh_grid()

    def _applied_last(self) -> bool:
        """True when the last undo step is this panel's Apply of a run."""
        return self.workspace.source.kind == "run" and self.workspace.history.undo_text.startswith("Apply Run")

    # --- worker thread: precompute what the live views draw ------------------------------------------
    def _prepare(self, progress: Any) -> dict:
        """Runs on the worker thread: grid polylines for each view's plane, control points, TRE."""
        out: dict = {}
        tx = progress.transform
        self.grid.prepare(out, tx)
        if self._landmark_copy is not None:
            out["tre"] = landmark_tre(tx, self._landmark_copy)
        return out

    # --- GUI thread: snapshots and the end of a run ---------------------------------------------------
    def _on_snapshot(self, snap: LiveSnapshot) -> None:
        self.snapshots_shown += 1
        self.plot.add_points(snap.points)
        tre = snap.extras.get("tre")
        if tre:
            self.plot.add_tre(tre["mean"])
        self.status.setText(describe_progress(snap.progress, self._run_context.get("n_stages", 1)))
        if snap.final:
            return  # the result (or the failure) comes next and is drawn then: drawing this one was work thrown away
        if self._overlay_budget.ready():
            self._overlay_budget.run(self.host.show_preview_transform, snap.progress.transform)
        if "grid" in snap.extras:  # else the preview thread skipped the grid this time (its CPU budget)
            self.grid.draw(snap.progress.transform, snap.extras)

    def _on_finished(self, result: Any) -> None:
        if self._discard_run:
            self._discard_run = False
            self.status.setText("Registration stopped: the images changed")
            self._update_buttons()
            self.refresh_grid()
            return
        record = self.history.add_result(
            result, initial_transform=self._run_context.get("initial"), preset=self._run_context.get("preset"),
            seed=self._run_context.get("seed", 0), landmarks=self._landmark_set(),
            started_at=self._run_context.get("started_at"), inputs=self._run_context.get("inputs"))
        self._shown_run = record.number
        if record.tre_mm:
            self.plot.add_tre(record.tre_mm["mean"])  # the result's TRE ends the curve
        self.host.show_preview_transform(result.transform)
        warnings = list(getattr(result, "warnings", []) or [])
        what = "Cancelled" if result.cancelled else "Finished"
        metric = "" if record.evaluation is None else f", similarity {record.evaluation:.4f}"
        tre = "" if not record.tre_mm else f", landmark TRE {record.tre_mm['mean']:.2f} mm"
        kept = " — showing the best transform so far" if result.cancelled else ""
        chosen = (result.details or {}).get("auto")
        kept += f" — with {len(warnings)} warning{'s' if len(warnings) > 1 else ''} (below)" if warnings else ""
        self.status.setText(f"{what} {record.label} in {result.elapsed:.1f} s{metric}{tre}{kept}. "
                            "Apply keeps it, Revert goes back." + (f"\n{chosen}" if chosen else "")
                            + "".join(f"\n⚠ {w}" for w in warnings))
        self.refresh_grid()
        self.host.mark_modified()
        self._update_buttons()
        if self.auto_apply.isChecked():
            self.apply()
        self.runFinished.emit(record)

    def _on_failed(self, error: BaseException) -> None:
        self._discard_run = False
        self.host.show_preview_transform(None)
        self._shown_run = None
        self.status.setText(f"Registration failed: {error}")
        self._update_buttons()
        self.refresh_grid()
        self.host.show_error(error)

    def _update_buttons(self) -> None:
        running = self.is_running()
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.apply_button.setEnabled(not running and self._shown_run is not None)
        self.revert_button.setEnabled(not running and (self._shown_run is not None or self._applied_last()))
        self.params.setEnabled(not running)

    def _on_quit(self) -> None:
        if self.is_running():
            self.worker.cancel()
            self.worker.wait(2.0)

    # --- deformation grid ----------------------------------------------------------------------------
    def refresh_grid(self) -> None:
        """Redraw the grid of the result on screen; none when no run is shown.

        The grid belongs to a run (while it runs, and its result until Apply or Revert):
        a grid of the current transform on every slice step cost the views ~20 ms per
        step and covered the images; the QA panel draws that grid on request."""
        if self.is_running():
            return  # the next snapshot redraws it
        if self._shown_run is None:
            self.grid.hide()
            return
        self.grid.draw(self.history.get(self._shown_run).transform, {}, force_3d=True)

    def grid_item(self, index: int) -> DeformationGridItem:
        """The grid item of `host.slice_views()[index]` (tests, screenshots)."""
        return self.grid.item(index)

    def _on_images_changed(self) -> None:
        if self.is_running():  # its result would belong to the images that were replaced
            self._discard_run = True
            self.worker.cancel()
        self.grid.auto_spacing()
        self.grid.sync_views()
        self.grid.update_targets()
        self._shown_run = None
        self.refresh_grid()
        self._update_buttons()

    def _on_transform_changed(self) -> None:
        if not self.is_running():
            if self._shown_run is not None and self.workspace.preview is None:
                self._shown_run = None  # another edit replaced the previewed result
            self.refresh_grid()
            self._update_buttons()

    # --- session ---------------------------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "params": self.params.get_state(),
            "masks": {w: self.mask_edits[w].text() if self._masks[w] is None else "" for w in ("fixed", "moving")},
            "seed": int(self.seed_spin.value()),
            "grid": {"visible": self.grid_check.isChecked(), "spacing_mm": self.grid.spacing_mm},
            "checkerboard_while_running": self.checker_check.isChecked(),
        }

    def set_state(self, state: dict) -> None:
        if not state:
            return
        if "params" in state:
            self.params.set_state(state["params"])
        for which, path in (state.get("masks") or {}).items():
            if which in self.mask_edits:
                self.set_mask(which, path or None)
        self.seed_spin.setValue(int(state.get("seed", 0)))
        grid = state.get("grid") or {}
        self.grid_check.setChecked(bool(grid.get("visible", True)))
        spacing = grid.get("spacing_mm", 10.0)
        if isinstance(spacing, (int, float)) and math.isfinite(spacing):
            self.grid_spacing.setValue(float(spacing))
        self.checker_check.setChecked(bool(state.get("checkerboard_while_running", True)))
        if "history" in state and not len(self.history):  # sessions written before the Workspace held runs
            self.history.load_dict(state["history"])
