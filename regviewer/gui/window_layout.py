"""The main window's layouts: which pooled slice view shows which role and orientation in
"1x3+3d", "single" and "side_by_side" (Fixed | Moving), and where each sits in the view grid.
A mixin of `MainWindow`, kept apart so that file keeps building, drawing and events; the
layout names are `core.workspace.view_state.LAYOUTS`.
"""

from __future__ import annotations

from PyQt6 import QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.imaging.slicing import ORIENTATIONS
from regviewer.core.workspace.view_state import LAYOUTS
from regviewer.gui import window_chrome
from regviewer.gui.views.slice_view import SliceView


class WindowLayoutMixin:
    """Mixed into `MainWindow` (needs `workspace`, `layout_name`, `focus_orientation`, `_pool`,
    `_shown`, `_grid`, `_views_widget`, `_volume_widget`, `_assign`, `_sync_curtain`, `_update_3d`)."""

    def _orientations(self) -> list[str]:
        if self.workspace.fixed is None:
            return []
        return ["axial"] if self.workspace.fixed.dimension == 2 else list(ORIENTATIONS)

    def _assignments(self, all_views: bool = False) -> list[tuple[str, str]]:
        """(role, orientation) of each pooled view in the current layout (shown views
        first); with `all_views`, hidden pool views get a sensible assignment too."""
        if self.workspace.fixed is None:
            return []
        focus = self.focus_orientation if self.focus_orientation in self._orientations() else "axial"
        if self.layout_name == "side_by_side":
            shown = [("fixed", focus), ("moving", focus)]
        elif self.layout_name == "single" or self.workspace.fixed.dimension == 2:
            shown = [("overlay", focus)]
        else:
            shown = [("overlay", o) for o in ORIENTATIONS]
        if not all_views:
            return shown
        rest = [("overlay", o) for o in self._orientations() if ("overlay", o) not in shown]
        return (shown + rest + [("overlay", focus)] * 3)[:3]

    def apply_layout(self, name: str, orientation: str | None = None) -> None:
        """"1x3+3d" (axial, coronal, sagittal and 3D), "single" (one large overlay view)
        or "side_by_side" (fixed | moving, each in its own space: `gui.views.moving_space`)."""
        if name not in LAYOUTS:
            self.show_error(RegviewerError(f"Unknown layout '{name}'; choose one of {', '.join(LAYOUTS)}"))
            return
        self.layout_name = name
        if orientation is not None:
            self.focus_orientation = orientation
        window_chrome.sync_layout_actions(self)
        if self.workspace.fixed is None:
            return
        while self._grid.count():
            self._grid.takeAt(0)
        for view in self._pool:
            view.hide()
        self._volume_widget.hide()
        keys = self._assignments()
        assignments = self._assignments(all_views=True)
        for view, (role, orientation) in zip(self._pool, assignments):
            self._assign(view, role, orientation)
        self._shown = self._pool[: len(keys)]
        positions = [(0, 0), (0, 1), (1, 0)] if len(keys) == 3 else [(0, i) for i in range(len(keys))]
        for view, (r, c) in zip(self._shown, positions):
            self._grid.addWidget(view, r, c)
            view.show()
        if len(keys) == 3:
            self._grid.addWidget(self._volume_widget, 1, 1)
            self._volume_widget.show()
        for r in range(2):
            self._grid.setRowStretch(r, 1 if (len(keys) == 3 or r == 0) else 0)
        for c in range(3):
            self._grid.setColumnStretch(c, 1 if c < max(2, len(keys)) and c < (2 if len(keys) == 3 else len(keys)) else 0)
        self._sync_curtain()
        for view in self.visible_slice_views():
            view.refresh()
            view.sliceChanged.emit()  # panels redraw their markers in newly shown views
        self._update_3d()

    def views_widget(self) -> QtWidgets.QWidget:
        return self._views_widget

    def view(self, role: str, orientation: str = "axial") -> SliceView:
        """The view on screen with this role and orientation (KeyError if none)."""
        for view in self._shown:
            if view.role == role and view.plane.orientation == orientation:
                return view
        raise KeyError(f"no {role} {orientation} view in the {self.layout_name} layout")
