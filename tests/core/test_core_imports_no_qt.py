"""`regviewer.core` must import (and work) with the GUI libraries unavailable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_core_module_imports_with_gui_libraries_blocked():
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PyQt6", "pyqtgraph", "vtk", "vtkmodules", "PySide6"):
                    raise ImportError(f"{name} is blocked for this test")
                return None

        sys.meta_path.insert(0, Block())
        import regviewer.core
        names = [m.name for m in pkgutil.walk_packages(regviewer.core.__path__, "regviewer.core.")]
        for name in names:
            importlib.import_module(name)
        import regviewer
        loaded = [m for m in sys.modules if m.split(".")[0] in ("PyQt6", "pyqtgraph", "vtk", "vtkmodules")]
        assert not loaded, loaded
        print("imported", len(names), "core modules")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
