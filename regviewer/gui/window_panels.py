"""The optional parts of the window: the panels other modules provide (landmarks, live
registration, quality) and the session controller. Each is added if its module is
present; one that is missing or fails to start never stops the window."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from PyQt6 import QtCore

if TYPE_CHECKING:
    from regviewer.gui.main_window import MainWindow

PANELS = (
    ("regviewer.gui.panels.landmark_panel", "LandmarkDock"),
    ("regviewer.gui.panels.live_panel", "LiveRegistrationDock"),
    ("regviewer.gui.panels.qa_panel", "QADock"),
)


def add_optional_panels(window: "MainWindow") -> None:
    """Create each panel as `Class(window)` and tab it on the right; `window.panels`
    maps class name → dock. $REGVIEWER_PANELS (comma-separated class names) limits
    which are made (benchmarks, debugging)."""
    wanted = os.environ.get("REGVIEWER_PANELS")
    for module_name, class_name in PANELS:
        if wanted is not None and class_name not in wanted.split(","):
            continue
        try:
            module = importlib.import_module(module_name)
            dock = getattr(module, class_name)(window)
        except Exception as exc:  # noqa: BLE001 - a broken panel must not stop the window
            window.show_message(f"The {class_name} panel could not start: {exc}")
            continue
        window.panels[class_name] = dock
        window.add_panel(dock)
    docks = window.right_docks()
    if docks:
        docks[0].raise_()
        window.resizeDocks([docks[0]], [420], QtCore.Qt.Orientation.Horizontal)


def install_session_controller(window: "MainWindow") -> None:
    """File > Open/Save Session, autosave and crash recovery, when the module exists."""
    from regviewer.gui.session_controller import SessionController

    try:
        window.session_controller = SessionController(window).install(window)
    except Exception as exc:  # noqa: BLE001
        window.show_message(f"Sessions are unavailable: {exc}")
