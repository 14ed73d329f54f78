"""Landmark files: reading and writing every format users already have.

Points inside regviewer are physical LPS millimetres. This module is the ONLY
place where another convention (Slicer's RAS) is converted: RAS = (-L, -P, S), so
the conversion flips the signs of x and y, both ways.

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
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import ImageWriteError, LandmarkFileError

FORMATS = ("csv", "bigwarp", "slicer", "fcsv", "json")
Record = dict[str, Any]  # name, fixed, moving, enabled, weight (the LandmarkPair fields)

_SLICER_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                  "Resources/Schema/markups-schema-v1.0.3.json#")
_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
_WEIGHT_RE = re.compile(r"regviewer-weight=([-+0-9.eE]+)")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


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
            text = _read_text(p).lstrip()
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
        reader = _read_slicer_json if fmt == "slicer" else _read_fcsv
        fixed_points = reader(Path(path))
        moving_points = reader(Path(moving_path)) if moving_path is not None else None
        return 3, _pair_up(path, moving_path, fixed_points, moving_points, match)
    if moving_path is not None:
        raise LandmarkFileError(moving_path, f"a {fmt} file holds both images' points; give only one file")
    return {"csv": _read_csv, "bigwarp": _read_bigwarp, "json": _read_json}[fmt](Path(path))


def _read_text(path: Path) -> str:
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


def _number(path: Path, text: str, line: int | None, what: str, allow_infinite: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}, not a number", line) from None
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        raise LandmarkFileError(path, f"{what} is {text.strip()!r}; coordinates must be finite numbers", line)
    return value


def _flag(path: Path, text: str, line: int | None, what: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise LandmarkFileError(path, f"{what} is {text!r}; use true or false", line)


def _point(path: Path, cells: Sequence[str], line: int, what: str) -> tuple[float, ...] | None:
    """A point from its coordinate cells; all blank = not placed (None); partly blank = error."""
    blank = [c.strip() == "" for c in cells]
    if all(blank):
        return None
    if any(blank):
        raise LandmarkFileError(path, f"the {what} point has some coordinates blank but not all", line)
    return tuple(_number(path, c, line, f"a {what} coordinate") for c in cells)


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, cells) of each non-empty, non-comment CSV row."""
    reader = csv.reader(io.StringIO(_read_text(path)))
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
            "enabled": _flag(path, cells[where["enabled"]], line, "'enabled'") if "enabled" in where else True,
            "weight": _weight(path, cells[where["weight"]], line) if "weight" in where else 1.0,
        }
        _add_unique(path, records, record, line)
    return dimension, records


def _weight(path: Path, text: str, line: int | None) -> float:
    if text.strip() == "":
        return 1.0
    value = _number(path, text, line, "the weight")
    if value < 0:
        raise LandmarkFileError(path, f"the weight {value} is negative", line)
    return value


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
            values = [_number(path, c, line, f"a {role} coordinate", allow_infinite=True) for c in part]
            infinite = [math.isinf(v) for v in values]
            if any(infinite) and not all(infinite):
                raise LandmarkFileError(path, f"the {role} point is partly 'Infinity' (BigWarp's 'not placed')", line)
            points.append(None if all(infinite) else tuple(values))
        record = {"name": cells[0].strip(), "moving": points[0], "fixed": points[1],
                  "enabled": _flag(path, cells[1], line, "'active'"), "weight": 1.0}
        if not record["name"]:
            raise LandmarkFileError(path, "the landmark has no name", line)
        _add_unique(path, records, record, line)
    return dimension or 3, records


def _read_json(path: Path) -> tuple[int, list[Record]]:
    data = _load_json(path)
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
                "weight": _weight(path, str(p.get("weight", 1.0)), None),
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
    return tuple(_number(path, str(v), None, f"a coordinate of the {what}") for v in value)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise LandmarkFileError(path, f"it is not valid JSON ({exc.msg})", exc.lineno) from None
    except RecursionError:
        raise LandmarkFileError(path, "its JSON is nested too deeply to be a landmark file") from None


# --- Slicer: one file per image ---------------------------------------------------------------------------
# A "Slicer point" here: (label, LPS point or None, selected, weight, line or None).
def _ras_lps(point: Sequence[float]) -> tuple[float, ...]:
    """RAS <-> LPS (its own inverse): negate the first two coordinates."""
    return (-point[0], -point[1]) + tuple(point[2:])


def _read_slicer_json(path: Path) -> list[tuple]:
    data = _load_json(path)
    lists = [m for m in data.get("markups", []) if isinstance(m, dict)] if isinstance(data, dict) else []
    if not lists:
        raise LandmarkFileError(path, "it is not a Slicer markups file (no 'markups' list)")
    if len(lists) > 1:
        raise LandmarkFileError(path, f"it holds {len(lists)} markups; save each image's points in a file of its own")
    markup = lists[0]
    system = str(markup.get("coordinateSystem", "LPS")).upper()
    if system not in ("LPS", "RAS"):
        raise LandmarkFileError(path, f"its coordinateSystem is {system!r}; only LPS and RAS are defined")
    units = str(markup.get("coordinateUnits", "mm"))
    if units != "mm":
        raise LandmarkFileError(path, f"its coordinateUnits is {units!r}; only mm is supported")
    points = []
    control_points = markup.get("controlPoints", [])
    if not isinstance(control_points, list):
        raise LandmarkFileError(path, f"its 'controlPoints' must be a list of points, not {type(control_points).__name__}")
    for k, cp in enumerate(control_points):
        what = f"control point {k + 1}"
        if not isinstance(cp, dict):
            raise LandmarkFileError(path, f"{what} must be an object with 'label' and 'position', not "
                                          f"{type(cp).__name__}")
        label = str(cp.get("label", "")).strip()
        if not label:
            raise LandmarkFileError(path, f"{what} has no label (pairs are matched by label)")
        if cp.get("positionStatus", "defined") == "undefined":
            point = None
        else:
            position = cp.get("position")
            if not isinstance(position, list) or len(position) != 3:
                raise LandmarkFileError(path, f"{what} ({label}) has no 3-number 'position'")
            point = tuple(_number(path, str(v), None, f"a coordinate of {what} ({label})") for v in position)
            point = _ras_lps(point) if system == "RAS" else point
        weight = _description_weight(path, str(cp.get("description", "")), None)
        points.append((label, point, bool(cp.get("selected", True)), weight, None))
    return points


def _read_fcsv(path: Path) -> list[tuple]:
    system = "RAS"  # Slicer's convention when the header says nothing
    columns = _FCSV_COLUMNS.split(",")
    points = []
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        text = raw.strip()
        if text.startswith("#"):
            key, _, value = text.lstrip("#").partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                system = {"0": "RAS", "ras": "RAS", "1": "LPS", "lps": "LPS"}.get(value.lower(), "")
                if not system:
                    raise LandmarkFileError(path, f"its CoordinateSystem is {value!r}; only RAS (0) and LPS (1) "
                                            "are supported", number)
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        if not text:
            continue
        cells = next(csv.reader([raw]))
        where = {c: i for i, c in enumerate(columns)}
        if any(c not in where for c in ("x", "y", "z", "label")):
            raise LandmarkFileError(path, "the '# columns' header lacks x, y, z or label", number)
        if len(cells) < len(columns) - 1:  # the last column(s) may be empty and dropped
            raise LandmarkFileError(path, f"expected {len(columns)} values as in the columns header, found {len(cells)}", number)
        cells += [""] * (len(columns) - len(cells))
        point = tuple(_number(path, cells[where[a]], number, f"the {a} coordinate") for a in "xyz")
        label = cells[where["label"]].strip()
        if not label:
            raise LandmarkFileError(path, "the point has no label (pairs are matched by label)", number)
        selected = _flag(path, cells[where["sel"]], number, "'sel'") if "sel" in where and cells[where["sel"]] else True
        weight = _description_weight(path, cells[where["desc"]] if "desc" in where else "", number)
        points.append((label, _ras_lps(point) if system == "RAS" else point, selected, weight, number))
    return points


def _description_weight(path: Path, description: str, line: int | None) -> float:
    found = _WEIGHT_RE.search(description)
    return _weight(path, found.group(1), line) if found else 1.0


def _pair_up(fixed_path, moving_path, fixed_points: list[tuple], moving_points: list[tuple] | None,
             match: str) -> list[Record]:
    """Pair the two images' points by label (or by order) into records."""
    for path, points in ((fixed_path, fixed_points), (moving_path, moving_points or [])):
        seen: set[str] = set()
        for label, *_, line in points:
            if label in seen and match == "label":
                raise LandmarkFileError(path, f"the label {label!r} appears twice; pairs are matched by label", line)
            seen.add(label)
    if moving_points is None:
        return [{"name": label, "fixed": p, "moving": None, "enabled": sel, "weight": w}
                for label, p, sel, w, _ in fixed_points]
    if match == "order":
        if len(fixed_points) != len(moving_points):
            raise LandmarkFileError(moving_path, f"it has {len(moving_points)} points but the fixed file "
                                    f"'{fixed_path}' has {len(fixed_points)}; matching by order needs equal counts")
        partners = moving_points
    else:
        by_label = {m[0]: m for m in moving_points}
        fixed_labels = [f[0] for f in fixed_points]
        only_fixed = [label for label in fixed_labels if label not in by_label]
        fixed_set = set(fixed_labels)
        only_moving = [m[0] for m in moving_points if m[0] not in fixed_set]
        if only_fixed or only_moving:
            parts = []
            if only_fixed:
                parts.append(f"label(s) {_some(only_fixed)} only in the fixed file")
            if only_moving:
                parts.append(f"label(s) {_some(only_moving)} only in the moving file '{moving_path}'")
            raise LandmarkFileError(fixed_path, "the two files' labels do not match: " + "; ".join(parts)
                                    + " (rename the points so each pair shares a label, or match by order)")
        partners = [by_label[label] for label in fixed_labels]
    names = set()
    records = []
    for f, m in zip(fixed_points, partners):
        if f[0] in names:
            raise LandmarkFileError(fixed_path, f"the label {f[0]!r} appears twice", f[4])
        names.add(f[0])
        records.append({"name": f[0], "fixed": f[1], "moving": m[1], "enabled": f[2] and m[2], "weight": f[3]})
    return records


def _some(labels: list[str]) -> str:
    shown = ", ".join(repr(x) for x in labels[:5])
    return shown + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")


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
        writer = _slicer_json_text if fmt == "slicer" else _fcsv_text
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


def _num(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same double


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
            row += [""] * dimension if point is None else [_num(v) for v in point]
        writer.writerow(row + ([_num(q.weight)] if with_weight else []))
    return out.getvalue()


def _bigwarp_text(path: Path, pairs: Sequence[Any], dimension: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for q in pairs:
        row = [q.name, "true" if q.enabled else "false"]
        for point in (q.moving, q.fixed):  # BigWarp: moving first
            row += ["Infinity"] * dimension if point is None else [_num(v) for v in point]
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


def _slicer_position(point: Sequence[float] | None, dimension: int, system: str) -> list[float]:
    full = list(point) + [0.0] * (3 - dimension) if point is not None else [0.0, 0.0, 0.0]
    return list(_ras_lps(full)) if system == "RAS" and point is not None else full


def _slicer_json_text(path: Path, pairs: Sequence[Any], role: str, dimension: int, system: str) -> str:
    points = []
    for k, q in enumerate(pairs):
        point = getattr(q, role)
        points.append({
            "id": str(k + 1), "label": q.name,
            "description": "" if q.weight == 1.0 else f"regviewer-weight={_num(q.weight)}",
            "associatedNodeID": "", "position": _slicer_position(point, dimension, system),
            "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
            "selected": bool(q.enabled), "locked": False, "visibility": True,
            "positionStatus": "defined" if point is not None else "undefined",
        })
    data = {"@schema": _SLICER_SCHEMA, "markups": [{
        "type": "Fiducial", "coordinateSystem": system, "coordinateUnits": "mm", "locked": False,
        "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(pairs),
        "controlPoints": points, "measurements": []}]}
    return json.dumps(data, indent=4) + "\n"


def _fcsv_text(path: Path, pairs: Sequence[Any], role: str, dimension: int, system: str) -> str:
    lines = ["# Markups fiducial file version = 4.11", f"# CoordinateSystem = {system}", f"# columns = {_FCSV_COLUMNS}"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for k, q in enumerate(pairs):
        point = getattr(q, role)
        if point is None:
            raise ImageWriteError(path, f"landmark {q.name!r} has no {role} point; .fcsv cannot store a point "
                                  "not placed yet (use .mrk.json or .csv)")
        x, y, z = _slicer_position(point, dimension, system)
        desc = "" if q.weight == 1.0 else f"regviewer-weight={_num(q.weight)}"
        writer.writerow([f"vtkMRMLMarkupsFiducialNode_{k + 1}", _num(x), _num(y), _num(z), 0, 0, 0, 1, 1,
                         1 if q.enabled else 0, 0, q.name, desc, ""])
    return "\n".join(lines) + "\n" + out.getvalue()


__all__ = ["FORMATS", "detect_format", "read_landmarks", "write_landmarks"]
