"""Application start-up: a minimal window showing the two images side by side.

Placeholder until the main window lands; keeps `scripts/run-demo` working.
"""

from __future__ import annotations

import sys


def run_app(fixed: str | None = None, moving: str | None = None, session: str | None = None,
            screenshot: str | None = None) -> int:
    import numpy as np
    import pyqtgraph as pg
    from PyQt6 import QtCore, QtWidgets

    from ..core.errors import RegviewerError
    from ..core.io import read_image
    from ..core.slicing import planes_for, reslice

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = QtWidgets.QMainWindow()
    window.setWindowTitle("regviewer")
    layout_widget = pg.GraphicsLayoutWidget()
    window.setCentralWidget(layout_widget)
    window.resize(1200, 600)
    for path in (fixed, moving):
        if not path:
            continue
        try:
            vol = read_image(path)
        except RegviewerError as exc:
            QtWidgets.QMessageBox.critical(window, "regviewer", str(exc))
            continue
        plane = planes_for(vol)["axial"]
        arr = reslice(vol.sitk, plane, plane.depth_of(vol.center_physical()))
        view = layout_widget.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(np.swapaxes(arr, 0, 1))
        if not vol.is_rgb:
            w, l = vol.default_window_level()
            item.setLevels((l - w / 2, l + w / 2))
        view.addItem(item)
    window.show()
    if screenshot:
        def grab() -> None:
            window.grab().save(screenshot)
            app.quit()

        QtCore.QTimer.singleShot(500, grab)
    return app.exec()
