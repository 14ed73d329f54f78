"""Landmark files: lossless round trips, RAS/LPS handled at the edge, bad files named clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regviewer.core.errors import ImageWriteError, LandmarkFileError
from regviewer.core.landmarks.formats import detect_format
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet, load_landmarks


def _sample(dim: int = 3, weights: bool = True) -> LandmarkSet:
    rng = np.random.default_rng(dim)
    lm = LandmarkSet(dim)
    for k in range(5):
        lm.add_pair(tuple(rng.normal(scale=50, size=dim)), tuple(rng.normal(scale=50, size=dim)),
                    name=f"P{k}" if k != 2 else "with, comma \"quoted\"", enabled=k != 1,
                    weight=0.5 if (weights and k == 3) else 1.0)
    lm.add_pair(tuple(1e-9 * np.arange(1, dim + 1)), None, name="half-made")  # fixed placed, moving not yet
    return lm


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("suffix,kw", [(".csv", {}), (".json", {}), (".csv", {"format": "bigwarp"})])
def test_single_file_formats_round_trip_losslessly(tmp_path, dim, suffix, kw):
    lm = _sample(dim, weights=kw.get("format") != "bigwarp")  # BigWarp files have no weight column
    path = tmp_path / f"lm{suffix}"
    lm.save(path, **kw)
    again = load_landmarks(path)
    assert again.dimension == dim and again.pairs == lm.pairs


@pytest.mark.parametrize("suffix", [".mrk.json", ".fcsv"])
@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_slicer_pair_files_round_trip_losslessly(tmp_path, suffix, system):
    lm = _sample(3)
    if suffix == ".fcsv":
        lm.delete(len(lm) - 1)  # .fcsv cannot hold a point not placed yet
    fixed, moving = tmp_path / f"fixed{suffix}", tmp_path / f"moving{suffix}"
    lm.save(fixed, moving, coordinate_system=system)
    assert load_landmarks(fixed, moving).pairs == lm.pairs


def test_ras_and_lps_slicer_files_of_the_same_points_load_to_the_same_physical_points(tmp_path):
    def markups(system, points):
        return {"@schema": "x", "markups": [{"type": "Fiducial", "coordinateSystem": system, "controlPoints": [
            {"label": f"F-{k + 1}", "position": list(p)} for k, p in enumerate(points)]}]}

    lps = [(10.0, -20.0, 30.0), (-1.5, 2.5, 3.5), (0.0, 0.0, -7.0)]
    ras = [(-x, -y, z) for x, y, z in lps]
    moving_lps = [(x + 1, y, z) for x, y, z in lps]
    (tmp_path / "f_lps.mrk.json").write_text(json.dumps(markups("LPS", lps)))
    (tmp_path / "f_ras.mrk.json").write_text(json.dumps(markups("RAS", ras)))
    (tmp_path / "m.mrk.json").write_text(json.dumps(markups("LPS", moving_lps)))
    a = load_landmarks(tmp_path / "f_lps.mrk.json", tmp_path / "m.mrk.json")
    b = load_landmarks(tmp_path / "f_ras.mrk.json", tmp_path / "m.mrk.json")
    assert [p.fixed for p in a] == [p.fixed for p in b] == lps
    # Legacy .fcsv: "0"/"RAS", "1"/"LPS", and RAS when the header says nothing.
    def fcsv(header, points):
        rows = [f"vtkMRMLMarkupsFiducialNode_{k},{x},{y},{z},0,0,0,1,1,1,0,F-{k + 1},,"
                for k, (x, y, z) in enumerate(points)]
        return "\n".join(["# Markups fiducial file version = 4.10", *header,
                          "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID", *rows]) + "\n"

    for name, header, points in [("a", ["# CoordinateSystem = 0"], ras), ("b", ["# CoordinateSystem = RAS"], ras),
                                 ("c", ["# CoordinateSystem = 1"], lps), ("d", ["# CoordinateSystem = LPS"], lps),
                                 ("e", [], ras)]:
        (tmp_path / f"{name}.fcsv").write_text(fcsv(header, points))
        assert [p.fixed for p in load_landmarks(tmp_path / f"{name}.fcsv")] == lps, name


def test_slicer_matching_by_label_not_by_order_and_by_order_on_request(tmp_path):
    lm = LandmarkSet(3, [LandmarkPair("a", (1, 1, 1), (2, 2, 2)), LandmarkPair("b", (3, 3, 3), (4, 4, 4))])
    lm.save(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json")
    data = json.loads((tmp_path / "m.mrk.json").read_text())
    data["markups"][0]["controlPoints"].reverse()
    (tmp_path / "m.mrk.json").write_text(json.dumps(data))
    assert load_landmarks(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json").pairs == lm.pairs
    swapped = load_landmarks(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json", match="order")
    assert swapped[0].moving == (4.0, 4.0, 4.0)
    only_fixed = load_landmarks(tmp_path / "f.mrk.json")
    assert [p.moving for p in only_fixed] == [None, None]


def test_bigwarp_file_as_bigwarp_writes_it(tmp_path):
    # moving point first; "Infinity" = not placed yet; no header.
    (tmp_path / "bw.csv").write_text('"Pt-0","true","1.5","2.5","3.5","10.0","20.0","30.0"\n'
                                     '"Pt-1","false","Infinity","Infinity","Infinity","4.0","5.0","6.0"\n')
    lm = load_landmarks(tmp_path / "bw.csv")
    assert lm.dimension == 3 and detect_format(tmp_path / "bw.csv") == "bigwarp"
    assert lm[0] == LandmarkPair("Pt-0", (10.0, 20.0, 30.0), (1.5, 2.5, 3.5), True)
    assert lm[1].moving is None and lm[1].fixed == (4.0, 5.0, 6.0) and not lm[1].enabled
    lm.save(tmp_path / "out.csv", format="bigwarp")
    assert (tmp_path / "out.csv").read_text() == (tmp_path / "bw.csv").read_text()


def test_our_csv_is_documented_header_in_lps(tmp_path):
    lm = LandmarkSet(3, [LandmarkPair("a", (1, 2, 3), (4, 5, 6))])
    lm.save(tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_text() == (
        "name,enabled,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z\na,true,1.0,2.0,3.0,4.0,5.0,6.0\n")


_HEADER = "name,enabled,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z\n"


@pytest.mark.parametrize(
    "name,text,words,line",
    [
        ("missing.csv", _HEADER.replace(",moving_z", "") + "a,true,1,2,3,4,5\n", "lacks the column(s) moving_z", 1),
        ("short.csv", _HEADER + "a,true,1,2,3,4,5,6\nb,true,1,2,3,4,5\n", "expected 8 values", 3),
        ("word.csv", _HEADER + "a,true,1,2,3,4,5,6\nb,true,1,two,3,4,5,6\n", "'two', not a number", 3),
        ("nan.csv", _HEADER + "a,true,1,2,nan,4,5,6\n", "finite", 2),
        ("partial.csv", _HEADER + "a,true,1,,3,4,5,6\n", "some coordinates blank", 2),
        ("flag.csv", _HEADER + "a,maybe,1,2,3,4,5,6\n", "use true or false", 2),
        ("dup.csv", _HEADER + "a,true,1,2,3,4,5,6\na,true,1,2,3,4,5,6\n", "appears twice", 3),
        ("empty.csv", "", "the file is empty", None),
        ("bw.csv", '"p","true","1","2","3","4","5"\n', "6 (2D) or 8 (3D) values", 1),
        ("bw2.csv", '"p","true","1","2","3","4","5","x"\n', "'x', not a number", 1),
        ("bad.mrk.json", '{"markups": [ {"controlPoints": [}', "not valid JSON", 1),
        ("units.mrk.json", '{"markups": [{"coordinateUnits": "um", "controlPoints": []}]}', "only mm", None),
        ("nolabel.mrk.json", '{"markups": [{"controlPoints": [{"position": [1, 2, 3]}]}]}', "no label", None),
        ("nanpos.mrk.json", '{"markups": [{"controlPoints": [{"label": "a", "position": [1, NaN, 3]}]}]}', "finite", None),
        ("ijk.fcsv", "# CoordinateSystem = 2\nid,1,2,3,0,0,0,1,1,1,0,a,,\n", "only RAS (0) and LPS (1)", 1),
        ("short.fcsv", "# CoordinateSystem = 1\nid,1,2\n", "expected 14 values", 2),
    ],
)
def test_invalid_files_name_the_file_the_line_and_the_problem(tmp_path, name, text, words, line):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LandmarkFileError) as info:
        load_landmarks(path)
    message = str(info.value)
    assert words in message and name in message and info.value.line == line


def test_unmatched_labels_and_other_file_problems(tmp_path):
    LandmarkSet(3, [LandmarkPair("a", (1, 1, 1)), LandmarkPair("b", (2, 2, 2))]).save(tmp_path / "f.mrk.json")
    LandmarkSet(3, [LandmarkPair("a", (1, 1, 1)), LandmarkPair("c", (2, 2, 2))]).save(tmp_path / "m.mrk.json")
    with pytest.raises(LandmarkFileError, match="'b' only in the fixed file.*'c' only in the moving file"):
        load_landmarks(tmp_path / "f.mrk.json", tmp_path / "m.mrk.json")
    with pytest.raises(LandmarkFileError, match="does not exist"):
        load_landmarks(tmp_path / "nothing.csv")
    with pytest.raises(LandmarkFileError, match="transform file"):
        load_landmarks(tmp_path / "t.tfm")
    with pytest.raises(LandmarkFileError, match="unknown landmark format"):
        load_landmarks(tmp_path / "x.xyz")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(LandmarkFileError, match="not a text file"):
        load_landmarks(tmp_path / "binary.csv")


def test_writes_refuse_what_the_format_cannot_hold(tmp_path):
    lm = _sample(3)
    with pytest.raises(ImageWriteError, match="give moving_path"):
        lm.save(tmp_path / "f.mrk.json")
    with pytest.raises(ImageWriteError, match="cannot store a point not placed yet"):
        lm.save(tmp_path / "f.fcsv", tmp_path / "m.fcsv")
    assert not (tmp_path / "f.fcsv").exists()  # nothing half-written
    with pytest.raises(ImageWriteError):
        lm.save(tmp_path / "x.csv", tmp_path / "y.csv")
    with pytest.raises(ImageWriteError, match="save_transform"):
        lm.save(tmp_path / "x.tfm")


_coordinate = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.tuples(_coordinate, _coordinate, _coordinate),
                          st.tuples(_coordinate, _coordinate, _coordinate), st.booleans()), max_size=8))
def test_any_coordinates_survive_every_format(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("fmt")
    lm = LandmarkSet(3, [LandmarkPair(f"p{k}", f, m, e) for k, (f, m, e) in enumerate(rows)])
    lm.save(folder / "a.csv")
    lm.save(folder / "b.csv", format="bigwarp")
    lm.save(folder / "c.json")
    lm.save(folder / "f.mrk.json", folder / "m.mrk.json", coordinate_system="RAS")
    lm.save(folder / "f.fcsv", folder / "m.fcsv")
    for args in ([folder / "a.csv"], [folder / "c.json"], [folder / "f.mrk.json", folder / "m.mrk.json"],
                 [folder / "f.fcsv", folder / "m.fcsv"]):
        assert load_landmarks(*args).pairs == lm.pairs, args
    if rows:
        assert load_landmarks(folder / "b.csv", format="bigwarp").pairs == lm.pairs
