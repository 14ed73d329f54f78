#!/usr/bin/env python
"""The Workspace in the real window, step by step: Run (affine), Apply, a manual move, Run
(affine + B-spline), Apply, a landmark fit, Apply; Save Session; quit; reopen; then Ctrl+Z back
through every step. One PNG per moment, and a line per step saying whether the
manual-alignment fields rebuild the transform on screen.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_workspace.py [--out DIR]

Without a display it re-runs itself under xvfb-run. Short runs (few iterations) on the
demo brain pair, so it takes well under a minute.
"""

from __future__ import annotations

import argparse
import dataclasses as dc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _short(name: str, iterations: int):
    from regviewer.core.registration.presets import load_preset

    p = load_preset(name)
    stages = tuple(dc.replace(s, optimizer=dc.replace(s.optimizer, iterations=iterations),
                              pyramid=dc.replace(s.pyramid, shrink_factors=s.pyramid.shrink_factors[:2],
                                                 smoothing_sigmas=s.pyramid.smoothing_sigmas[:2]))
                   for s in p.stages)
    return dc.replace(p, stages=stages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots" / "workspace"))
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, "--out", args.out]
        return subprocess.call(cmd, env=dict(os.environ, QT_QPA_PLATFORM="xcb"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("REGVIEWER_RECOVERY_DIR", str(out / ".recovery"))

    import numpy as np
    from PyQt6 import QtCore, QtWidgets
    from PyQt6.QtTest import QTest

    from regviewer.core.resources import demo_dir
    from regviewer.gui.file_actions import grab_with_3d
    from regviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    demo = demo_dir()

    def settle(ms: int = 300) -> None:
        for _ in range(max(1, ms // 20)):
            app.processEvents()
            QTest.qWait(20)

    def wait(condition, timeout: float = 120.0) -> None:
        end = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > end:
                raise TimeoutError("the window did not get there in time")
            settle(40)

    def save(window, name: str) -> None:
        settle(400)
        path = out / f"{name}.png"
        grab_with_3d(window).save(str(path))
        print("wrote", path)

    def fields_match(window) -> bool:
        ws = window.workspace
        probe = [tuple(float(c) for c in p) for p in ws.fixed.corners_physical()]
        a, b = window.manual_dock.transform(), ws.transform
        return window.displayed_transform() is ws.transform and all(
            np.allclose(a.TransformPoint(p), b.TransformPoint(p), atol=1e-4) for p in probe)

    def make() -> MainWindow:
        window = MainWindow(sessions=True, panels=True)
        window.session_controller.ask_save_changes = lambda: "discard"
        window.session_controller.ask_recover = lambda candidates: None
        window.resize(1600, 1000)
        window.show()
        return window

    window = make()
    window.open_images(str(demo / "brain_t1_fixed.nii.gz"), str(demo / "brain_t2like_moving.nii.gz"))
    window.apply_layout("single", "axial")
    window.overlay.set_mode("checkerboard")
    live, landmarks = window.panels["LiveRegistrationDock"], window.panels["LandmarkDock"]
    settle(600)
    save(window, "00_opened")

    for number, (preset, iterations) in enumerate((("affine-mi", 30), ("affine-bspline-mi", 8)), start=1):
        live.raise_()
        live.params.set_pipeline(_short(preset, iterations))
        live.run()
        wait(lambda: not live.is_running())
        settle(300)
        live.apply()
        save(window, f"0{number}_run{number}_applied")
        if number == 1:  # a manual nudge between the runs: typed values, one undo step
            window.manual_dock.raise_()
            window.manual_dock.spins["tx"].setValue(6.0)
            window.manual_dock.spins["rz"].setValue(4.0)
            wait(lambda: window.workspace.history.undo_text == "Move moving image", timeout=5.0)
            save(window, "01b_manual_move")

    landmarks.raise_()
    landmarks.set_model("rigid")
    centre = np.asarray(window.fixed_volume().center_physical())
    for offset in ((-20, -15, 0), (25, -10, 5), (0, 25, -5), (10, 5, 15)):
        p = tuple(centre + offset)
        landmarks.place_fixed(p)
        landmarks.place_moving(window.current_transform().TransformPoint(tuple(np.asarray(p) + (1.5, -1.0, 0.5))))
    landmarks.set_apply_live(True)
    landmarks.wait_for_fit()
    wait(lambda: window.workspace.history.undo_text == "Landmark fit")
    save(window, "03_landmark_fit_applied")

    session = window.session_controller.save_session(out / "workspace.rvsession.json")
    before = window.current_transform()
    window.close()
    settle(200)

    window = make()
    window.session_controller.open_session(session)
    window.apply_layout("single", "axial")
    window.overlay.set_mode("checkerboard")
    window.manual_dock.raise_()
    probe = tuple(float(c) for c in window.fixed_volume().center_physical())
    same = np.allclose(window.current_transform().TransformPoint(probe), before.TransformPoint(probe), atol=1e-6)
    print(f"reopened: transform back {same}, {len(window.panels['LandmarkDock'].landmark_set())} landmark pairs, "
          f"{len(window.panels['LiveRegistrationDock'].history)} runs, "
          f"source {window.workspace.source.describe()}")
    save(window, "04_reopened")
    edit_menu = next(m for m in window.menuBar().findChildren(QtWidgets.QMenu) if window.undo_action in m.actions())
    edit_menu.popup(window.mapToGlobal(window.menuBar().geometry().bottomLeft()))
    settle(300)
    edit_menu.grab().save(str(out / "04b_edit_menu.png"))  # the Edit menu names the step Ctrl+Z reverts
    print("wrote", out / "04b_edit_menu.png")
    edit_menu.hide()
    window.raise_()
    window.activateWindow()  # Xvfb has no window manager: keys reach the active window only
    wait(lambda: app.activeWindow() is window, timeout=5.0)
    step = 0
    while window.workspace.history.can_undo and step < 60:
        label = window.undo_action.text()
        print(f"step {step:2d}: {label:40s} fields match the image: {fields_match(window)}")
        if step == 0 or label in ("Undo Add landmark L1", "Undo Move moving image") or label.startswith("Undo Apply"):
            save(window, f"05_undo_{step:02d}_{label.split(' ', 1)[1].replace(' ', '_')}")
        depth = len(window.workspace.history)
        QTest.keyClick(window.visible_slice_views()[0], QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
        settle(100)
        if len(window.workspace.history) == depth:
            print("Ctrl+Z did not reach the window (no active window?); stopping")
            return 1
        step += 1
    print(f"step {step:2d}: (nothing left to undo)          fields match the image: {fields_match(window)}")
    save(window, f"05_undo_{step:02d}_start")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
