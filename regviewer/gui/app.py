"""Application start-up: `regviewer [FIXED [MOVING]] [--transform T] [--session S] [--screenshot PNG]`.
The images are opened into a `Workspace` that the window then observes."""

from __future__ import annotations

import sys


def make_window(fixed: str | None = None, moving: str | None = None, session: str | None = None,
                sessions: bool = True, transform: str | None = None):
    """The main window over a Workspace with the given images (or session) opened, and
    optionally a transform file made current; needs a QApplication."""
    from regviewer.core.errors import MultipleSeriesError, RegviewerError
    from regviewer.core.workspace import Workspace
    from regviewer.gui.main_window import MainWindow

    workspace, error = Workspace(), None
    if fixed and not session:
        try:
            workspace.open(fixed, moving)
        except MultipleSeriesError:
            pass  # the window asks which series
        except RegviewerError as exc:
            error = exc
    window = MainWindow(sessions=sessions, workspace=workspace)
    if error is not None:
        window.show_error(error)
    if session:
        controller = getattr(window, "session_controller", None)
        if controller is None:
            window.show_message("Sessions are not available in this build")
        else:
            try:
                controller.open_session(session)
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                window.show_error(exc)
    elif fixed and workspace.fixed is None and error is None:
        window.open_images(fixed, moving)
    if transform and window.fixed_volume() is not None:
        from regviewer.gui.file_actions import open_transform

        open_transform(window, transform)
    return window


def run_app(fixed: str | None = None, moving: str | None = None, session: str | None = None,
            screenshot: str | None = None, transform: str | None = None) -> int:
    """Open the window; with `screenshot`, save a PNG of it once drawn and quit."""
    import pyqtgraph as pg
    from PyQt6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("regviewer")
    app.setOrganizationName("regviewer")
    pg.setConfigOptions(antialias=True)
    window = make_window(fixed, moving, session, transform=transform)
    window.show()
    if screenshot:
        def grab() -> None:
            from regviewer.gui.file_actions import grab_with_3d

            grab_with_3d(window).save(screenshot)
            controller = getattr(window, "session_controller", None)
            if controller is not None:  # a screenshot run has nothing to save or recover
                controller.ask_save_changes = lambda: "discard"
            window.close()
            app.quit()

        QtCore.QTimer.singleShot(1200, grab)
    return app.exec()
