"""The landmark dock's guided picking flow and its Fit / Apply buttons.

The flow (Fixed | Moving layout, landmark mode):
1. the prompt names the next pair ("L4") and asks for its fixed point;
2. a click in the fixed view places it, and the moving view (the moving image in its own
   space, `gui.views.moving_space`) jumps to the predicted moving point: the current
   landmark fit when there is one, else the transform on screen;
3. a click in the moving view places the moving point (moving LPS mm, its own slice);
4. Esc drops a half-made pair; dragging either marker refines it.

In the single overlay view (or any view showing the moving image resampled into the fixed
frame) the second click is read through the transform on screen: the moving point is
T(x), since that is the anatomy drawn at x. It then inherits the alignment's through-plane
error, and the prompt and the status bar say so and suggest the Fixed | Moving layout.

Fit (Ctrl+Shift+F) fits the chosen model now; Apply (Ctrl+Shift+A) makes the fit the
window's current transform (one undoable step); "Apply fit live" does that after every
edit. The markers follow the transform the views draw (a run's preview included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.workspace.state import TransformSource
from regviewer.gui.views.landmark_markers import displayed_transform

if TYPE_CHECKING:
    from regviewer.gui.panels.landmark_panel import LandmarkDock

FIXED_FRAME_NOTE = ("read through the alignment on screen, so it inherits that alignment's through-plane "
                    "error; the Fixed | Moving layout picks it in the moving image's own space")
FIT_SHORTCUT = "Ctrl+Shift+F"
APPLY_SHORTCUT = "Ctrl+Shift+A"


class LandmarkPicking(QtCore.QObject):
    """Prompt, jump-to-prediction, Esc, and the Fit/Apply row of a LandmarkDock."""

    jumped = QtCore.pyqtSignal(object)  # the predicted moving point the moving view jumped to

    def __init__(self, dock: "LandmarkDock", host: Any) -> None:
        super().__init__(dock)
        self.dock = dock
        self.host = host
        self._connected: set[int] = set()
        self.last_prediction: tuple[float, ...] | None = None
        self._build_row()
        window = host if isinstance(host, QtWidgets.QWidget) else dock
        self.fit_shortcut = self._shortcut(window, FIT_SHORTCUT, self.fit)
        self.apply_shortcut = self._shortcut(window, APPLY_SHORTCUT, self.apply_fit)
        self.escape_shortcut = self._shortcut(window, "Esc", self.drop_half_pair)
        dock.edited.connect(self._update)
        dock.table.itemSelectionChanged.connect(self._show_selected_moving_point)
        dock.fitted.connect(lambda _fit: self._update())
        host.on_images_changed(self._connect_views)
        displayed = getattr(host, "displayedTransformChanged", None)
        if displayed is not None:  # a run's preview moves the markers with the anatomy
            displayed.connect(dock.markers.transform_changed)
        self._connect_views()
        self._update()

    # ------------------------------------------------------------------ actions
    def fit(self) -> None:
        """Fit the chosen model to the enabled pairs now (applied too with "Apply fit live")."""
        self.dock.refit()

    def apply_fit(self) -> None:
        """Make the newest fit the window's current transform (one undoable step)."""
        fit = self.dock.fit_result
        if fit is None:
            reason = self.dock.fit_error or "place enough complete pairs first"
            self.host.show_message(f"No landmark fit to apply: {reason}")
            return
        self.host.set_current_transform(fit.transform, f"Landmark fit ({self.dock.model})",
                                        TransformSource("landmark-fit", model=self.dock.model))

    def drop_half_pair(self) -> None:
        """Esc: delete the newest pair if it has only one of its two points."""
        index = self._half_pair()
        if index is not None:
            name = self.dock.landmark_set().pairs[index].name
            self.dock.landmark_set().delete(index)
            self.host.show_message(f"Dropped the half-made pair {name}")

    def predict_moving(self, point_fixed) -> tuple[float, ...] | None:
        """Where `point_fixed` should be in the moving image: the landmark fit when one
        exists, else the transform the views show (both map fixed → moving)."""
        fit = self.dock.fit_result
        transform = fit.transform if fit is not None else displayed_transform(self.host)
        try:
            return tuple(float(x) for x in transform.TransformPoint(tuple(float(x) for x in point_fixed)))
        except RuntimeError:
            return None

    def note_fixed_frame_pick(self) -> None:
        """A moving point was just taken in a fixed-frame view as T(x): say what that costs."""
        pairs = self.dock.landmark_set().pairs
        name = next((p.name for p in reversed(pairs) if p.moving is not None), "")
        self.host.show_message(f"{name}: moving point {FIXED_FRAME_NOTE}")

    def prompt(self) -> str:
        return self.prompt_label.text()

    # ------------------------------------------------------------------ internals
    def _build_row(self) -> None:
        row = QtWidgets.QHBoxLayout()
        self.prompt_label = QtWidgets.QLabel()
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setStyleSheet("font-weight: bold;")
        self.prompt_label.setToolTip("In the overlay view a moving point is read through the alignment on screen "
                                     "(the anatomy drawn at the click): it inherits that alignment's through-plane "
                                     "error. The Fixed | Moving layout picks it in the moving image's own space.")
        row.addWidget(self.prompt_label, 1)
        self.fit_button = QtWidgets.QPushButton("Fit")
        self.fit_button.setToolTip(f"Fit the chosen model to the enabled pairs now ({FIT_SHORTCUT})")
        self.fit_button.clicked.connect(self.fit)
        row.addWidget(self.fit_button)
        self.apply_button = QtWidgets.QPushButton("Apply")
        self.apply_button.setToolTip(f"Make the fit the current transform; Ctrl+Z undoes it ({APPLY_SHORTCUT})")
        self.apply_button.clicked.connect(self.apply_fit)
        row.addWidget(self.apply_button)
        layout = self.dock.widget().layout()
        layout.insertLayout(1, row)  # under the model / Pick / Apply fit live row

    @staticmethod
    def _shortcut(window: QtWidgets.QWidget, keys: str, slot) -> QtGui.QShortcut:
        shortcut = QtGui.QShortcut(QtGui.QKeySequence(keys), window)
        shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(slot)
        return shortcut

    def _connect_views(self) -> None:
        """Listen to clicks AFTER the dock (it connected first), so the pair exists."""
        for view in self.host.slice_views() or []:
            if id(view) not in self._connected and getattr(view, "clicked", None) is not None:
                self._connected.add(id(view))
                view.clicked.connect(lambda point, role, _mods: self._after_click(point, role))

    def _after_click(self, point, role: str) -> None:
        index = self._half_pair()
        if role == "moving" or index is None:
            return
        pair = self.dock.landmark_set().pairs[index]
        if pair.fixed is None or not np.allclose(pair.fixed, point):
            return
        predicted = self.predict_moving(point)
        moving_space = getattr(self.host, "moving_space", None)
        if predicted is None or moving_space is None or not moving_space.views():
            return
        self.last_prediction = predicted
        moving_space.jump_to(predicted)
        self.jumped.emit(predicted)

    def _show_selected_moving_point(self) -> None:
        """Selecting a row centres the fixed views on its fixed point (the dock does that);
        the moving view, unlinked or not, shows its moving point."""
        index = self.dock.selected_index()
        moving_space = getattr(self.host, "moving_space", None)
        if index is None or moving_space is None or not moving_space.views():
            return
        pair = self.dock.landmark_set().pairs[index]
        if pair.moving is not None:
            moving_space.jump_to(pair.moving)

    def _half_pair(self) -> int | None:
        pairs = self.dock.landmark_set().pairs
        if pairs and (pairs[-1].fixed is None) != (pairs[-1].moving is None):
            return len(pairs) - 1
        return None

    def _update(self) -> None:
        index = self._half_pair()
        landmark_set = self.dock.landmark_set()
        self.escape_shortcut.setEnabled(index is not None)  # Esc stays free otherwise
        self.apply_button.setEnabled(self.dock.fit_result is not None)
        if index is None:
            text = f"Next: {landmark_set.next_name()} — click it in the fixed view"
        else:
            pair = landmark_set.pairs[index]
            if pair.moving is None and self._own_space_view():
                text = (f"{pair.name}: click the same place in the moving view (it shows the predicted "
                        "position); Esc drops the pair")
            elif pair.moving is None:
                text = (f"{pair.name}: click the same place on the moving image; the point is "
                        f"{FIXED_FRAME_NOTE}. Esc drops the pair")
            else:
                text = f"{pair.name}: click it in the fixed view; Esc drops the pair"
        self.prompt_label.setText(text)

    def _own_space_view(self) -> bool:
        """True when a view shows the moving image in its own space (Fixed | Moving)."""
        moving_space = getattr(self.host, "moving_space", None)
        return bool(moving_space is not None and moving_space.views())

