"""Nested composites (two applied runs, a fit on a run, a manual move on a file's
transform), B-splines and fields survive sessions and transform files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.transforms.io import read_transform, write_transform
from regviewer.core.transforms.manual import compose
from regviewer.core.transforms.storable import storable
from regviewer.core.workspace.session import Session, transform_from_json, transform_to_json


def _bspline(seed: int = 0) -> sitk.Transform:
    ref = sitk.Image([16, 16, 16], sitk.sitkFloat32)
    ref.SetSpacing((4.0, 4.0, 4.0))
    ref.SetOrigin((-32.0, -32.0, -32.0))
    tx = sitk.BSplineTransformInitializer(ref, [4, 4, 4])
    tx.SetParameters(np.random.default_rng(seed).normal(0, 2, tx.GetNumberOfParameters()).tolist())
    return tx


def _field() -> sitk.Transform:
    arr = np.random.default_rng(3).normal(0, 1, size=(12, 12, 12, 3))
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.SetSpacing((5.0, 5.0, 5.0))
    field.SetOrigin((-30.0, -30.0, -30.0))
    return sitk.DisplacementFieldTransform(field)


def _run(seed: int) -> sitk.Transform:
    """What the engine returns: a composite of an initial rigid, an affine and a B-spline."""
    rigid = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.05 * seed, -0.1, 0.2, (2.0, -1.0, 0.5))
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.02, 0.01, 0, 0, 0.98, 0.02, 0, 0, 1.01))
    return sitk.CompositeTransform([rigid, affine, _bspline(seed)])


NESTED = {
    "two applied runs": lambda: compose(_run(1), _run(2)),
    "fit on a run": lambda: compose(_run(1), sitk.CompositeTransform([sitk.AffineTransform(3), _bspline(5)])),
    "manual move on a file": lambda: compose(sitk.CompositeTransform([_field(), sitk.TranslationTransform(3, (1, 2, 3))]),
                                             sitk.Similarity3DTransform()),
    "three deep": lambda: compose(compose(_run(1), _run(2)), compose(_run(3), sitk.Euler3DTransform())),
    "bspline": lambda: _bspline(7),
}


def _same_mapping(a: sitk.Transform, b: sitk.Transform) -> None:
    for p in np.random.default_rng(0).uniform(-25, 25, size=(40, 3)):
        assert np.allclose(a.TransformPoint(tuple(p)), b.TransformPoint(tuple(p)), atol=1e-9)


@pytest.mark.parametrize("name", NESTED)
def test_storable_keeps_the_mapping_and_has_no_nesting(name):
    t = NESTED[name]()
    flat = storable(t)
    _same_mapping(t, flat)
    if flat.GetTransformEnum() == sitk.sitkComposite:
        c = sitk.CompositeTransform(flat)
        kinds = [c.GetNthTransform(i).GetTransformEnum() for i in range(c.GetNumberOfTransforms())]
        assert sitk.sitkComposite not in kinds


@pytest.mark.parametrize("name", NESTED)
def test_session_round_trip_of_nested_composites(tmp_path, name):
    t = NESTED[name]()
    _same_mapping(t, transform_from_json(json.loads(json.dumps(transform_to_json(t))), "test"))
    Session(transforms={"current": t}).save(tmp_path / "s.rvsession.json")
    back = Session.load(tmp_path / "s.rvsession.json").transforms["current"]
    _same_mapping(t, back)


@pytest.mark.parametrize("suffix", [".tfm", ".h5"])
def test_save_transform_writes_nested_composites(tmp_path, suffix):
    t = NESTED["two applied runs"]()
    write_transform(t, tmp_path / f"t{suffix}")
    _same_mapping(t, read_transform(tmp_path / f"t{suffix}"))
