"""Where bundled resources (presets, demo data, icons) live.

In a source checkout (and an editable install) that is the top-level `resources/`
folder; `REGVIEWER_RESOURCES` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    env = os.environ.get("REGVIEWER_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "resources"


def presets_dir() -> Path:
    return resources_dir() / "presets"


def demo_dir() -> Path:
    return resources_dir() / "demo"
