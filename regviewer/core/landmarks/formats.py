"""Landmark files: reading and writing every format users already have.

Points inside regviewer are physical LPS millimetres. Slicer files, the only ones that may be
RAS, are read and written by `slicer_files`, the one place where RAS = (-L, -P, S) is converted.

Formats (``format=`` name, suffix)
  "csv"      ``.csv``  ours: header ``name,enabled,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z``
             (2D: no ``_z`` columns; optional trailing ``weight`` column), LPS mm, one
             pair per row; an empty point (all its cells blank) is a half-made pair.
  "bigwarp"  ``.csv`` without a header: ``name,active,mx,my[,mz],fx,fy[,fz]`` — the
             MOVING point first, as BigWarp writes it; ``Infinity`` marks a point not
             placed yet. Coordinates are taken as physical mm as they are (BigWarp's
             world space is the image's calibrated axes; right for images with an
             identity direction, e.g. TIFF/PNG).
  "slicer"   ``.mrk.json`` 3D Slicer markups, one file per image (`path` fixed,
             `moving_path` moving); pairs matched by label (or by order). Honours
             ``coordinateSystem`` "LPS"/"RAS"; writes LPS unless told otherwise;
             ``positionStatus: undefined`` is a point not placed yet.
  "fcsv"     ``.fcsv`` legacy Slicer markups, one file per image; honours the
             ``# CoordinateSystem`` header (0 or RAS, 1 or LPS; RAS when absent).
  "json"     ``.json`` regviewer's own JSON (the session's landmark data).

Weights other than 1 survive Slicer files in the point description
(``regviewer-weight=0.5``); BigWarp files cannot carry them. Reading never drops a
point silently: any malformed row raises `LandmarkFileError` with the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import ImageWriteError, LandmarkFileError
from regviewer.core.landmarks.file_values import flag, load_json, num, number, read_text, weight
from regviewer.core.landmarks.slicer_files import fcsv_text, pair_up, read_fcsv, read_slicer_json, slicer_json_text

FORMATS = ("csv", "bigwarp", "slicer", "fcsv", "json")
Record = dict[str, Any]  # name, fixed, moving, enabled, weight (the LandmarkPair fields)



def detect_format(path: str | Path) -> str:
    """The format name for a path (by suffix; a .csv is ours when its first cell is 'name')."""
    name = Path(path).name.lower()
    if name.endswith(".mrk.json"):
        return "slicer"
    if name.endswith(".fcsv"):
        return "fcsv"
    if name.endswith(".json"):
        return "json"
    if name.endswith((".csv", ".txt")):
        p = Path(path)
        if p.exists():
            text = read_text(p).lstrip()
            if not text:
                raise LandmarkFileError(p, "the file is empty")
            first = text.split("\n", 1)[0]
            return "csv" if first.strip().strip('"').lower().startswith("name") else "bigwarp"
        return "csv"
    if name.endswith((".tfm", ".h5", ".hdf5", ".mat")):
        raise LandmarkFileError(path, "it is a transform file, not landmarks; fit a model and use "
                                "LandmarkFit.save_transform to write one")
    raise LandmarkFileError(path, f"unknown landmark format '{Path(path).suffix}'; use .csv, .mrk.json, .fcsv or .json")


# --- reading ------------------------------------------------------------------------------------
def read_landmarks(path: str | Path, moving_path: str | Path | None = None, *, format: str | None = None,
                   match: str = "label") -> tuple[int, list[Record]]:
    """(dimension, pair records) from a landmark file, points in LPS mm. See the module doc."""
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise LandmarkFileError(path, f"unknown landmark format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if match not in ("label", "order"):
        raise LandmarkFileError(path, f"pairs are matched by 'label' or 'order', not {match!r}")
    try:
        return _read_any(path, moving_path, fmt, match)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        # A malformed file can trip any check; the user gets the file and the reason, never a traceback.
        raise LandmarkFileError(path, f"it is malformed ({type(exc).__name__}: {str(exc)[:200]})") from None


def _read_any(path: str | Path, moving_path: str | Path | None, fmt: str, match: str) -> tuple[int, list[Record]]:
    if fmt in ("slicer", "fcsv"):
        reader = read_slicer_json if fmt == "slicer" else read_fcsv
        fixed_points = reader(Path(path))
        moving_points = reader(Path(moving_path)) if moving_path is not None else None
        return 3, pair_up(path, moving_path, fixed_points, moving_points, match)
    if moving_path is not None:
        raise LandmarkFileError(moving_path, f"a {fmt} file holds both images' points; give only one file")
    return {"csv": _read_csv, "bigwarp": _read_bigwarp, "json": _read_json}[fmt](Path(path))








def _point(path: Path, cells: Sequence[str], line: int, what: str) -> tuple[float, ...] | None:
    """A point from its coordinate cells; all blank = not placed (None); partly blank = error."""
    blank = [c.strip() == "" for c in cells]
    if all(blank):
        return None
    if any(blank):
        raise LandmarkFileError(path, f"the {what} point has some coordinates blank but not all", line)
    return tuple(number(path, c, line, f"a {what} coordinate") for c in cells)


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, cells) of each non-empty, non-comment CSV row."""
    reader = csv.reader(io.StringIO(read_text(path)))
    try:
        for cells in reader:
            if not cells or all(c.strip() == "" for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            yield reader.line_num, cells
    except csv.Error as exc:
        raise LandmarkFileError(path, f"it is not valid CSV ({exc})", reader.line_num) from None


def _read_csv(path: Path) -> tuple[int, list[Record]]:
    rows = iter(_rows(path))
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise LandmarkFileError(path, "the file is empty; expected a header line "
                                "'name,enabled,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z'") from None
    columns = [h.strip().lower() for h in header]
    dimension = 3 if "fixed_z" in columns or "moving_z" in columns else 2
    axes = "xyz"[:dimension]
    needed = ["name"] + [f"{role}_{a}" for role in ("fixed", "moving") for a in axes]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise LandmarkFileError(path, f"the header lacks the column(s) {', '.join(missing)} "
                                f"(it has: {', '.join(columns)})", header_line)
    where = {c: columns.index(c) for c in columns}
    records: list[Record] = _Records()
    for line, cells in rows:
        if len(cells) != len(columns):
            raise LandmarkFileError(path, f"expected {len(columns)} values as in the header, found {len(cells)}", line)
        name = cells[where["name"]].strip()
        if not name:
            raise LandmarkFileError(path, "the landmark has no name", line)
        record = {
            "name": name,
            "fixed": _point(path, [cells[where[f"fixed_{a}"]] for a in axes], line, "fixed"),
            "moving": _point(path, [cells[where[f"moving_{a}"]] for a in axes], line, "moving"),
            "enabled": flag(path, cells[where["enabled"]], line, "'enabled'") if "enabled" in where else True,
            "weight": weight(path, cells[where["weight"]], line) if "weight" in where else 1.0,
        }
        _add_unique(path, records, record, line)
    return dimension, records




class _Records(list):
    """Records plus the set of their names, so the uniqueness check stays O(1)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()


def _add_unique(path: Path, records: list[Record], record: Record, line: int | None) -> None:
    names = records.names if isinstance(records, _Records) else {r["name"] for r in records}
    if record["name"] in names:
        raise LandmarkFileError(path, f"the name {record['name']!r} appears twice; landmark names must be unique", line)
    records.append(record)
    names.add(record["name"])


def _read_bigwarp(path: Path) -> tuple[int, list[Record]]:
    records: list[Record] = _Records()
    dimension = None
    for line, cells in _rows(path):
        if len(cells) not in (6, 8):
            raise LandmarkFileError(path, f"a BigWarp row has 6 (2D) or 8 (3D) values: name, active, moving point, "
                                    f"fixed point; found {len(cells)}", line)
        d = (len(cells) - 2) // 2
        if dimension is None:
            dimension = d
        elif d != dimension:
            raise LandmarkFileError(path, f"this row is {d}D but the rows above are {dimension}D", line)
        points = []
        for role, part in (("moving", cells[2:2 + d]), ("fixed", cells[2 + d:])):
            values = [number(path, c, line, f"a {role} coordinate", allow_infinite=True) for c in part]
            infinite = [math.isinf(v) for v in values]
            if any(infinite) and not all(infinite):
                raise LandmarkFileError(path, f"the {role} point is partly 'Infinity' (BigWarp's 'not placed')", line)
            points.append(None if all(infinite) else tuple(values))
        record = {"name": cells[0].strip(), "moving": points[0], "fixed": points[1],
                  "enabled": flag(path, cells[1], line, "'active'"), "weight": 1.0}
        if not record["name"]:
            raise LandmarkFileError(path, "the landmark has no name", line)
        _add_unique(path, records, record, line)
    return dimension or 3, records


def _read_json(path: Path) -> tuple[int, list[Record]]:
    data = load_json(path)
    try:
        dimension = int(data["dimension"])
        if dimension not in (2, 3) or data.get("coordinate_system", "LPS") != "LPS":
            raise ValueError("expected a 2D or 3D LPS landmark set")
        records: list[Record] = _Records()
        for k, p in enumerate(data["pairs"]):
            record = {
                "name": str(p["name"]),
                "fixed": _json_point(path, p.get("fixed"), dimension, f"pair {k + 1} fixed point"),
                "moving": _json_point(path, p.get("moving"), dimension, f"pair {k + 1} moving point"),
                "enabled": bool(p.get("enabled", True)),
                "weight": weight(path, str(p.get("weight", 1.0)), None),
            }
            _add_unique(path, records, record, None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LandmarkFileError(path, f"it is not a regviewer landmark file ({exc})") from None
    return dimension, records


def _json_point(path: Path, value: Any, dimension: int, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != dimension:
        raise LandmarkFileError(path, f"{what} must be a list of {dimension} numbers, not {value!r}")
    return tuple(number(path, str(v), None, f"a coordinate of the {what}") for v in value)
















# --- writing --------------------------------------------------------------------------------------------
def write_landmarks(pairs: Sequence[Any], dimension: int, path: str | Path, moving_path: str | Path | None = None, *,
                    format: str | None = None, coordinate_system: str = "LPS") -> None:
    """Write pairs (objects with name/fixed/moving/enabled/weight) atomically.

    `coordinate_system` ("LPS" or "RAS") applies to the Slicer formats only.
    """
    p = Path(path)
    try:
        fmt = format or (detect_format(p) if not p.name.lower().endswith((".csv", ".txt")) else "csv")
    except LandmarkFileError as exc:
        raise ImageWriteError(p, exc.problem) from None
    if fmt not in FORMATS:
        raise ImageWriteError(p, f"unknown landmark format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if coordinate_system not in ("LPS", "RAS"):
        raise ImageWriteError(p, f"coordinate_system must be 'LPS' or 'RAS', not {coordinate_system!r}")
    if fmt in ("slicer", "fcsv"):
        if moving_path is None and any(q.moving is not None for q in pairs):
            raise ImageWriteError(p, "Slicer markups hold one image's points per file; give moving_path "
                                  "for the moving image's points")
        writer = slicer_json_text if fmt == "slicer" else fcsv_text
        texts = [(p, writer(p, pairs, "fixed", dimension, coordinate_system))]
        if moving_path is not None:
            texts.append((Path(moving_path), writer(Path(moving_path), pairs, "moving", dimension, coordinate_system)))
    else:
        if moving_path is not None:
            raise ImageWriteError(moving_path, f"a {fmt} file holds both images' points; give only one path")
        text = {"csv": _csv_text, "bigwarp": _bigwarp_text, "json": _json_text}[fmt](p, pairs, dimension)
        texts = [(p, text)]
    for target, text in texts:
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            raise ImageWriteError(target, exc.strerror or str(exc)) from None




def _csv_text(path: Path, pairs: Sequence[Any], dimension: int) -> str:
    axes = "xyz"[:dimension]
    with_weight = any(q.weight != 1.0 for q in pairs)
    header = ["name", "enabled"] + [f"{r}_{a}" for r in ("fixed", "moving") for a in axes] + (["weight"] if with_weight else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for q in pairs:
        row = [q.name, "true" if q.enabled else "false"]
        for point in (q.fixed, q.moving):
            row += [""] * dimension if point is None else [num(v) for v in point]
        writer.writerow(row + ([num(q.weight)] if with_weight else []))
    return out.getvalue()


def _bigwarp_text(path: Path, pairs: Sequence[Any], dimension: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for q in pairs:
        row = [q.name, "true" if q.enabled else "false"]
        for point in (q.moving, q.fixed):  # BigWarp: moving first
            row += ["Infinity"] * dimension if point is None else [num(v) for v in point]
        writer.writerow(row)
    return out.getvalue()


def _json_text(path: Path, pairs: Sequence[Any], dimension: int) -> str:
    data = {
        "format": "regviewer-landmarks", "version": 1, "coordinate_system": "LPS", "units": "mm",
        "note": "pairs of points: fixed image -> moving image", "dimension": dimension,
        "pairs": [{"name": q.name, "fixed": None if q.fixed is None else list(q.fixed),
                   "moving": None if q.moving is None else list(q.moving), "enabled": q.enabled, "weight": q.weight}
                  for q in pairs],
    }
    return json.dumps(data, indent=1) + "\n"








__all__ = ["FORMATS", "detect_format", "read_landmarks", "write_landmarks"]
