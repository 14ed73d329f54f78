"""What a panel (landmarks, live registration, QA) may ask of the main window.

Panels are built against this protocol, not against `MainWindow` itself, so each can
be developed and tested with a small fake host (`tests/gui/fake_host.py`). The state a
panel reads and edits lives in `host.workspace` (the `core.workspace.Workspace`: images,
the current transform and its source, landmarks, runs, one undo history); panels send it
commands and never keep a copy. Long work goes through `host.background` (a
`gui.background.LatestResult`: the newest result of each kind wins).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import PlaneGeometry


@runtime_checkable
class SliceViewLike(Protocol):
    """One 2D view. Its pyqtgraph `view_box` is in plane pixel units: x = col, y = row
    (see `PlaneGeometry.to_physical`); items added there follow zoom and pan.

    Qt signals a real SliceView has: `sliceChanged()` when plane or depth changes;
    `clicked(object point_lps, str role, object modifiers)` on a plain left click in
    landmark mode, with the point in FIXED physical space (LPS mm).

    The main window keeps three SliceView objects and re-uses them when the layout
    changes: `role`, `plane` and `depth` may all change, and `sliceChanged` is emitted
    then, so a panel connects once (when images change) and redraws on that signal.
    `host.slice_views()` lists the views on screen first, then the hidden ones.
    """

    role: str  # "overlay" (fixed + moving composited), "fixed" or "moving" (side by side)
    plane: PlaneGeometry
    depth: float
    view_box: Any  # pyqtgraph.ViewBox


@runtime_checkable
class VolumeViewLike(Protocol):
    """The 3D view: named sets of polylines in physical space (LPS mm)."""

    def set_polylines(self, name: str, lines: list[np.ndarray] | None, color: tuple[float, float, float] = (1, 1, 0)) -> None:
        """Show (or with None remove) a set of (N, 3) polylines under `name`."""


@runtime_checkable
class RegistrationHost(Protocol):
    """The main window as panels see it."""

    workspace: Any  # regviewer.core.workspace.Workspace
    background: Any  # regviewer.gui.background.LatestResult
    bridge: Any  # regviewer.gui.bridge.WorkspaceBridge: the Workspace's events as Qt signals

    def fixed_volume(self) -> Volume | None: ...

    def moving_volume(self) -> Volume | None: ...

    def current_transform(self) -> sitk.Transform:
        """The user's current fixed→moving transform (manual, landmark fit or applied result)."""

    def set_current_transform(self, transform: sitk.Transform, description: str, source: Any = None) -> None:
        """`workspace.set_transform` with errors shown in a dialog: an undoable step."""

    def show_preview_transform(self, transform: sitk.Transform | None) -> None:
        """Redraw the overlay under a temporary transform (e.g. a running registration's
        snapshot) without changing the current one; None returns to the current one."""

    def slice_views(self) -> list[SliceViewLike]: ...

    def volume_view(self) -> VolumeViewLike | None: ...

    def center_on(self, point_lps: tuple[float, ...]) -> None:
        """Move the linked cursor (and every view's slice) to a physical point."""

    def show_message(self, text: str) -> None:
        """A short message in the status bar."""

    def show_error(self, error: BaseException) -> None:
        """A dialog with the error's message (never a traceback); the window stays usable."""

    def on_images_changed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the GUI thread) whenever the fixed or moving image changes."""

    def on_transform_changed(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the current transform changes."""

    def register_session_part(self, key: str, get_state: Callable[[], dict], set_state: Callable[[dict], None]) -> None:
        """Save `get_state()` under `key` in session files and autosaves; `set_state` on open."""

    def mark_modified(self) -> None:
        """Something the user made changed: autosave soon, prompt on close."""
