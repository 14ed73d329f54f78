"""Malformed landmark files and session JSON (issue 16): always a typed error naming the file."""

from __future__ import annotations

import json

import pytest

from regviewer.core.errors import LandmarkFileError, SessionError
from regviewer.core.landmarks.model import load_landmarks
from regviewer.core.workspace.session import Session


def _markups(control_points) -> dict:
    return {"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": control_points}]}


@pytest.mark.parametrize("control_points", ["abc", [[1, 2, 3]], None, [None], 5])
def test_slicer_control_points_of_the_wrong_type(tmp_path, control_points):
    p = tmp_path / "f.mrk.json"
    p.write_text(json.dumps(_markups(control_points)))
    with pytest.raises(LandmarkFileError) as err:
        load_landmarks(p)
    assert "f.mrk.json" in str(err.value)


@pytest.mark.parametrize("weight", ["NaN", "Infinity", "-1", "\"heavy\""])
def test_bad_weight_in_json_names_the_file(tmp_path, weight):
    p = tmp_path / "w.json"
    p.write_text('{"dimension": 3, "pairs": [{"name": "a", "fixed": [0,0,0], "moving": [1,1,1], "weight": %s}]}' % weight)
    with pytest.raises(LandmarkFileError) as err:
        load_landmarks(p)
    assert "w.json" in str(err.value)


def test_deeply_nested_landmark_json(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LandmarkFileError, match="deep.json"):
        load_landmarks(p)


def test_deeply_nested_session(tmp_path):
    p = tmp_path / "deep.rvsession.json"
    p.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(SessionError, match="deep.rvsession.json"):
        Session.load(p)


def test_deeply_nested_parameters_file(tmp_path):
    from regviewer.core.errors import ParameterError
    from regviewer.core.registration.headless import read_parameters

    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ParameterError, match="deep.json"):
        read_parameters(params=p)
