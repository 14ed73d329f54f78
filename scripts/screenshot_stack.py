#!/usr/bin/env python3
"""Screenshot of the stack window on a stack cut from the MNI volume (see bench_stack.py),
with one section made unreadable, after the alignment has finished: the Landmarks tab with
a few pairs fitted on one section (`--tab overlay` for the overlay instead) and the 3D view.

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_stack.py --out stack.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--mode", default="checkerboard")
    ap.add_argument("--tab", choices=("landmarks", "overlay"), default="landmarks")
    args = ap.parse_args()
    import bench_stack
    from PyQt6 import QtCore, QtGui, QtWidgets

    from regviewer.gui.stack.stack_window import StackWindow

    app = QtWidgets.QApplication([])
    planes, _ = bench_stack.coronal_planes(args.n, 4)
    folder = Path(tempfile.mkdtemp())
    bench_stack.make_stack(planes, folder, 15, 15, 0)
    (folder / f"s{args.n // 2 - 1}.png").write_bytes(b"broken")
    window = StackWindow(folder)
    window.show()
    loop = QtCore.QEventLoop()
    window.runner.finished.connect(lambda _r: QtCore.QTimer.singleShot(300, loop.quit))
    window.runner.failed.connect(lambda message: (print(message), loop.quit()))
    loop.exec()
    window.slider.setValue(args.n // 2 + 1)
    window.mode_box.setCurrentText(args.mode)
    if args.tab == "landmarks":
        tool = window.landmark_tool
        window.tabs.setCurrentWidget(tool)
        app.processEvents()
        h, w = window.model.shape
        for fx, fy, mx, my in ((0.3, 0.35, 0.31, 0.36), (0.7, 0.35, 0.71, 0.34), (0.5, 0.75, 0.5, 0.77),
                               (0.28, 0.62, 0.27, 0.63), (0.72, 0.6, 0.74, 0.61)):
            tool.place("fixed", fx * w, fy * h)
            tool.place("moving", mx * w, my * h)
        window.jobs.wait("stack-landmark-fit")
    window.volume3d.flush()
    for _ in range(20):
        app.processEvents()
        QtCore.QThread.msleep(20)
    shot = window.grab()
    view = window.volume3d.view
    if view is not None:  # an OpenGL widget grabs as black: paint VTK's own picture in its place
        picture = view.snapshot()
        if picture is not None:
            painter = QtGui.QPainter(shot)
            top_left = view.mapTo(window, QtCore.QPoint(0, 0))
            painter.drawImage(QtCore.QRect(top_left, view.size()), picture)
            painter.end()
    shot.save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
