"""Fuzz test (issue 16): damaged image headers (NIfTI, NRRD, MetaImage), transform files,
landmark files and session JSON. Every outcome must be a `RegviewerError` or a valid
result: never another exception, never a hang.

Each example runs in a separate worker process with a per-example timeout, so a hang
inside ITK fails the test (and the worker is replaced) instead of stalling the suite.
The worker also caps its address space, so a header claiming terabytes cannot take
the machine down. Together these tests run in well under a minute.
"""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PER_EXAMPLE_TIMEOUT_S = 20.0
# REGVIEWER_FUZZ_EXAMPLES=2000 (and REGVIEWER_FUZZ_RANDOM=1 for new seeds) for a longer hunt.
_FUZZ = settings(max_examples=int(os.environ.get("REGVIEWER_FUZZ_EXAMPLES", "40")), deadline=None,
                 derandomize=not os.environ.get("REGVIEWER_FUZZ_RANDOM"), database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# --- the worker: reads one damaged file, reports how it ended --------------------------------------
def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    except (ImportError, ValueError, OSError):
        pass


def _read(kind: str, name: str, data: bytes) -> str:
    from regviewer.core.errors import RegviewerError

    with tempfile.TemporaryDirectory(prefix="regviewer-fuzz-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            if kind == "image":
                from regviewer.core.imaging.io import read_image

                v = read_image(path)
                assert v.dimension in (2, 3) and min(v.size) >= 2 and all(s > 0 for s in v.spacing)
                assert np.isfinite(sitk.GetArrayViewFromImage(v.scalar())).all()
            elif kind == "transform":
                from regviewer.core.transforms.io import read_transform

                tx = read_transform(path)
                assert tx.GetDimension() in (2, 3)
            elif kind == "landmarks":
                from regviewer.core.landmarks.model import load_landmarks

                lm = load_landmarks(path)
                assert all(np.all(np.isfinite(p.fixed)) for p in lm.pairs if p.fixed is not None)
            elif kind == "session":
                from regviewer.core.landmarks.model import LandmarkSet
                from regviewer.core.workspace.session import Session

                s = Session.load(path)
                if s.landmarks is not None:
                    try:
                        LandmarkSet.from_dict(s.landmarks)
                    except RegviewerError:
                        pass
            return "ok"
        except RegviewerError:
            return "typed"
        except (Exception, RecursionError) as exc:  # noqa: BLE001 -- exactly what the test hunts
            import traceback

            return f"untyped {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"


class _Worker:
    """One spawned process that runs `_read`; replaced when an example times out."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.pool = None

    def run(self, kind: str, name: str, data: bytes) -> str:
        if self.pool is None:
            self.pool = self.context.Pool(1, initializer=_limit_memory)
        job = self.pool.apply_async(_read, (kind, name, data))
        try:
            return job.get(timeout=PER_EXAMPLE_TIMEOUT_S)
        except multiprocessing.TimeoutError:
            self.close()
            return f"hang or crash: reading {name} did not end within {PER_EXAMPLE_TIMEOUT_S} s"

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


@pytest.fixture(scope="module")
def worker():
    w = _Worker()
    yield w
    w.close()


def _check(worker: _Worker, kind: str, name: str, data: bytes) -> None:
    outcome = worker.run(kind, name, data)
    assert outcome in ("ok", "typed"), f"{name} ({len(data)} bytes, head {data[:120]!r}):\n{outcome}"


# --- valid seeds ------------------------------------------------------------------------------------
def _seed_image() -> sitk.Image:
    z, y, x = np.mgrid[:5, :6, :7].astype(np.float32)
    img = sitk.GetImageFromArray(x * 3 + y * 2 + z)
    img.SetSpacing((1.5, 2.0, 2.5))
    img.SetOrigin((1.0, -2.0, 3.0))
    return img


def _image_bytes(suffix: str, compress: bool) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seed{suffix}"
        sitk.WriteImage(_seed_image(), str(path), compress)
        return path.read_bytes()


SEEDS = {
    "image.nii": _image_bytes(".nii", False),
    "image.nii.gz": _image_bytes(".nii.gz", True),
    "image.nrrd": _image_bytes(".nrrd", False),
    "image_gz.nrrd": _image_bytes(".nrrd", True),
    "image.mha": _image_bytes(".mha", False),
    "image_z.mha": _image_bytes(".mha", True),
}

_TOKENS = ["0", "-1", "1", "2", "3", "4", "1e30", "-1e30", "nan", "inf", "3.5", "99999999999", "", "abc", "three",
           "1 2", "(", ")", "\"", "LOCAL", "True", "False", "gzip", "raw", "MET_FLOAT", "double", "[", "]", "{", "}",
           "null", "1000 1000 1000", "0 0 0", ",", "\n", "\\"]


@st.composite
def damaged(draw, seed: bytes, text_header: bool) -> bytes:
    """Truncations, byte flips in the first 400 bytes, and (for text formats) header
    tokens replaced by hostile values; combined at random."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "token"] if text_header else ["truncate", "flip", "flip"]))
        if how == "truncate" and len(data) > 1:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif how == "flip" and data:
            at = draw(st.integers(0, min(len(data), 400) - 1))
            data[at:at + 1] = bytes([draw(st.integers(0, 255))])
        elif how == "token":
            tokens = [t for t in bytes(data[:2000]).split(b"\n")]
            line = draw(st.integers(0, max(0, len(tokens) - 1)))
            if tokens:
                parts = tokens[line].split(b" ")
                k = draw(st.integers(0, len(parts) - 1))
                parts[k] = draw(st.sampled_from(_TOKENS)).encode()
                tokens[line] = b" ".join(parts)
                data = bytearray(b"\n".join(tokens) + bytes(data[2000:]))
    return bytes(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzz_image_headers(worker, name):
    seed = SEEDS[name]
    text = name.endswith((".nrrd", ".mha"))

    @_FUZZ
    @given(damaged(seed, text))
    def run(data):
        _check(worker, "image", name, data)

    run()


def test_fuzz_gzip_nifti_inner_header(worker):
    """Damage inside a compressed NIfTI's header (the outer gzip stays valid)."""
    inner = gzip.decompress(SEEDS["image.nii.gz"])

    @_FUZZ
    @given(damaged(inner, False))
    def run(data):
        _check(worker, "image", "inner.nii.gz", gzip.compress(data))

    run()


# --- transforms -------------------------------------------------------------------------------------
def _tfm_seed() -> bytes:
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([1.1, 0.1, 0, 0, 1, 0, 0, 0, 0.9])
    affine.SetTranslation([3, 4, 5])
    composite = sitk.CompositeTransform([affine, sitk.TranslationTransform(3, (1, 2, 3))])
    with tempfile.TemporaryDirectory() as tmp:
        from regviewer.core.transforms.io import write_transform

        write_transform(composite, Path(tmp) / "t.tfm")
        return (Path(tmp) / "t.tfm").read_bytes()


_ELASTIX = (b'(Transform "AffineTransform")\n(NumberOfParameters 12)\n(TransformParameters 1 0 0 0 1 0 0 0 1 2 3 4)\n'
            b'(InitialTransformParametersFileName "NoInitialTransform")\n(HowToCombineTransforms "Compose")\n'
            b'(FixedImageDimension 3)\n(MovingImageDimension 3)\n(CenterOfRotationPoint 1 2 3)\n')
_ELASTIX_BSPLINE = (b'(Transform "BSplineTransform")\n(FixedImageDimension 2)\n(GridSize 4 4)\n(GridIndex 0 0)\n'
                    b'(GridSpacing 10 10)\n(GridOrigin -10 -10)\n(GridDirection 1 0 0 1)\n'
                    b'(BSplineTransformSplineOrder 3)\n(TransformParameters ' + b" ".join([b"0.5"] * 32) + b')\n')


@pytest.mark.parametrize("name, seed", [("t.tfm", _tfm_seed()), ("TransformParameters.0.txt", _ELASTIX),
                                        ("TransformParameters.1.txt", _ELASTIX_BSPLINE)])
def test_fuzz_transform_files(worker, name, seed):
    @_FUZZ
    @given(damaged(seed, True))
    def run(data):
        _check(worker, "transform", name, data)

    run()


# --- landmarks and sessions: text damage and arbitrary JSON structures ---------------------------------
_CSV = (b"name,enabled,weight,fixed_x,fixed_y,fixed_z,moving_x,moving_y,moving_z\n"
        b"L1,true,1,0,0,0,1,1,1\nL2,true,1,10,0,0,11,1,1\nL3,false,2,0,10,0,1,11,1\n")
_FCSV = (b"# Markups fiducial file version = 4.11\n# CoordinateSystem = LPS\n"
         b"# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
         b"1,0,0,0,0,0,0,1,1,1,0,F-1,,\n2,10,0,0,0,0,0,1,1,1,0,F-2,,\n")
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@pytest.mark.parametrize("name, seed", [("l.csv", _CSV), ("l.fcsv", _FCSV)])
def test_fuzz_landmark_text_files(worker, name, seed):
    @_FUZZ
    @given(damaged(seed, True))
    def run(data):
        _check(worker, "landmarks", name, data)

    run()


@_FUZZ
@given(points=_JSON_VALUES, position=_JSON_VALUES, system=st.sampled_from(["LPS", "RAS", "XYZ", 3, None]))
def test_fuzz_slicer_markups_structure(worker, points, position, system):
    doc = {"markups": [{"type": "Fiducial", "coordinateSystem": system,
                        "controlPoints": [{"label": "F-1", "position": position}, points]}]}
    _check(worker, "landmarks", "f.mrk.json", json.dumps(doc).encode())


@_FUZZ
@given(pairs=_JSON_VALUES, dimension=_JSON_VALUES, weight=_JSON_VALUES)
def test_fuzz_regviewer_landmark_json(worker, pairs, dimension, weight):
    doc = {"dimension": dimension, "pairs": [{"name": "a", "fixed": [0, 0, 0], "moving": [1, 1, 1], "weight": weight},
                                             pairs]}
    _check(worker, "landmarks", "l.json", json.dumps(doc).encode())


def _session_seed() -> dict:
    from regviewer.core.landmarks.model import LandmarkSet
    from regviewer.core.workspace.session import Session

    lm = LandmarkSet(3)
    lm.add_pair(fixed=[0, 0, 0], moving=[1, 1, 1], name="a")
    tx = sitk.AffineTransform(3)
    tx.SetTranslation((1, 2, 3))
    return Session(transforms={"current": tx}, landmarks=lm.to_dict()).to_dict()


@_FUZZ
@given(key=st.sampled_from(["images", "transforms", "landmarks", "parameters", "view_state", "parts", "version"]),
       value=_JSON_VALUES)
def test_fuzz_session_structure(worker, key, value):
    doc = _session_seed()
    doc[key] = value
    _check(worker, "session", "s.rvsession.json", json.dumps(doc).encode())


def test_fuzz_session_text(worker):
    seed = json.dumps(_session_seed(), indent=1).encode()

    @_FUZZ
    @given(damaged(seed, True))
    def run(data):
        _check(worker, "session", "s.rvsession.json", data)

    run()
