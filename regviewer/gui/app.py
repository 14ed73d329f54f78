"""Application start-up: `regviewer [FIXED [MOVING]] [--session S] [--screenshot PNG]`."""

from __future__ import annotations

import sys


def make_window(fixed: str | None = None, moving: str | None = None, session: str | None = None,
                sessions: bool = True):
    """The main window with the given images (or session) opened; needs a QApplication."""
    from regviewer.gui.main_window import MainWindow

    window = MainWindow(sessions=sessions)
    if session:
        controller = getattr(window, "session_controller", None)
        if controller is None:
            window.show_message("Sessions are not available in this build")
        else:
            try:
                controller.open_session(session)
            except Exception as exc:  # noqa: BLE001 - shown, never a traceback
                window.show_error(exc)
    elif fixed:
        window.open_images(fixed, moving)
    return window


def run_app(fixed: str | None = None, moving: str | None = None, session: str | None = None,
            screenshot: str | None = None) -> int:
    """Open the window; with `screenshot`, save a PNG of it once drawn and quit."""
    import pyqtgraph as pg
    from PyQt6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("regviewer")
    app.setOrganizationName("regviewer")
    pg.setConfigOptions(antialias=True)
    window = make_window(fixed, moving, session)
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
