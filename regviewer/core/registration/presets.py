"""Named parameter sets ("presets"), stored as JSON in `resources/presets/<name>.json`.

A preset file is a `Pipeline` in JSON (see `params.py`); its `description` is the
one line shown in menus and `regviewer register --help`. The `auto` presets' files
are templates: `register()` replaces an unchanged one by the pipeline `auto.py`
builds for the pair at hand.
"""

from __future__ import annotations

from pathlib import Path

from regviewer.core.errors import ParameterError
from regviewer.core.registration.params import Pipeline
from regviewer.core.resources import presets_dir

DEFAULT_PRESET = "auto"  # the one place the default is named: window, CLI, Python API, batch
AUTO_PRESET_NAMES = ("auto", "auto-deformable")  # resolved against the images at run time (see auto.py)
NAMED_PRESETS = ("rigid", "rigid-mi", "affine-mi", "affine-bspline-mi", "demons", "photo-2d")
PRESET_NAMES = AUTO_PRESET_NAMES + NAMED_PRESETS


def _files() -> dict[str, Path]:
    folder = presets_dir()
    return {p.stem: p for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every bundled preset, the standard ones first."""
    files = _files()
    order = [n for n in PRESET_NAMES if n in files] + sorted(n for n in files if n not in PRESET_NAMES)
    return [(name, load_preset(name).description) for name in order]


def load_preset(name: str) -> Pipeline:
    """The `Pipeline` stored under `name`; `ParameterError` listing the known names otherwise."""
    files = _files()
    path = files.get(name)
    if path is None:
        known = ", ".join(files) or "none found in " + str(presets_dir())
        raise ParameterError(f"There is no preset called '{name}'. Known presets: {known}")
    try:
        pipeline = Pipeline.from_json(path.read_text(encoding="utf-8"))
        pipeline.validate()
    except ParameterError as exc:
        raise ParameterError(f"Preset file '{path}' is invalid: {exc}") from None
    return pipeline


__all__ = ["list_presets", "load_preset", "PRESET_NAMES", "DEFAULT_PRESET", "AUTO_PRESET_NAMES", "NAMED_PRESETS"]
