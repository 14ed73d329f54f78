"""Parameters: JSON round trips, validation naming the field, GUI metadata."""

import dataclasses
import json

import pytest

from regviewer.core.errors import ParameterError
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams, Stage, TransformParams,
                                   replace)


def test_default_pipeline_round_trips():
    p = Pipeline()
    p.validate()
    assert Pipeline.from_json(p.to_json()) == p
    assert Pipeline.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_custom_pipeline_round_trips_exactly():
    p = Pipeline(stages=(
        Stage(name="r", transform=TransformParams(kind="rigid"), initializer="geometry"),
        Stage(name="b", transform=TransformParams(kind="bspline", grid_spacing_mm=12.5),
              metric=MetricParams(kind="ants_nc", radius=3), optimizer=OptimizerParams(kind="lbfgs2", iterations=7),
              pyramid=PyramidParams((8, 4, 2, 1), (3.0, 2.0, 1.0, 0.0), sigmas_in_mm=True)),
    ), symmetric=True, name="x", description="y")
    q = Pipeline.from_json(p.to_json())
    assert q == p and isinstance(q.stages, tuple) and isinstance(q.stages[1].pyramid.shrink_factors, tuple)


def test_partial_json_uses_defaults():
    p = Pipeline.from_json('{"stages": [{"transform": {"kind": "rigid"}}]}')
    assert p.stages[0].transform.kind == "rigid" and p.stages[0].metric.kind == "mattes"


@pytest.mark.parametrize("text, word", [
    ('{"stages": [{"transform": {"kind": "warp9"}}]}', "stages[0] ('affine').transform.kind"),
    ('{"stages": [{"metric": {"kind": "mattes", "bins": 1}}]}', "metric.bins"),
    ('{"stages": [{"pyramid": {"shrink_factors": [4, 2], "smoothing_sigmas": [1.0]}}]}', "pyramid"),
    ('{"stages": [{"optimizer": {"iterations": "many"}}]}', "iterations"),
    ('{"stages": [{"optimiser": {}}]}', "optimiser"),
    ('{"stages": []}', "stages"),
    ('{"stages": [{}, {"initializer": "moments"}]}', "stages[1]"),
    ("{not json", "JSON"),
])
def test_invalid_parameters_name_the_field(text, word):
    with pytest.raises(ParameterError, match=None) as info:
        Pipeline.from_json(text).validate()
    assert word in str(info.value)


def test_every_leaf_field_has_help_metadata():
    for cls in (TransformParams, MetricParams, OptimizerParams, PyramidParams, Stage, Pipeline):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
    kinds = {f.name: f for f in dataclasses.fields(TransformParams)}["kind"]
    assert "bspline" in kinds.metadata["choices"]


def test_frozen_and_replace():
    s = Stage()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "x"  # type: ignore[misc]
    assert replace(s, name="x").name == "x"
