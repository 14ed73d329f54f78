"""Menus, toolbars and the status bar of the main window (no state of their own:
every action calls a window method or a `file_actions` function)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6 import QtGui, QtWidgets

from regviewer.core.imaging.window_presets import WINDOW_PRESETS, window_presets_for
from regviewer.gui import file_actions

if TYPE_CHECKING:
    from regviewer.gui.main_window import MainWindow

_LAYOUT_LABELS = {"1x3+3d": ("3 views + 3D", "Ctrl+1"), "single": ("Single view", "Ctrl+2"),
                  "side_by_side": ("Fixed | Moving", "Ctrl+3")}
_MODE_LABELS = {"navigate": ("Navigate", "N"), "window_level": ("Window/Level", "W"), "landmark": ("Landmarks", "L"),
               "roi": ("ROI", "R")}


def _action(window: "MainWindow", text: str, slot, shortcut: str | None = None, tip: str | None = None,
            checkable: bool = False) -> QtGui.QAction:
    action = QtGui.QAction(text, window)
    if shortcut:
        action.setShortcut(QtGui.QKeySequence(shortcut))
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.setCheckable(checkable)
    action.triggered.connect(lambda _=False: slot())
    return action


def build(w: "MainWindow") -> None:
    """Create the menu bar, toolbars and status bar."""
    bar = w.menuBar()
    # --- File
    file_menu = bar.addMenu("&File")
    file_menu.addAction(_action(w, "Open Fixed Image…", lambda: file_actions.open_image_dialog(w, "fixed"), "Ctrl+O"))
    file_menu.addAction(_action(w, "Open Moving Image…", lambda: file_actions.open_image_dialog(w, "moving"), "Ctrl+M"))
    file_menu.addAction(_action(w, "Open DICOM Folder as Fixed…", lambda: file_actions.open_dicom_dialog(w, "fixed")))
    file_menu.addAction(_action(w, "Open DICOM Folder as Moving…", lambda: file_actions.open_dicom_dialog(w, "moving")))
    file_menu.addAction(_action(w, "Open Stack…", lambda: __import__("regviewer.gui.stack.stack_window", fromlist=["_"])
                                .open_stack_dialog(w), None, "Align a folder of serial 2D sections into a volume"))
    w.recent_menu = file_menu.addMenu("Open Recent")
    w.recent_menu.aboutToShow.connect(lambda: file_actions.fill_recent_menu(w, w.recent_menu))
    file_menu.addAction(_action(w, "Open Transform…", lambda: file_actions.open_transform_dialog(w), None,
                                "ITK, elastix, ANTs .mat or a displacement field (fixed → moving); undoable"))
    file_menu.addSeparator()
    file_menu.addAction(_action(w, "Save Transform (fixed → moving)…", lambda: file_actions.save_dialog(w, "transform"),
                                "Ctrl+T", "ITK .tfm/.txt/.h5; it maps FIXED points to MOVING points"))
    file_menu.addAction(_action(w, "Save Resampled Moving Image…", lambda: file_actions.save_dialog(w, "resampled"),
                                None, "The moving image resampled onto the fixed grid"))
    file_menu.addAction(_action(w, "Save Screenshot…", lambda: file_actions.save_dialog(w, "screenshot"), "Ctrl+P"))
    # File > Open/Save Session… are added by the session controller when it is present.
    w.file_menu = file_menu
    # --- Edit
    edit_menu = bar.addMenu("&Edit")
    # One history for every edit (moves, Apply, landmark edits); the labels name the step.
    w.undo_action = _action(w, "Undo", w.undo, "Ctrl+Z")
    w.redo_action = _action(w, "Redo", w.redo, "Ctrl+Shift+Z")
    w.redo_action.setShortcuts([QtGui.QKeySequence("Ctrl+Shift+Z"), QtGui.QKeySequence("Ctrl+Y")])
    w.undo_action.setEnabled(False)
    w.redo_action.setEnabled(False)
    edit_menu.addAction(w.undo_action)
    edit_menu.addAction(w.redo_action)
    # --- View
    view_menu = bar.addMenu("&View")
    w.layout_actions = {}
    group = QtGui.QActionGroup(w)
    for name, (label, key) in _LAYOUT_LABELS.items():
        a = _action(w, label, lambda n=name: w.apply_layout(n), key, checkable=True)
        group.addAction(a)
        view_menu.addAction(a)
        w.layout_actions[name] = a
    w.orientation_box = QtWidgets.QComboBox()
    w.orientation_box.addItems(["axial", "coronal", "sagittal"])
    w.orientation_box.setToolTip("Orientation shown in the single and side-by-side layouts")
    w.orientation_box.currentTextChanged.connect(lambda o: w.apply_layout(w.layout_name, o))
    view_menu.addSeparator()
    overlay_menu = view_menu.addMenu("Overlay Mode")
    for action in w.overlay.actions.values():
        overlay_menu.addAction(action)
    view_menu.addAction(_action(w, "Reset Zoom", lambda: [v.reset_zoom() for v in w.visible_slice_views()], "Ctrl+0"))
    crosshair = _action(w, "Show Crosshair", lambda: [v.set_crosshair_visible(crosshair.isChecked()) for v in w.all_slice_views()],
                        "X", checkable=True)
    crosshair.setChecked(True)
    view_menu.addAction(crosshair)
    w.panels_menu = view_menu.addMenu("Panels")
    # --- Align
    align_menu = bar.addMenu("&Align")
    align_menu.addAction(_action(w, "Centre Images", w.manual_dock.align_centres))
    align_menu.addAction(_action(w, "Align Centres of Mass", w.manual_dock.align_centres_of_mass))
    align_menu.addAction(_action(w, "Reset Transform to Identity", w.manual_dock.reset, "Ctrl+R"))

    # --- toolbars
    main_tb = w.addToolBar("Main")
    main_tb.setObjectName("main_toolbar")
    main_tb.addAction(_action(w, "Open…", lambda: file_actions.open_image_dialog(w, "fixed" if w.fixed_volume() is None else "moving")))
    main_tb.addAction(_action(w, "Save transform…", lambda: file_actions.save_dialog(w, "transform")))
    main_tb.addSeparator()
    w.mode_actions = {}
    mode_group = QtGui.QActionGroup(w)
    for name, (label, key) in _MODE_LABELS.items():
        a = _action(w, label, lambda n=name: w.set_interaction_mode(n), key, checkable=True)
        mode_group.addAction(a)
        main_tb.addAction(a)
        w.mode_actions[name] = a
    main_tb.addSeparator()
    for a in w.layout_actions.values():
        main_tb.addAction(a)
    main_tb.addWidget(w.orientation_box)
    w.addToolBarBreak()
    w.addToolBar(w.overlay.toolbar)
    wl_tb = w.addToolBar("Window/Level")
    wl_tb.setObjectName("wl_toolbar")
    wl_tb.addWidget(QtWidgets.QLabel(" W/L of "))
    w.wl_target_box = QtWidgets.QComboBox()
    w.wl_target_box.addItems(["fixed", "moving"])
    w.wl_target_box.currentTextChanged.connect(lambda t: (setattr(w, "wl_target", t), sync_window_presets(w)))
    wl_tb.addWidget(w.wl_target_box)
    w.wl_preset_box = QtWidgets.QComboBox()
    w.wl_preset_box.addItems(list(WINDOW_PRESETS))
    w.wl_preset_box.setToolTip("Window/level preset: CT windows for CT images, percentile windows otherwise")
    w.wl_preset_box.textActivated.connect(w.apply_window_preset)
    wl_tb.addWidget(w.wl_preset_box)

    w.position_label = QtWidgets.QLabel("")
    w.statusBar().addPermanentWidget(w.position_label)
    sync_layout_actions(w)
    sync_mode_actions(w)


def sync_window_presets(w: "MainWindow") -> None:
    """Offer only the window/level presets that fit the image W/L applies to."""
    if not hasattr(w, "wl_preset_box"):
        return
    volume = w.fixed_volume() if w.wl_target == "fixed" else w.moving_volume()
    names = list(window_presets_for(volume))
    w.wl_preset_box.blockSignals(True)
    w.wl_preset_box.clear()
    w.wl_preset_box.addItems(names)
    w.wl_preset_box.blockSignals(False)


def sync_layout_actions(w: "MainWindow") -> None:
    if hasattr(w, "layout_actions"):
        w.layout_actions[w.layout_name].setChecked(True)
        if w.orientation_box.currentText() != w.focus_orientation:
            w.orientation_box.blockSignals(True)
            w.orientation_box.setCurrentText(w.focus_orientation)
            w.orientation_box.blockSignals(False)


def sync_mode_actions(w: "MainWindow") -> None:
    if hasattr(w, "mode_actions"):
        w.mode_actions[w.interaction_mode].setChecked(True)


def add_panel_toggle(w: "MainWindow", dock: QtWidgets.QDockWidget) -> None:
    if hasattr(w, "panels_menu"):
        w.panels_menu.addAction(dock.toggleViewAction())
