#!/usr/bin/env python
"""Screenshots of the real window taken while a registration runs (checkerboard, bent grid, metric plot).

Run under Xvfb (the 3D view needs the xcb platform; without a display the script
re-runs itself under xvfb-run):

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
        .venv/bin/python scripts/screenshot_live.py --out screenshots/live

Writes `live_brain_affine.png` (during the affine stage), `live_brain_bspline.png` (during
the B-spline stage: grid bending, control points), `live_brain_done.png` (finished, History
tab) and `live_retina.png` (2D pair) into --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import dataclasses as dc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _wait(app, condition, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.005)
    return False


def _shot(app, window, path: Path) -> None:
    """The X screen as a user sees it (imagemagick `import`: includes the OpenGL 3D view,
    which `QWidget.grab()` cannot read back), else the window's own grab with the 3D view read from VTK."""
    for _ in range(5):
        app.processEvents()
        time.sleep(0.02)
    if os.environ.get("DISPLAY") and shutil.which("import"):
        geometry = window.frameGeometry()
        crop = f"{geometry.width()}x{geometry.height()}+{max(geometry.x(), 0)}+{max(geometry.y(), 0)}"
        done = subprocess.run(["import", "-window", "root", "-crop", crop, str(path)], capture_output=True)
        if done.returncode == 0:
            print("wrote", path)
            return
    from regviewer.gui.file_actions import grab_with_3d

    grab_with_3d(window).save(str(path))  # the 3D view painted from its own frame buffer
    print("wrote", path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots" / "live"))
    parser.add_argument("--full", action="store_true", help="run the preset's full iteration counts")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):  # the 3D view needs X + OpenGL
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__, "--out", args.out]
        env = dict(os.environ, QT_QPA_PLATFORM="xcb")
        return subprocess.call(cmd + (["--full"] if args.full else []), env=env)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PyQt6 import QtCore, QtWidgets

    from regviewer.core.registration.presets import load_preset
    from regviewer.core.resources import demo_dir
    from regviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    demo = demo_dir()

    # --- 3D brain: affine + B-spline preset -------------------------------------------------
    window = MainWindow(sessions=False)
    window.resize(1600, 1000)
    window.show()
    if not window.open_images(str(demo / "brain_t1_fixed.nii.gz"), str(demo / "brain_t2like_moving.nii.gz")):
        print("could not open the demo brain:", window.last_error)
        return 1
    dock = window.panels["LiveRegistrationDock"]
    dock.raise_()
    window.resizeDocks([dock], [560], QtCore.Qt.Orientation.Horizontal)
    dock.set_mask("fixed", str(demo / "brain_mask_fixed.nii.gz"))
    dock.params.choose_preset("affine-bspline-mi")
    if not args.full:  # same stages, fewer iterations, so the "finished" shot comes in minutes
        pipeline = dock.params.pipeline()
        stages = tuple(dc.replace(s, optimizer=dc.replace(s.optimizer, iterations=min(s.optimizer.iterations, 60)))
                       for s in pipeline.stages)
        dock.params.set_pipeline(dc.replace(pipeline, stages=stages))
    dock.run()
    _wait(app, lambda: dock.plot.n_points > 45 or not dock.is_running(), 120)
    _shot(app, window, out / "live_brain_affine.png")
    _wait(app, lambda: dock.status.text().startswith("Stage 2") or not dock.is_running(), 300)
    at_stage2 = dock.plot.n_points
    _wait(app, lambda: dock.plot.n_points > at_stage2 + 20 or not dock.is_running(), 300)
    _shot(app, window, out / "live_brain_bspline.png")
    _wait(app, lambda: not dock.is_running(), 1800)
    _wait(app, lambda: False, 0.5)
    dock.tabs.setCurrentIndex(2)
    _shot(app, window, out / "live_brain_done.png")
    window.close()

    # --- 2D retina --------------------------------------------------------------------------
    window = MainWindow(sessions=False)
    window.resize(1400, 900)
    window.show()
    window.open_images(str(demo / "retina_fixed.png"), str(demo / "retina_moving.png"))
    dock = window.panels["LiveRegistrationDock"]
    dock.raise_()
    pipeline = load_preset("photo-2d")
    dock.params.set_pipeline(pipeline, preset="photo-2d")
    dock.run()
    _wait(app, lambda: dock.plot.n_points > 250 or not dock.is_running(), 120)
    _shot(app, window, out / "live_retina.png")
    dock.cancel()
    _wait(app, lambda: not dock.is_running(), 10)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
