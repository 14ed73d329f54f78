"""Engine on 2D images (fast): every model, metric and optimiser recovers a known transform."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.registration.engine import CancelToken, register
from regviewer.core.errors import IncompatibleImagesError, ParameterError, RegistrationFailed
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage,
                                   TransformParams)
from regviewer.core.transforms.ops import transform_points


@pytest.fixture(scope="module")
def camera(test_data):
    """The camera photograph at 128 px, 2 mm pixels, float32, centred, on a black border
    (as in scans: without a background, MI can prefer sliding the images apart)."""
    img = sitk.ReadImage(str(test_data / "camera_128.nii.gz"), sitk.sitkFloat32)
    img = sitk.ConstantPad(img, [24, 24], [24, 24], 0.0)
    img.SetSpacing((2.0, 2.0))
    img.SetOrigin((-175.0, -175.0))
    return img


def _warp(image, true):
    """Moving image such that moving(true(x)) == image(x)."""
    return sitk.Resample(image, image, true.GetInverse(), sitk.sitkLinear, 0.0)


def _points(image, n=200):
    size = np.array(image.GetSize())
    idx = np.random.default_rng(0).uniform(size * 0.2, size * 0.8, (n, 2))
    return np.array([image.TransformContinuousIndexToPhysicalPoint(list(p)) for p in idx])


def _tre(estimated, true, pts):
    return np.linalg.norm(transform_points(estimated, pts) - transform_points(true, pts), axis=1)


def _similarity_true():
    t = sitk.Similarity2DTransform()
    t.SetScale(1.04)
    t.SetAngle(np.deg2rad(6))
    t.SetTranslation((5.0, -4.0))
    return t


def _stage(kind="affine", metric="mean_squares", optimizer="regular_step", iterations=200, init="geometry", **kw):
    return Stage(name=kind, transform=TransformParams(kind=kind, **kw.pop("transform", {})),
                 metric=MetricParams(kind=metric), optimizer=OptimizerParams(kind=optimizer, iterations=iterations,
                                                                              **kw.pop("opt", {})),
                 pyramid=kw.pop("pyramid", PyramidParams((2, 1), (1.0, 0.0))),
                 sampling=kw.pop("sampling", SamplingParams("none")), initializer=init)


@pytest.mark.parametrize("kind", ["translation", "rigid", "similarity", "affine"])
def test_linear_models_recover_known_transform(camera, kind):
    if kind == "translation":
        true = sitk.TranslationTransform(2, (6.0, -4.0))
    elif kind == "rigid":
        true = sitk.Euler2DTransform((0, 0), np.deg2rad(8), (5.0, -3.0))
    else:
        true = _similarity_true()
        if kind == "affine":
            a = sitk.AffineTransform(2)
            a.SetMatrix((1.05, 0.04, -0.03, 0.96))
            a.SetTranslation((4.0, 3.0))
            true = a
    moving = _warp(camera, true)
    res = register(camera, moving, params=Pipeline(stages=(_stage(kind),)))
    err = _tre(res.transform, true, _points(camera))
    assert err.mean() < 0.5, (kind, err.mean(), res.stop_reason)
    assert res.history and res.resampled.GetSize() == camera.GetSize()


@pytest.mark.parametrize("optimizer", ["regular_step", "gradient_descent_line_search", "lbfgsb", "lbfgs2",
                                       "conjugate_gradient_line_search", "powell", "amoeba"])
def test_every_optimizer_recovers_a_known_transform(camera, optimizer):
    """L-BFGS-B and Amoeba ignore ITK's parameter scales, so they get a translation (all
    parameters in mm); the others a rigid transform (radians and mm mixed)."""
    unscaled = optimizer in ("lbfgsb", "amoeba")
    if unscaled:
        true = sitk.TranslationTransform(2, (4.0, -3.0))
    else:
        true = sitk.Euler2DTransform((0, 0), np.deg2rad(5), (4.0, -3.0))
    moving = _warp(camera, true)
    opt = {"simplex_delta": 2.0} if optimizer in ("powell", "amoeba") else {}
    if optimizer in ("gradient_descent_line_search", "conjugate_gradient_line_search"):
        opt = {"learning_rate": 4.0}
    stage = _stage("translation" if unscaled else "rigid", "mean_squares", optimizer, 300, opt=opt)
    res = register(camera, moving, params=Pipeline(stages=(stage,)))
    err = _tre(res.transform, true, _points(camera))
    assert err.mean() < 0.5, (optimizer, err.mean(), res.stop_reason)


@pytest.mark.parametrize("metric", ["mattes", "joint_histogram", "correlation", "mean_squares", "ants_nc"])
def test_every_metric_on_a_same_modality_pair(camera, metric):
    true = sitk.Euler2DTransform((0, 0), np.deg2rad(6), (5.0, -4.0))
    moving = _warp(camera, true) * 0.8 + 10  # linear intensity change: all of these cope
    sampling = SamplingParams("random", 0.5) if metric in ("mattes", "joint_histogram") else SamplingParams("none")
    res = register(camera, moving, params=Pipeline(stages=(_stage("rigid", metric, sampling=sampling),)))
    err = _tre(res.transform, true, _points(camera))
    assert err.mean() < 0.6, (metric, err.mean(), res.stop_reason)


def test_mutual_information_succeeds_where_mean_squares_fails(camera):
    """An inverted-contrast (multi-modal-like) pair: squared differences pull the wrong way."""
    true = sitk.Euler2DTransform((0, 0), np.deg2rad(6), (6.0, -5.0))
    moving = 255.0 - _warp(camera, true)
    errors = {}
    for metric in ("mattes", "mean_squares"):
        sampling = SamplingParams("random", 0.5) if metric == "mattes" else SamplingParams("none")
        res = register(camera, moving, params=Pipeline(stages=(_stage("rigid", metric, sampling=sampling),)))
        errors[metric] = _tre(res.transform, true, _points(camera)).mean()
    assert errors["mattes"] < 0.5, errors
    assert errors["mean_squares"] > 3.0, errors


def _warp_true():
    ref = sitk.Image([128, 128], sitk.sitkFloat32)
    ref.SetSpacing((2.0, 2.0))
    ref.SetOrigin((-127.0, -127.0))
    bs = sitk.BSplineTransformInitializer(ref, [3, 3], 3)
    rng = np.random.default_rng(1)
    params = rng.uniform(-4, 4, len(bs.GetParameters()))
    bs.SetParameters(params.tolist())
    return bs


def _invert_field(true, ref):
    f = sitk.TransformToDisplacementField(true, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(),
                                          ref.GetSpacing(), ref.GetDirection())
    return sitk.DisplacementFieldTransform(sitk.InvertDisplacementField(f, 50))


@pytest.mark.parametrize("optimizer", ["lbfgsb", "lbfgs2", "regular_step", "gradient_descent_line_search",
                                       "conjugate_gradient_line_search"])
def test_multilevel_bspline_works_with_every_gradient_optimizer(camera, optimizer):
    true = _warp_true()
    moving = sitk.Resample(camera, camera, _invert_field(true, camera), sitk.sitkLinear, 0.0)
    pts = _points(camera)
    before = _tre(sitk.Transform(2, sitk.sitkIdentity), true, pts).mean()
    opt = {"learning_rate": 2.0} if optimizer != "lbfgsb" else {}
    stage = _stage("bspline", "mean_squares", optimizer, 60, init="none", transform={"grid_spacing_mm": 50.0},
                   pyramid=PyramidParams((4, 2, 1), (2.0, 1.0, 0.0)), opt=opt)
    res = register(camera, moving, params=Pipeline(stages=(stage,)))
    after = _tre(res.transform, true, pts).mean()
    assert after < 0.5 * before, (optimizer, before, after, res.stop_reason)
    levels = {h.level for h in res.history}
    assert max(levels) >= 1  # coarse-to-fine happened (an optimiser may converge with no iteration at a level)


@pytest.mark.parametrize("kind", ["demons", "displacement"])
def test_dense_field_recovers_smooth_warp(camera, kind):
    true = _warp_true()
    moving = sitk.Resample(camera, camera, _invert_field(true, camera), sitk.sitkLinear, 0.0)
    pts = _points(camera)
    before = _tre(sitk.Transform(2, sitk.sitkIdentity), true, pts).mean()
    stage = _stage(kind, "mean_squares", "gradient_descent_line_search", 50, init="none",
                   transform={"field_smoothing_mm": 4.0, "update_smoothing_mm": 2.0},
                   pyramid=PyramidParams((4, 2, 1), (2.0, 1.0, 0.0)))
    res = register(camera, moving, params=Pipeline(stages=(stage,)))
    after = _tre(res.transform, true, pts).mean()
    assert after < 0.6 * before, (kind, before, after)


def test_progress_snapshots_are_independent_copies(camera):
    true = sitk.Euler2DTransform((0, 0), np.deg2rad(5), (4.0, -3.0))
    moving = _warp(camera, true)
    seen = []
    res = register(camera, moving, params=Pipeline(stages=(_stage("rigid"),)), progress=seen.append)
    assert len(seen) == len(res.history) > 5
    first, last = seen[0], seen[-1]
    assert first.transform.GetParameters() != last.transform.GetParameters()
    assert first.stage_name == "rigid" and last.n_levels == 2 and last.elapsed >= first.elapsed
    p = np.array([10.0, 20.0])
    assert np.allclose(transform_points(last.transform, p), transform_points(res.transform, p), atol=0.5)


def test_cancel_from_the_callback_returns_result(camera):
    true = sitk.Euler2DTransform((0, 0), np.deg2rad(5), (4.0, -3.0))
    moving = _warp(camera, true)
    token = CancelToken()

    def progress(p):
        if p.iteration >= 3:
            token.cancel()

    res = register(camera, moving, params=Pipeline(stages=(_stage("rigid"), _stage("affine", init="none"))),
                   progress=progress, cancel=token)
    assert res.cancelled and "cancel" in res.stop_reason
    assert max(h.stage for h in res.history) == 0 and len(res.history) <= 5


def test_same_seed_same_result_bit_for_bit(camera):
    true = _similarity_true()
    moving = 255.0 - _warp(camera, true)
    pipe = Pipeline(stages=(_stage("affine", "mattes", sampling=SamplingParams("random", 0.2)),))
    a = register(camera, moving, params=pipe, seed=3)
    b = register(camera, moving, params=pipe, seed=3)
    c = register(camera, moving, params=pipe, seed=4)
    assert a.transform.GetParameters() == b.transform.GetParameters()
    assert [h.metric for h in a.history] == [h.metric for h in b.history]
    assert [h.metric for h in a.history] != [h.metric for h in c.history]


def test_rgb_photographs_register_on_luminance(demo_data):
    fixed, moving = demo_data / "retina_fixed.png", demo_data / "retina_moving.png"
    if not fixed.exists():
        pytest.skip("demo data not generated yet")
    res = register(fixed, moving, preset="photo-2d")
    assert res.resampled.GetNumberOfComponentsPerPixel() == 3
    truth = demo_data / "retina_true_fixed_to_moving.h5"
    true = sitk.ReadTransform(str(truth))
    img = sitk.ReadImage(str(fixed))
    err = _tre(res.transform, true, _points(img))
    assert err.mean() < 2.5, err.mean()  # affine only; the truth's own warp leaves ~1.6 px


def test_errors_are_typed(camera):
    vol = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    with pytest.raises(IncompatibleImagesError, match="2D"):
        register(camera, vol)
    with pytest.raises(ParameterError, match="affine-mi"):
        register(camera, camera, preset="no-such-preset")
    far = sitk.Image(camera)
    far.SetOrigin((5000.0, 5000.0))
    with pytest.raises(RegistrationFailed, match="overlap"):
        register(camera, far, params=Pipeline(stages=(_stage("rigid", init="none"),)))
    with pytest.raises(IncompatibleImagesError, match="mask"):
        register(camera, camera, fixed_mask=sitk.Image([8, 8], sitk.sitkUInt8))


def test_masks_and_initial_transform(camera):
    true = sitk.Euler2DTransform((0, 0), np.deg2rad(5), (4.0, -3.0))
    moving = _warp(camera, true)
    mask = sitk.Cast(camera > -1, sitk.sitkUInt8)
    res = register(camera, moving, params=Pipeline(stages=(_stage("rigid", init="none"),)), fixed_mask=mask,
                   moving_mask=mask, initial_transform=sitk.TranslationTransform(2, (3.0, -2.0)))
    assert _tre(res.transform, true, _points(camera)).mean() < 0.3


def test_symmetric_mode_reduces_inverse_consistency_error_for_deformable(camera):
    true = _warp_true()
    moving = sitk.Resample(camera, camera, _invert_field(true, camera), sitk.sitkLinear, 0.0)
    stage = _stage("demons", "mean_squares", "regular_step", 30, init="none",
                   transform={"field_smoothing_mm": 4.0, "update_smoothing_mm": 0.0, "demons_variant": "classic"},
                   pyramid=PyramidParams((2, 1), (1.0, 0.0)))
    x = transform_points(true, _points(camera))  # points in the moving image's space
    ice = {}
    for symmetric in (False, True):
        pipe = Pipeline(stages=(stage,), symmetric=symmetric)
        ab = register(camera, moving, params=pipe).transform
        ba = register(moving, camera, params=pipe).transform
        ice[symmetric] = np.linalg.norm(transform_points(ab, transform_points(ba, x)) - x, axis=1).mean()
    print("inverse-consistency error (mm):", ice)
    assert ice[True] < 0.7 * ice[False], ice
