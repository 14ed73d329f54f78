"""GUI test fixtures: the real main window on the demo pair, and mouse helpers that
drive pyqtgraph views with genuine Qt mouse events (press, moves, release)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


@pytest.fixture(autouse=True)
def _isolated_user_state(tmp_path_factory, monkeypatch):
    """Recovery files and QSettings (recent files) go to a temporary folder."""
    base = tmp_path_factory.mktemp("user-state")
    monkeypatch.setenv("REGVIEWER_RECOVERY_DIR", str(base / "recovery"))
    from PyQt6 import QtCore

    for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
        QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, str(base / "settings"))
    yield


@pytest.fixture
def brain_paths():
    fixed, moving = DEMO / "brain_t1_fixed.nii.gz", DEMO / "brain_t2like_moving.nii.gz"
    if not fixed.exists() or not moving.exists():
        pytest.skip("demo data not generated yet")
    return fixed, moving


@pytest.fixture
def retina_paths():
    fixed, moving = DEMO / "retina_fixed.png", DEMO / "retina_moving.png"
    if not fixed.exists():
        pytest.skip("demo data not generated yet")
    return fixed, moving


@pytest.fixture
def make_window(qtbot, monkeypatch):
    """Factory: `make_window(fixed, moving, panels=False, sessions=False, three_d=False)`."""
    from regviewer.gui.main_window import MainWindow

    made = []

    def factory(fixed=None, moving=None, panels=False, sessions=False, three_d=False):
        if not three_d:
            monkeypatch.setenv("REGVIEWER_NO_3D", "1")
        else:
            monkeypatch.delenv("REGVIEWER_NO_3D", raising=False)
        window = MainWindow(sessions=sessions, panels=panels)
        if window.session_controller is not None:
            window.session_controller.ask_save_changes = lambda: "discard"  # never block on close
            window.session_controller.ask_recover = lambda candidates: None
        qtbot.addWidget(window)
        window.resize(1200, 800)
        window.show()
        qtbot.waitExposed(window)
        activate(qtbot, window)
        if fixed is not None:
            assert window.open_images(str(fixed), str(moving) if moving else None), window.last_error
        made.append(window)
        return window

    yield factory
    for window in made:
        controller = getattr(window, "session_controller", None)
        if controller is not None:
            controller.ask_save_changes = lambda: "discard"
            controller.modified = False
            controller.shutdown()


@pytest.fixture
def brain_window(make_window, brain_paths):
    return make_window(*brain_paths)


def skip_without_vtk_display() -> None:
    """Skip a test that draws the VTK 3D view when Qt is not on X (it needs Xvfb + QT_QPA_PLATFORM=xcb)."""
    from PyQt6 import QtWidgets

    if QtWidgets.QApplication.platformName() != "xcb":
        pytest.skip("the VTK widget needs Xvfb + QT_QPA_PLATFORM=xcb")


def activate(qtbot, window):
    """Make `window` the active window (Xvfb has no window manager to do it), so
    keyboard shortcuts reach its actions as they would for a user."""
    from PyQt6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    window.raise_()
    window.activateWindow()
    try:
        qtbot.waitUntil(lambda: app.activeWindow() is window, timeout=2000)
    except AssertionError:
        pass  # some platforms never report an active window; shortcut tests will say so


# --- mouse helpers --------------------------------------------------------------------------
def view_to_widget(view, col: float, row: float):
    """Viewport pixel position of plane pixel (col, row) in a SliceView."""
    from PyQt6 import QtCore

    scene = view.view_box.mapViewToScene(QtCore.QPointF(col, row))
    return view.graphics.mapFromScene(scene)


def send_mouse(widget, kind, pos, button, buttons, modifiers):
    from PyQt6 import QtCore, QtGui, QtWidgets

    posf = QtCore.QPointF(pos)
    event = QtGui.QMouseEvent(kind, posf, QtCore.QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QtWidgets.QApplication.sendEvent(widget, event)


def drag(qtbot, view, start, end, modifiers=None, button=None, steps: int = 6):
    """Drag in a SliceView from plane pixel `start` to `end` (col, row) with real events."""
    from PyQt6 import QtCore

    mods = modifiers if modifiers is not None else QtCore.Qt.KeyboardModifier.NoModifier
    btn = button if button is not None else QtCore.Qt.MouseButton.LeftButton
    vp = view.graphics.viewport()
    a, b = view_to_widget(view, *start), view_to_widget(view, *end)
    send_mouse(vp, QtCore.QEvent.Type.MouseButtonPress, a, btn, btn, mods)
    for i in range(1, steps + 1):
        t = i / steps
        p = QtCore.QPoint(round(a.x() + (b.x() - a.x()) * t), round(a.y() + (b.y() - a.y()) * t))
        send_mouse(vp, QtCore.QEvent.Type.MouseMove, p, QtCore.Qt.MouseButton.NoButton, btn, mods)
        qtbot.wait(12)  # pyqtgraph drops moves closer than 1/mouseRateLimit (10 ms), as for a real mouse
    send_mouse(vp, QtCore.QEvent.Type.MouseButtonRelease, b, btn, QtCore.Qt.MouseButton.NoButton, mods)
    qtbot.wait(5)


def click(qtbot, view, at, modifiers=None):
    """A left click at plane pixel `at` (col, row)."""
    from PyQt6 import QtCore

    mods = modifiers if modifiers is not None else QtCore.Qt.KeyboardModifier.NoModifier
    btn = QtCore.Qt.MouseButton.LeftButton
    vp = view.graphics.viewport()
    p = view_to_widget(view, *at)
    send_mouse(vp, QtCore.QEvent.Type.MouseButtonPress, p, btn, btn, mods)
    send_mouse(vp, QtCore.QEvent.Type.MouseButtonRelease, p, btn, QtCore.Qt.MouseButton.NoButton, mods)
    qtbot.wait(5)


os.environ.setdefault("PYQTGRAPH_QT_LIB", "PyQt6")


def aligned_stack_window(qtbot, folder):
    """A stack window on `folder`, shown, its alignment (one neighbour each side) run to the end."""
    from regviewer.gui.stack.stack_window import StackWindow

    w = StackWindow(folder, neighbours=1, start=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    with qtbot.waitSignal(w.runner.finished, timeout=120_000):
        w.start()
    return w
