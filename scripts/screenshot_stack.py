#!/usr/bin/env python3
"""Screenshot of the stack window on a stack cut from the MNI volume (see bench_stack.py),
with one section made unreadable, after the alignment has finished.

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
    args = ap.parse_args()
    import bench_stack
    from PyQt6 import QtCore, QtWidgets

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
    app.processEvents()
    window.grab().save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
