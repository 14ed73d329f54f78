"""The Workspace: the one model of what a person is working on, with ONE undo history.

It holds the images, the current transform (fixed→moving) and where it came from, the
preview shown during a run, the landmarks and the region of interest (whose edits go on
the same undo history),
the registration settings, the run history, the view state and the QA inputs. Every
field has a plain-callback event in `ws.events` (no Qt), emitted exactly once per change.
The window, scripts and the `open` command share it (napari's ViewerModel, ITK-SNAP's
IRISApplication)::

    ws = Workspace(); ws.open("fixed.nii.gz", "moving.nii.gz")
    ws.set_transform(T, "Hand-made", source=None)   # undoable; T maps fixed -> moving
    ws.landmarks.add_pair((0, 0, 0), (1, 2, 3))     # same history
    ws.set_roi(ws.roi.with_box((-20, -20, -5), (20, 20, 5)), "Draw box")  # same history
    ws.undo(); ws.redo()
    ws.open_transform("result.tfm"); ws.save_session("s.rvsession.json")
    ws2 = Workspace.load_session("s.rvsession.json")
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Hashable, Iterator

import SimpleITK as sitk

from regviewer.core.errors import ParameterError, SessionError
from regviewer.core.imaging.image import Volume, as_volume
from regviewer.core.imaging.io import check_compatible
from regviewer.core.imaging.roi import RegionOfInterest
from regviewer.core.landmarks.model import LandmarkSet
from regviewer.core.transforms.io import read_transform
from regviewer.core.transforms.manual import ManualAlignment
from regviewer.core.workspace.journal import HistoryJournal, Snapshot
from regviewer.core.workspace.run_history import RunHistory, RunRecord
from regviewer.core.workspace.session import Session
from regviewer.core.workspace.state import (RegistrationSettings, TransformSource, TransformState,
                                            WorkspaceEvents)
from regviewer.core.workspace.undo import Command, UndoStack

_OWN_PART = "workspace"  # session part with the source, manual move, runs and QA inputs


def _identity(dimension: int) -> sitk.Transform:
    return sitk.Transform(dimension, sitk.sitkIdentity)


def _volume(image: Any) -> Volume | None:
    if image is None:
        return None
    if isinstance(image, Path):
        image = str(image)
    return as_volume(image)


class Workspace:
    """See the module docstring. Reading is by attribute; every change is a method call."""

    def __init__(self) -> None:
        self.events = WorkspaceEvents()
        self.history = UndoStack()
        self._transform_changed = False
        self._roi = RegionOfInterest()
        self._roi_changed = False
        self.history.subscribe(self._on_history_changed)  # first subscriber: before the landmarks' relay
        self.fixed: Volume | None = None
        self.moving: Volume | None = None
        self._state = TransformState(_identity(3), TransformSource(), ManualAlignment())
        self.preview: sitk.Transform | None = None
        self._landmarks = LandmarkSet(3, undo_stack=self.history)
        self._landmarks.subscribe(self._on_landmarks_changed)
        self.journal = HistoryJournal(self.history, self._snapshot)  # lets sessions carry the history
        self.settings = RegistrationSettings()
        self.runs = RunHistory()
        self.runs.subscribe(lambda: self.events.runs.emit(self.runs))
        self.view_state: dict = {}
        self.qa_inputs: dict = {}
        # Observers must not push new edits (e.g. an automatic landmark fit) while the
        # Workspace replays a step (undo/redo) or loads state (open, restore).
        self.replaying = False
        self.loading = False

    # ------------------------------------------------------------------ reading
    @property
    def transform(self) -> sitk.Transform:
        """The current transform, mapping FIXED points to MOVING points (LPS mm)."""
        return self._state.transform

    @property
    def transform_state(self) -> TransformState:
        return self._state

    @property
    def source(self) -> TransformSource:
        return self._state.source

    @property
    def manual(self) -> ManualAlignment:
        """The manual move shown in the manual-alignment fields for the current step."""
        return self._state.manual

    @property
    def landmarks(self) -> LandmarkSet:
        """The landmark pairs; their edits are steps of `history`, like transform edits."""
        return self._landmarks

    @property
    def roi(self) -> RegionOfInterest:
        """The region of interest on the fixed image (fixed LPS mm); its edits are steps of
        `history`. Runs use its mask as the fixed mask (the window writes the file)."""
        return self._roi

    @property
    def dimension(self) -> int:
        return self.fixed.dimension if self.fixed is not None else self._state.transform.GetDimension()

    @property
    def displayed_transform(self) -> sitk.Transform:
        """What the views draw: the preview while there is one, else the current transform."""
        return self.preview if self.preview is not None else self._state.transform

    # ------------------------------------------------------------------ images
    def open(self, fixed: Any, moving: Any = None) -> None:
        """Open images (paths, Volumes or SimpleITK images). The transform returns to
        identity, landmarks and runs are emptied and the undo history is cleared."""
        with self._flag("loading"):
            self._open(fixed, moving)

    def _open(self, fixed: Any, moving: Any) -> None:
        fixed_v, moving_v = _volume(fixed), _volume(moving)
        if fixed_v is None:
            raise ParameterError("Workspace.open needs a fixed image")
        if moving_v is not None:
            check_compatible(fixed_v, moving_v)
        self.fixed, self.moving = fixed_v, moving_v
        dim = fixed_v.dimension
        self.preview = None
        self._state = TransformState(_identity(dim), TransformSource(), self._zero_manual(dim))
        self._transform_changed = False
        had_roi, self._roi = not self._roi.is_empty, RegionOfInterest()  # drawn on the old fixed grid
        self.history.clear()
        self._replace_landmarks(LandmarkSet(dim, undo_stack=self.history))
        self.journal.resync()  # the history's first "before" is the new pair's state, not the old region
        self.events.images.emit((fixed_v, moving_v))
        self.events.transform.emit(self._state)
        if had_roi:
            self.events.roi.emit(self._roi)
        if len(self.runs):
            self.runs.clear()

    def _zero_manual(self, dim: int) -> ManualAlignment:
        centre = tuple(self.fixed.center_physical()) if self.fixed is not None else (0.0,) * dim
        return ManualAlignment(dimension=dim, centre=tuple(centre) + (0.0,) * (3 - len(centre)))

    # ------------------------------------------------------------------ transform edits (undoable)
    def set_transform(self, transform: sitk.Transform, description: str = "Set transform",
                      source: TransformSource | None = None, *, manual: ManualAlignment | None = None,
                      manual_base: sitk.Transform | None = None, merge_key: Hashable | None = None) -> None:
        """Make `transform` (fixed→moving) current: one undo step named `description`.

        `source` says where it came from (default: a script). `manual`/`manual_base` are
        given only by manual moves; any other change shows a zero manual move on top of it.
        """
        if transform.GetDimension() != self.dimension:
            raise ParameterError(f"The transform '{description}' is {transform.GetDimension()}D "
                                 f"but the images are {self.dimension}D")
        copy = sitk.Transform(transform).Downcast()  # copy-on-write: later edits to `transform` do not leak in
        if manual is None:
            manual, manual_base = replace(self._zero_manual(self.dimension), centre=self._state.manual.centre), copy
        new = TransformState(copy, source or TransformSource("script"), manual, manual_base)
        old = self._state
        self.history.push(Command(description, lambda: self._set_state(new), lambda: self._set_state(old), merge_key))

    def move_manually(self, alignment: ManualAlignment, description: str = "Move moving image",
                      merge_key: Hashable | None = None) -> None:
        """Make the manual move `alignment` current, on top of the transform it nudges."""
        self.set_transform(self.manual_transform(alignment), description, TransformSource("manual"),
                           manual=alignment, manual_base=self._state.manual_base, merge_key=merge_key)

    def manual_transform(self, alignment: ManualAlignment) -> sitk.Transform:
        """The fixed→moving transform the manual move `alignment` gives (nothing changes)."""
        return alignment.transform_fixed_to_moving(self._state.manual_base)

    def reset_transform(self) -> None:
        """Back to identity (undoable)."""
        dim = self.dimension
        self.set_transform(_identity(dim), "Reset transform", TransformSource("identity"),
                           manual=replace(self._zero_manual(dim), centre=self._state.manual.centre), manual_base=None)

    def open_transform(self, path: str | Path) -> None:
        """Read any transform `read_transform` reads (ITK, elastix, ANTs .mat, a field) and
        make it current (undoable). Raises TransformReadError naming the file."""
        transform = read_transform(path)
        self.set_transform(transform, f"Open transform {Path(path).name}", TransformSource("file", path=str(path)))

    def apply_run(self, record: RunRecord, description: str | None = None) -> None:
        """Make a run's result current (Apply, Use this run)."""
        self.set_transform(record.transform, description or f"Apply {record.label}",
                           TransformSource("run", run=record.number))

    def use_run(self, number: int) -> None:
        self.apply_run(self.runs.get(number), f"Use {self.runs.get(number).label}")

    # ------------------------------------------------------------------ region of interest (undoable)
    def set_roi(self, roi: RegionOfInterest, description: str = "Edit region of interest",
                merge_key: Hashable | None = None) -> None:
        """Make `roi` the region of interest: one undo step (a box drag, a paint stroke, Clear)."""
        if not isinstance(roi, RegionOfInterest):
            raise ParameterError(f"set_roi needs a RegionOfInterest, not {type(roi).__name__}")
        if roi == self._roi:
            return
        old = self._roi
        self.history.push(Command(description, lambda: self._set_roi(roi), lambda: self._set_roi(old), merge_key))

    def load_roi(self, roi: RegionOfInterest) -> None:
        """Put a saved region back without an undo step (a session part, a script's setup)."""
        if roi != self._roi:
            self._roi = roi
            self.journal.resync()
            self.events.roi.emit(roi)

    def _set_roi(self, roi: RegionOfInterest) -> None:
        self._roi = roi
        self._roi_changed = True  # the event follows once the history is consistent

    def _set_state(self, state: TransformState, notify: bool = False) -> None:
        """Called by undo commands; the event follows once the history is consistent
        (so an observer reading `history.undo_text` sees the new step)."""
        self._state = state
        self.preview = None
        self._transform_changed = True
        if notify:
            self._emit_transform()

    def _snapshot(self) -> Snapshot:
        return self._state, tuple(self._landmarks.pairs), self._roi

    def _apply_snapshot(self, snapshot: Snapshot) -> None:
        """Put a saved step's state back (a rebuilt undo command); events follow the history's."""
        state, pairs, roi = snapshot
        if state is not self._state:
            self._set_state(state)
        if roi is not None and roi != self._roi:  # None: a session from before the region was recorded
            self._set_roi(roi)
        if tuple(self._landmarks.pairs) != pairs:
            self._landmarks._set(pairs)  # the set notifies once the history is consistent

    def _emit_transform(self) -> None:
        if self._transform_changed:
            self._transform_changed = False
            self.events.transform.emit(self._state)

    def _on_history_changed(self) -> None:
        self._emit_transform()
        if self._roi_changed:
            self._roi_changed = False
            self.events.roi.emit(self._roi)
        self.events.history.emit(self.history)

    # ------------------------------------------------------------------ preview (not undoable)
    def set_preview(self, transform: sitk.Transform | None) -> None:
        """Show `transform` (a run's snapshot, a drag in progress) without making it current."""
        if transform is None and self.preview is None:
            return
        self.preview = transform
        self.events.preview.emit(transform)

    # ------------------------------------------------------------------ undo
    def undo(self) -> str | None:
        """Revert the last edit, whatever it was; returns its description (None if none)."""
        with self._flag("replaying"):
            return self.history.undo()

    def redo(self) -> str | None:
        with self._flag("replaying"):
            return self.history.redo()

    @contextlib.contextmanager
    def _flag(self, name: str) -> Iterator[None]:
        old = getattr(self, name)
        setattr(self, name, True)
        try:
            yield
        finally:
            setattr(self, name, old)

    # ------------------------------------------------------------------ other fields (not undoable)
    def set_settings(self, settings: RegistrationSettings | None = None, **changes: Any) -> None:
        new = replace(settings or self.settings, **changes)
        if new != self.settings:
            self.settings = new
            self.events.settings.emit(new)

    def set_view_state(self, state: dict) -> None:
        if state != self.view_state:
            self.view_state = dict(state)
            self.events.view_state.emit(self.view_state)

    def set_qa_inputs(self, **inputs: Any) -> None:
        new = {**self.qa_inputs, **inputs}
        if new != self.qa_inputs:
            self.qa_inputs = new
            self.events.qa.emit(new)

    def _replace_landmarks(self, new: LandmarkSet) -> None:
        self._landmarks.unsubscribe(self._on_landmarks_changed)
        self._landmarks = new
        new.subscribe(self._on_landmarks_changed)
        self.events.landmarks.emit(new)

    def _on_landmarks_changed(self) -> None:
        self.events.landmarks.emit(self._landmarks)

    # ------------------------------------------------------------------ sessions
    def to_session(self, parts: dict[str, dict] | None = None) -> Session:
        """The workspace as a `Session` (plus any panel `parts`)."""
        session = Session(fixed_path=getattr(self.fixed, "path", None), moving_path=getattr(self.moving, "path", None))
        session.transforms["current"] = self.transform
        if self._state.manual_base is not None and self._state.manual_base is not self.transform:
            session.transforms["manual_base"] = self._state.manual_base
        session.landmarks = self._landmarks.to_dict()
        session.parameters = self.settings.to_json()
        session.view_state = dict(self.view_state)
        session.parts = dict(parts or {})
        session.parts[_OWN_PART] = {"source": self._state.source.to_json(), "manual": self._state.manual.to_json(),
                                    "runs": self.runs.to_dict(), "qa": dict(self.qa_inputs),
                                    "roi": self._roi.to_json(),
                                    "history": self.journal.to_json()}
        return session

    def save_session(self, path: str | Path, parts: dict[str, dict] | None = None) -> Path:
        """Write a session file atomically; raises SessionError naming the file."""
        self.history.set_clean()
        return self.to_session(parts).save(path)

    @classmethod
    def load_session(cls, path: str | Path) -> "Workspace":
        """A new Workspace from a session file (its images are read from their paths)."""
        ws = cls()
        ws.restore(Session.load(path))
        return ws

    def restore(self, session: Session, open_images: bool = True) -> None:
        """Put a session back: its images (read from their paths, unless `open_images` is
        False because the caller opened them), transform, landmarks, runs, settings, view
        state and QA inputs. The undo history starts empty."""
        with self._flag("loading"):
            self._restore(session, open_images)

    def _restore(self, session: Session, open_images: bool) -> None:
        if open_images and session.fixed_path:
            self.open(session.fixed_path, session.moving_path)
        own = session.parts.get(_OWN_PART) or {}
        current = session.transforms.get("current")
        if current is not None:
            if current.GetDimension() != self.dimension:
                raise SessionError(f"The session's transform is {current.GetDimension()}D "
                                   f"but its images are {self.dimension}D")
            try:
                manual = ManualAlignment.from_json(own["manual"]) if "manual" in own else self._zero_manual(self.dimension)
            except (TypeError, ValueError, ParameterError):
                manual = self._zero_manual(self.dimension)
            base = session.transforms.get("manual_base", current if manual.is_identity() else None)
            source = TransformSource.from_json(own["source"]) if "source" in own else TransformSource("session")
            self._set_state(TransformState(current, source, manual, base), notify=True)
        if session.landmarks:
            self._replace_landmarks(LandmarkSet.from_dict(session.landmarks, undo_stack=self.history))
        self._restore_roi(own.get("roi", (session.parts.get("roi") or {}).get("region")), session)
        if "runs" in own:
            self.runs.load_dict(own["runs"], "session run history")
        self.set_settings(RegistrationSettings.from_json(session.parameters))
        self.set_view_state(session.view_state)
        if isinstance(own.get("qa"), dict):
            self.set_qa_inputs(**own["qa"])
        self.history.clear()
        if isinstance(own.get("history"), dict):  # Ctrl+Z walks back through the saved steps
            self.journal.rebuild(own["history"], self._apply_snapshot, f"Cannot open session '{session.fixed_path}'")

    def _restore_roi(self, data: Any, session: Session) -> None:
        """The session's region (older sessions kept it only in the window's "roi" part)."""
        try:
            roi = RegionOfInterest.from_json(data)
        except ParameterError as exc:
            raise SessionError(f"Cannot open session '{session.fixed_path}': {exc}") from None
        if roi != self._roi:
            self._roi = roi
            self.events.roi.emit(roi)


__all__ = ["Workspace"]
