"""3D Slicer markups (.mrk.json and legacy .fcsv): one file per image, points paired by label or order.

Slicer files may be RAS; points inside regviewer are LPS, so RAS = (-L, -P, S) is converted here,
both ways. Weights other than 1 travel in the point description (``regviewer-weight=0.5``).
A "Slicer point" below is (label, LPS point or None, selected, weight, line or None).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Sequence

from regviewer.core.errors import ImageWriteError, LandmarkFileError
from regviewer.core.landmarks.file_values import flag, load_json, num, number, read_text, weight

Record = dict[str, Any]  # name, fixed, moving, enabled, weight (the LandmarkPair fields)

_SLICER_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                  "Resources/Schema/markups-schema-v1.0.3.json#")
_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
_WEIGHT_RE = re.compile(r"regviewer-weight=([-+0-9.eE]+)")


def ras_lps(point: Sequence[float]) -> tuple[float, ...]:
    """RAS <-> LPS (its own inverse): negate the first two coordinates."""
    return (-point[0], -point[1]) + tuple(point[2:])


def read_slicer_json(path: Path) -> list[tuple]:
    data = load_json(path)
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
            point = tuple(number(path, str(v), None, f"a coordinate of {what} ({label})") for v in position)
            point = ras_lps(point) if system == "RAS" else point
        weight = _description_weight(path, str(cp.get("description", "")), None)
        points.append((label, point, bool(cp.get("selected", True)), weight, None))
    return points


def read_fcsv(path: Path) -> list[tuple]:
    system = "RAS"  # Slicer's convention when the header says nothing
    columns = _FCSV_COLUMNS.split(",")
    points = []
    for line_no, raw in enumerate(read_text(path).splitlines(), start=1):
        text = raw.strip()
        if text.startswith("#"):
            key, _, value = text.lstrip("#").partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                system = {"0": "RAS", "ras": "RAS", "1": "LPS", "lps": "LPS"}.get(value.lower(), "")
                if not system:
                    raise LandmarkFileError(path, f"its CoordinateSystem is {value!r}; only RAS (0) and LPS (1) "
                                            "are supported", line_no)
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        if not text:
            continue
        cells = next(csv.reader([raw]))
        where = {c: i for i, c in enumerate(columns)}
        if any(c not in where for c in ("x", "y", "z", "label")):
            raise LandmarkFileError(path, "the '# columns' header lacks x, y, z or label", line_no)
        if len(cells) < len(columns) - 1:  # the last column(s) may be empty and dropped
            raise LandmarkFileError(path, f"expected {len(columns)} values as in the columns header, found {len(cells)}", line_no)
        cells += [""] * (len(columns) - len(cells))
        point = tuple(number(path, cells[where[a]], line_no, f"the {a} coordinate") for a in "xyz")
        label = cells[where["label"]].strip()
        if not label:
            raise LandmarkFileError(path, "the point has no label (pairs are matched by label)", line_no)
        selected = flag(path, cells[where["sel"]], line_no, "'sel'") if "sel" in where and cells[where["sel"]] else True
        weight = _description_weight(path, cells[where["desc"]] if "desc" in where else "", line_no)
        points.append((label, ras_lps(point) if system == "RAS" else point, selected, weight, line_no))
    return points


def _description_weight(path: Path, description: str, line: int | None) -> float:
    found = _WEIGHT_RE.search(description)
    return weight(path, found.group(1), line) if found else 1.0


def pair_up(fixed_path, moving_path, fixed_points: list[tuple], moving_points: list[tuple] | None,
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


def _slicer_position(point: Sequence[float] | None, dimension: int, system: str) -> list[float]:
    full = list(point) + [0.0] * (3 - dimension) if point is not None else [0.0, 0.0, 0.0]
    return list(ras_lps(full)) if system == "RAS" and point is not None else full


def slicer_json_text(path: Path, pairs: Sequence[Any], role: str, dimension: int, system: str) -> str:
    points = []
    for k, q in enumerate(pairs):
        point = getattr(q, role)
        points.append({
            "id": str(k + 1), "label": q.name,
            "description": "" if q.weight == 1.0 else f"regviewer-weight={num(q.weight)}",
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


def fcsv_text(path: Path, pairs: Sequence[Any], role: str, dimension: int, system: str) -> str:
    lines = ["# Markups fiducial file version = 4.11", f"# CoordinateSystem = {system}", f"# columns = {_FCSV_COLUMNS}"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for k, q in enumerate(pairs):
        point = getattr(q, role)
        if point is None:
            raise ImageWriteError(path, f"landmark {q.name!r} has no {role} point; .fcsv cannot store a point "
                                  "not placed yet (use .mrk.json or .csv)")
        x, y, z = _slicer_position(point, dimension, system)
        desc = "" if q.weight == 1.0 else f"regviewer-weight={num(q.weight)}"
        writer.writerow([f"vtkMRMLMarkupsFiducialNode_{k + 1}", num(x), num(y), num(z), 0, 0, 0, 1, 1,
                         1 if q.enabled else 0, 0, q.name, desc, ""])
    return "\n".join(lines) + "\n" + out.getvalue()


__all__ = ["read_slicer_json", "read_fcsv", "pair_up", "slicer_json_text", "fcsv_text"]
