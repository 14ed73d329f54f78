#!/usr/bin/env python
"""Save a PNG of the real window per overlay mode and per layout (demo brain pair),
plus the 2D retina pair and a landmark picture.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py [--out DIR]

Without a display it re-runs itself under xvfb-run (the 3D view needs X + OpenGL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "screenshots"), help="folder for the PNGs")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM", "xcb") == "xcb":
        if shutil.which("xvfb-run") is None:
            print("screenshot.py: no display and no xvfb-run", file=sys.stderr)
            return 2
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, "--out", args.out]
        return subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    os.environ.setdefault("REGVIEWER_RECOVERY_DIR", str(Path(args.out) / ".recovery"))

    from PyQt6 import QtWidgets

    from regviewer.core.imaging.composite import OVERLAY_MODES
    from regviewer.core.resources import demo_dir
    from regviewer.gui.file_actions import grab_with_3d
    from regviewer.gui.main_window import MainWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    demo = demo_dir()

    def settle(ms: int = 300) -> None:
        from PyQt6.QtTest import QTest

        for _ in range(max(1, ms // 20)):
            app.processEvents()
            QTest.qWait(20)

    def save(window, name: str) -> None:
        settle()
        path = out / f"{name}.png"
        grab_with_3d(window).save(str(path))
        print(path)

    window = MainWindow(sessions=False, panels=True)
    window.resize(1600, 1000)
    window.show()
    window.open_images(str(demo / "brain_t1_fixed.nii.gz"), str(demo / "brain_t2like_moving.nii.gz"))
    settle(800)
    for mode in OVERLAY_MODES:
        window.apply_layout("1x3+3d")
        window.overlay.set_mode(mode)
        if mode == "checkerboard":
            window.overlay.set_parameter(square_mm=16.0)
        save(window, f"overlay_{mode}")
    window.overlay.set_mode("blend")
    for layout, orientation in (("1x3+3d", None), ("single", "coronal"), ("side_by_side", "axial")):
        window.apply_layout(layout, orientation)
        save(window, f"layout_{layout.replace('+', '_')}")

    # landmarks: three pairs, side by side, table and markers visible
    dock = getattr(window, "panels", {}).get("LandmarkDock")
    if dock is not None:
        window.apply_layout("side_by_side", "axial")
        window.set_interaction_mode("landmark")
        fixed_view, moving_view = window.visible_slice_views()
        for col, row in ((30, 40), (62, 45), (47, 80)):
            dock.place_fixed(fixed_view.to_physical(col, row))
            dock.place_moving(moving_view.to_physical(col + 4, row + 3))
        dock.raise_()
        save(window, "landmarks_side_by_side")

    window.close()
    window = MainWindow(sessions=False, panels=True)
    window.resize(1600, 1000)
    window.show()
    window.open_images(str(demo / "retina_fixed.png"), str(demo / "retina_moving.png"))
    window.overlay.set_mode("checkerboard")
    window.overlay.set_parameter(square_mm=40.0)
    save(window, "retina_2d_checkerboard")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
