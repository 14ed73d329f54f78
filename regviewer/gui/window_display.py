"""Window/level, the status-bar position readout and the view state of the main window
(its session part "view"), kept apart from `main_window.py` (layout, views, menus)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regviewer.core.errors import RegviewerError
from regviewer.core.workspace.view_state import ViewState, adjust_window, preset_window

if TYPE_CHECKING:
    from regviewer.gui.views.slice_view import SliceView

INTERACTION_MODES = ("navigate", "window_level", "landmark", "roi")


class WindowDisplayMixin:
    """Mixed into `MainWindow`: what the views show besides the images themselves."""

    # ================================================================ window/level
    def window_level(self, which: str) -> tuple[float, float] | None:
        return self._wl.get(which)

    def set_window_level(self, which: str, window: float, level: float) -> None:
        self._wl[which] = (float(window), float(level))
        self.refresh_views()
        self.show_message(f"{which} window {window:.1f}, level {level:.1f}")

    def apply_window_preset(self, name: str) -> None:
        volume = self.workspace.fixed if self.wl_target == "fixed" else self.workspace.moving
        if volume is None:
            return
        try:
            self.set_window_level(self.wl_target, *preset_window(volume, name))
        except RegviewerError as exc:
            self.show_error(exc)

    def _on_wl_drag(self, view: SliceView, dx: float, dy: float) -> None:
        which = view.role if view.role in ("fixed", "moving") else self.wl_target
        volume = self.workspace.fixed if which == "fixed" else self.workspace.moving
        if volume is None or which not in self._wl:
            return
        scale = volume.default_window_level()[0] / 256.0
        self._wl[which] = adjust_window(*self._wl[which], dx, dy, scale)
        self.refresh_views()

    def _show_position(self, point) -> None:
        if self.workspace.fixed is None or point is None:
            return
        parts = ["(" + ", ".join(f"{x:.1f}" for x in point) + ") mm LPS"]
        f = self.workspace.fixed.value_at(point)
        parts.append(f"fixed {_fmt(f)}")
        if self.workspace.moving is not None:
            try:
                q = self.displayed_transform().TransformPoint(tuple(float(x) for x in point))
                parts.append(f"moving {_fmt(self.workspace.moving.value_at(q))}")
            except RuntimeError:
                parts.append("moving —")
        self.position_label.setText("   ".join(parts))

    # ================================================================ view state (session part "view")
    def view_state(self) -> ViewState:
        return ViewState(layout=self.layout_name, overlay=self.overlay.settings,
                         fixed_window=self._wl.get("fixed"), moving_window=self._wl.get("moving"),
                         cursor=self._cursor)

    def view_state_json(self) -> dict:
        data = self.view_state().to_json()
        data["focus_orientation"] = self.focus_orientation
        data["interaction_mode"] = self.interaction_mode
        return data

    def restore_view_state(self, data: dict) -> None:
        try:
            state = ViewState.from_json(data or {})
        except (RegviewerError, TypeError, ValueError) as exc:
            self.show_error(RegviewerError(f"The saved view state could not be used: {exc}"))
            return
        self.overlay.set_settings(state.overlay)
        if state.fixed_window and self.workspace.fixed is not None:
            self._wl["fixed"] = state.fixed_window
        if state.moving_window and self.workspace.moving is not None:
            self._wl["moving"] = state.moving_window
        self.apply_layout(state.layout, data.get("focus_orientation"))
        if data.get("interaction_mode") in INTERACTION_MODES:
            self.set_interaction_mode(data["interaction_mode"])
        if state.cursor is not None and self.workspace.fixed is not None:
            self.center_on(state.cursor)



def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.0f}" for v in value) + ")"
    return f"{value:.4g}"
