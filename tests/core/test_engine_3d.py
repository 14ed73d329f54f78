"""Engine on small 3D brains (4-6 mm) and the 1 mm brain for cancel timing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging import synthetic as syn
from regviewer.core.registration.engine import CancelToken, register
from regviewer.core.registration.params import OptimizerParams, Pipeline, replace
from regviewer.core.registration.presets import PRESET_NAMES, load_preset
from regviewer.core.transforms.ops import transform_points


@pytest.fixture(scope="module")
def brain(test_data):
    """4 mm T1 (fixed) and T2-like (moving) related by a known affine (no warp)."""
    return syn.brain_pair(test_data, shrink=1, with_warp=False, grid="4mm")


@pytest.fixture(scope="module")
def points(brain):
    return syn.brain_points(brain.mask, 300)


def _fast(pipeline: Pipeline, iterations: int) -> Pipeline:
    stages = tuple(replace(s, optimizer=replace(s.optimizer, iterations=min(iterations, s.optimizer.iterations)))
                   for s in pipeline.stages)
    return replace(pipeline, stages=stages)


def test_affine_mi_recovers_known_affine_on_multimodal_brain(brain, points):
    res = register(brain.fixed, brain.moving, preset="affine-mi")
    err = syn.target_registration_error(res.transform, brain.true, points)
    assert err.mean() < 1.0 and err.max() < 2.5, (err.mean(), err.max())  # 4 mm voxels
    assert res.transform.GetName() == "CompositeTransform" and res.history


@pytest.mark.parametrize("kind", ["rigid", "versor"])
def test_rigid_models_recover_a_rigid_transform_3d(brain, points, kind):
    centre = brain.fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in brain.fixed.GetSize()])
    true = syn.affine_transform(centre, rotation_deg=(5.0, -4.0, 8.0), translation_mm=(6.0, -5.0, 4.0))
    t2_on_fixed = sitk.Resample(brain.moving, brain.fixed, brain.true, sitk.sitkLinear)  # undo the known affine
    moving = syn.warp_image(t2_on_fixed, true)
    pipe = load_preset("rigid-mi")
    pipe = replace(pipe, stages=(replace(pipe.stages[0], transform=replace(pipe.stages[0].transform, kind=kind)),))
    res = register(brain.fixed, moving, params=pipe)
    err = syn.target_registration_error(res.transform, true, points)
    assert err.mean() < 1.5, (kind, err.mean())


def test_symmetric_mode_is_inverse_consistent(brain, points):
    """||T_AB(T_BA(x)) - x|| for x in B: plain registrations leave a residual; symmetric ones
    are exact inverses of each other by construction (matrix-log average)."""
    pipe = _fast(load_preset("affine-mi"), 60)
    ice = {}
    for symmetric in (False, True):
        p = replace(pipe, symmetric=symmetric)
        ab = register(brain.fixed, brain.moving, params=p).transform
        ba = register(brain.moving, brain.fixed, params=p).transform
        x = transform_points(brain.true, points)  # points inside the brain in B's space
        ice[symmetric] = np.linalg.norm(transform_points(ab, transform_points(ba, x)) - x, axis=1).mean()
    assert ice[True] < 1e-6 < ice[False], ice


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_loads_and_runs(test_data, name):
    pipe = _fast(load_preset(name), 5)
    assert pipe.description
    if name == "photo-2d":
        fixed = sitk.ReadImage(str(test_data / "camera_128.nii.gz"), sitk.sitkFloat32)
        moving = sitk.Resample(fixed, fixed, sitk.TranslationTransform(2, (3.0, 2.0)))
    else:
        pair = syn.brain_pair(test_data, shrink=2, with_warp=False, grid="4mm")  # 8 mm
        fixed, moving = pair.fixed, pair.moving
        if name in ("rigid", "demons"):  # same-modality presets
            moving = syn.warp_image(pair.fixed, pair.true)
    res = register(fixed, moving, preset=None, params=pipe)
    assert res.history and not res.cancelled and res.stop_reason
    assert res.resampled.GetSize() == fixed.GetSize()


def test_cancel_on_the_1mm_brain_returns_within_a_second(test_data):
    small = sitk.ReadImage(str(test_data / "mni152_2009a_t1_4mm.nii.gz"))
    # the 4 mm template resampled onto the 1 mm template's grid (197 x 233 x 189): full-size work to cancel
    origin = small.TransformContinuousIndexToPhysicalPoint([-0.375] * 3)
    t1 = sitk.Resample(small, [197, 233, 189], sitk.Transform(), sitk.sitkLinear, origin, (1.0, 1.0, 1.0),
                       small.GetDirection(), 0.0, small.GetPixelID())
    moving = sitk.Resample(t1, t1, sitk.TranslationTransform(3, (4.0, -3.0, 2.0)), sitk.sitkLinear)
    token = CancelToken()
    started = threading.Event()
    out = {}

    def work():
        out["result"] = register(t1, moving, preset="affine-mi", cancel=token, progress=lambda p: started.set())
        out["returned"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(120), "no progress event within 2 minutes"
    time.sleep(0.3)
    cancelled_at = time.perf_counter()
    token.cancel()
    thread.join(30)
    res = out["result"]
    assert res.cancelled and "cancel" in res.stop_reason
    assert out["returned"] - cancelled_at < 1.5, out["returned"] - cancelled_at
    assert res.transform is not None and res.resampled.GetSize() == t1.GetSize()


def test_landmark_initializer(brain, points):
    lm = pytest.importorskip("regviewer.core.landmarks.model")
    if not hasattr(lm, "LandmarkSet") or not hasattr(lm, "fit"):
        pytest.skip("landmarks module has no LandmarkSet/fit yet")
    fixed_pts = points[:8]
    moving_pts = transform_points(brain.true, fixed_pts)
    landmarks = lm.LandmarkSet(dimension=3)
    for f, m in zip(fixed_pts, moving_pts):
        landmarks.add_pair(fixed=tuple(f), moving=tuple(m))
    pipe = _fast(load_preset("affine-mi"), 1)
    res = register(brain.fixed, brain.moving, params=pipe, landmarks=landmarks)
    assert syn.target_registration_error(res.transform, brain.true, points).mean() < 2.0
