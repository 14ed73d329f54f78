"""The application model: what a person is working on (`Workspace`), its undo history,
sessions, run history and view state."""

from __future__ import annotations

from typing import Any

__all__ = ["Workspace"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing a sibling module (session, undo) does not load the whole model.
    if name == "Workspace":
        from regviewer.core.workspace.model import Workspace

        return Workspace
    raise AttributeError(name)
