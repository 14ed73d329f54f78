#!/usr/bin/env python
"""Save a PNG of the Registration panel's parameters for a preset, Advanced open: every field
of a stage as the window shows it (the form is built from the parameter dataclasses).

    .venv/bin/python scripts/screenshot_params.py [--preset affine-mi] [--out params.png]

Renders offscreen: no display needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="affine-mi")
    parser.add_argument("--out", default="params.png")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt6 import QtWidgets

    from regviewer.gui.widgets.params_panel import ParamsPanel

    app = QtWidgets.QApplication([])
    panel = ParamsPanel()
    panel.choose_preset(args.preset)
    panel.advanced_toggle.setChecked(True)
    panel.resize(460, panel.sizeHint().height() + 400)
    panel.show()
    app.processEvents()
    panel.grab().save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
