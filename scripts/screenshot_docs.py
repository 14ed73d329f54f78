#!/usr/bin/env python
"""Regenerate the README's pictures (small PNGs under docs/) from the real window on the
bundled demo data: the window, overlay modes, the Fixed | Moving layout with each image in
its own space, landmark picking, a region of interest, a live run with the bending grid,
and the QA dock.

    .venv/bin/python scripts/screenshot_docs.py [--out docs] [--only NAME,...] [--no-live]

Without a display it re-runs itself under xvfb-run (the 3D view needs X + OpenGL).
Each PNG is scaled to at most --width pixels and colour-quantised (Pillow) to stay small.
"""

from __future__ import annotations

import argparse
import dataclasses as dc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHOTS = ("window", "overlay_modes", "fixed_moving", "landmark_picking", "roi", "live_grid", "qa_dock")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument("--only", default=",".join(SHOTS), help="comma-separated subset of " + ", ".join(SHOTS))
    parser.add_argument("--no-live", action="store_true", help="skip the live-run and QA pictures (minutes)")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            print("screenshot_docs.py: no display and no xvfb-run", file=sys.stderr)
            return 2
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, __file__] + sys.argv[1:]
        return subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    os.environ.setdefault("REGVIEWER_RECOVERY_DIR", tempfile.mkdtemp(prefix="regviewer-shots-"))
    os.environ.setdefault("REGVIEWER_ROI_DIR", tempfile.mkdtemp(prefix="regviewer-roi-"))
    wanted = set(args.only.split(","))
    if args.no_live:
        wanted -= {"live_grid", "qa_dock"}

    import numpy as np
    import SimpleITK as sitk
    from PIL import Image
    from PyQt6 import QtCore, QtGui, QtWidgets
    from PyQt6.QtTest import QTest

    from regviewer.core.resources import demo_dir
    from regviewer.gui.file_actions import grab_with_3d
    from regviewer.gui.main_window import MainWindow

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    demo = demo_dir()
    truth = sitk.ReadTransform(str(demo / "brain_true_affine.tfm"))

    def settle(ms: int = 300) -> None:
        for _ in range(max(1, ms // 20)):
            app.processEvents()
            QTest.qWait(20)

    def write(pixmap: QtGui.QPixmap, name: str, width: int | None = None) -> None:
        image = pixmap.toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
        w, h = image.width(), image.height()
        arr = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
        arr = arr.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3)
        pil = Image.fromarray(arr)
        width = width or args.width
        if w > width:
            pil = pil.resize((width, round(h * width / w)), Image.Resampling.LANCZOS)
        path = out / f"{name}.png"
        pil.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        print(f"{path}  {path.stat().st_size // 1024} KB")

    def shot(window, name: str, ms: int = 400) -> None:
        settle(ms)
        write(grab_with_3d(window), name)

    def new_window(panels: bool = True) -> MainWindow:
        window = MainWindow(sessions=False, panels=panels)
        window.resize(1500, 900)
        window.show()
        window.open_images(str(demo / "brain_t1_fixed.nii.gz"), str(demo / "brain_t2like_moving.nii.gz"))
        settle(600)
        return window

    window = new_window()
    if "window" in wanted:
        window.overlay.set_mode("checkerboard")
        window.overlay.set_parameter(square_mm=16.0)
        window.set_current_transform(truth, "demo: the true affine")
        window.panels["LiveRegistrationDock"].raise_()
        shot(window, "window", 800)
        window.undo_transform()

    if "overlay_modes" in wanted:  # four modes of one axial view, side by side
        window.apply_layout("single", "axial")
        tiles = []
        for mode, extra in (("checkerboard", {"square_mm": 16.0}), ("difference", {}), ("fusion", {}), ("curtain", {})):
            window.overlay.set_mode(mode)
            if extra:
                window.overlay.set_parameter(**extra)
            settle(300)
            tiles.append((mode, window.views_widget().grab()))
        w, h = tiles[0][1].width(), tiles[0][1].height()
        canvas = QtGui.QPixmap(w * 2, h * 2)
        painter = QtGui.QPainter(canvas)
        painter.setPen(QtGui.QColor(255, 210, 77))
        painter.setFont(QtGui.QFont("Sans", 22, QtGui.QFont.Weight.Bold))
        for k, (mode, pix) in enumerate(tiles):
            x, y = (k % 2) * w, (k // 2) * h
            painter.drawPixmap(x, y, pix)
            painter.drawText(x + 16, y + h - 20, mode)
        painter.end()
        write(canvas, "overlay_modes", width=760)
        window.overlay.set_mode("blend")

    dock = window.panels["LandmarkDock"]
    if "fixed_moving" in wanted:  # each image in its own space: different planes, unlinked
        window.apply_layout("side_by_side", "axial")
        window.moving_space.set_linked(False)
        window.moving_space.set_orientation("coronal")
        moving_view = window.visible_slice_views()[1]
        for _ in range(6):
            moving_view.step_slice(1)
        moving_view.view_box.scaleBy((0.7, 0.7))
        shot(window, "fixed_moving")
        window.moving_space.set_orientation("as fixed")
        moving_view.reset_zoom()
        window.moving_space.set_linked(True)

    if "landmark_picking" in wanted:  # five pairs placed, the sixth's fixed point clicked
        window.apply_layout("side_by_side", "axial")
        window.set_interaction_mode("landmark")
        dock.raise_()
        fixed_view, moving_view = window.visible_slice_views()
        fixed = sitk.ReadImage(str(demo / "brain_t1_fixed.nii.gz"))
        offsets = [(-18, -22, -6), (18, -22, -2), (-18, 22, 2), (18, 22, -4), (0, -30, 4), (14, 14, 0)]
        for k, (di, dj, dk) in enumerate(offsets):
            p = fixed.TransformContinuousIndexToPhysicalPoint((49.0 + di, 58.0 + dj, 45.0 + dk))
            window.center_on(p)
            fixed_view.clicked.emit(p, "fixed", QtCore.Qt.KeyboardModifier.NoModifier)
            if k < len(offsets) - 1:  # the true point, give or take a click's noise
                q = np.asarray(truth.TransformPoint(p)) + np.random.default_rng(k).normal(0.0, 0.7, 3)
                moving_view.clicked.emit(tuple(q), "moving", QtCore.Qt.KeyboardModifier.NoModifier)
        dock.wait_for_fit()
        shot(window, "landmark_picking")
        dock.landmark_set().clear()

    roi = getattr(window, "roi", None)
    if "roi" in wanted and roi is not None:
        window.apply_layout("1x3+3d")
        window.set_interaction_mode("roi")
        window.overlay.set_mode("blend")
        view = window.view("overlay", "axial")
        rows, cols = view.plane.shape
        roi.set_box(view.to_physical(cols * 0.3, rows * 0.3), view.to_physical(cols * 0.7, rows * 0.65),
                    thickness_mm=40.0)
        panel = getattr(window, "panels", {}).get("LiveRegistrationDock")
        if panel is not None:
            panel.raise_()
        shot(window, "roi", 800)
        roi.clear()
    window.close()

    if wanted & {"live_grid", "qa_dock"}:
        window = new_window()
        live = window.panels["LiveRegistrationDock"]
        live.raise_()
        window.resizeDocks([live], [520], QtCore.Qt.Orientation.Horizontal)
        live.set_mask("fixed", str(demo / "brain_mask_fixed.nii.gz"))
        live.params.choose_preset("affine-bspline-mi")
        pipeline = live.params.pipeline()
        stages = tuple(dc.replace(s, optimizer=dc.replace(s.optimizer, iterations=min(s.optimizer.iterations, 40)))
                       for s in pipeline.stages)
        live.params.set_pipeline(dc.replace(pipeline, stages=stages))
        window.overlay.set_mode("checkerboard")
        window.overlay.set_parameter(square_mm=16.0)
        live.run()

        def wait(condition, timeout: float) -> None:
            end = time.perf_counter() + timeout
            while time.perf_counter() < end and not condition():
                app.processEvents()
                time.sleep(0.01)

        wait(lambda: live.status.text().startswith("Stage 2") or not live.is_running(), 600)
        at_stage2 = live.plot.n_points
        wait(lambda: live.plot.n_points > at_stage2 + 15 or not live.is_running(), 600)
        if "live_grid" in wanted:
            shot(window, "live_grid", 200)
        wait(lambda: not live.is_running() and live.apply_button.isEnabled(), 1800)  # the result arrived
        if "qa_dock" in wanted:
            live.apply()
            qa = window.panels.get("QADock")
            if qa is not None:
                qa.set_mask(str(demo / "brain_mask_fixed.nii.gz"))
                qa.raise_()
                settle(300)
                qa.evaluate()
                wait(lambda: not qa.busy(), 120)
                shot(window, "qa_dock", 600)
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
