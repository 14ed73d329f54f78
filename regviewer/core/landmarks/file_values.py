"""Reading one value from a landmark file: every parser's checks and error messages in one place.

Each helper raises `LandmarkFileError` naming the file, the line (when known) and what is wrong,
so a malformed file never surfaces as a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from regviewer.core.errors import LandmarkFileError

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def read_text(path: Path) -> str:
    if not path.exists():
        raise LandmarkFileError(path, "the file does not exist")
    if path.is_dir():
        raise LandmarkFileError(path, "it is a folder, not a file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LandmarkFileError(path, "it is not a text file") from None
    except OSError as exc:
        raise LandmarkFileError(path, exc.strerror or str(exc)) from None


def number(path: Path, text: str, line: int | None, what: str, allow_infinite: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a number", line) from None
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}; coordinates must be finite numbers", line)
    return value


def flag(path: Path, text: str, line: int | None, what: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise LandmarkFileError(path, f"{what} is {text!r}; use true or false", line)


def weight(path: Path, text: str, line: int | None) -> float:
    if text.strip() == "":
        return 1.0
    value = number(path, text, line, "the weight")
    if value < 0:
        raise LandmarkFileError(path, f"the weight {value} is negative", line)
    return value


def load_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise LandmarkFileError(path, f"it is not valid JSON ({exc.msg})", exc.lineno) from None
    except RecursionError:
        raise LandmarkFileError(path, "its JSON is nested too deeply to be a landmark file") from None


def num(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same double


__all__ = ["read_text", "number", "flag", "weight", "load_json", "num"]
