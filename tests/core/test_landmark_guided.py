"""Landmark-guided stages and the NGF metric, on small synthetic 2D images (fast)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.landmarks.model import LandmarkSet
from regviewer.core.registration import landmark_guided
from regviewer.core.registration.engine import CancelToken, register
from regviewer.core.registration.ngf import NgfTerm
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams,
                                                SamplingParams, Stage, TransformParams)


def _blobs(shift=(0.0, 0.0), invert=False) -> sitk.Image:
    """64x64, 2 mm pixels: a few Gaussian blobs, moved by `shift` mm (so moving(x + shift) = fixed(x))."""
    yy, xx = np.mgrid[0:64, 0:64] * 2.0 - 63.0
    img = np.zeros((64, 64))
    for cx, cy, s, a in ((-20, -15, 7, 1.0), (18, -10, 5, 0.8), (0, 20, 9, 0.6), (25, 22, 4, 0.9), (-22, 18, 5, 0.7)):
        img += a * np.exp(-((xx - cx - shift[0]) ** 2 + (yy - cy - shift[1]) ** 2) / (2 * s * s))
    if invert:
        img = 1.0 - img  # another "modality": same edges, opposite contrast
    out = sitk.GetImageFromArray(img.astype(np.float32))
    out.SetSpacing((2.0, 2.0))
    out.SetOrigin((-63.0, -63.0))
    return out


def _stage(kind="translation", weight=0.0, metric="mean_squares", **kw) -> Stage:
    return Stage(name=kind, transform=TransformParams(kind=kind, grid_spacing_mm=kw.pop("grid", 30.0)),
                 metric=MetricParams(kind=metric), optimizer=OptimizerParams(kind="lbfgsb", iterations=60),
                 pyramid=PyramidParams((2, 1), (1.0, 0.0)), sampling=SamplingParams(strategy="none"),
                 landmark_weight=weight, **kw)


def _landmarks(shift, points=((-20.0, -15.0), (18.0, -10.0), (0.0, 20.0))) -> LandmarkSet:
    lm = LandmarkSet(2)
    for p in points:
        lm.add_pair(p, (p[0] + shift[0], p[1] + shift[1]))
    return lm


def _offset(tx) -> np.ndarray:
    return np.array(tx.TransformPoint((0.0, 0.0)))


def test_landmark_term_pulls_a_run_towards_the_landmarks():
    fixed, moving = _blobs(), _blobs(shift=(5.0, 0.0))  # the images say: fixed x -> x + (5, 0)
    lm = _landmarks((9.0, 3.0))  # the landmarks say: x -> x + (9, 3)
    misses = []
    for weight in (0.0, 0.01, 10.0):
        result = register(fixed, moving, params=Pipeline(stages=(_stage(weight=weight),)), landmarks=lm)
        misses.append(np.linalg.norm(_offset(result.transform) - (9.0, 3.0)))
    assert misses[0] > 3.5  # intensity alone: back at (5, 0)
    assert misses[2] < 0.5  # a heavy landmark term: at the landmarks
    assert misses[0] > misses[1] > misses[2]


def test_weight_zero_is_the_plain_run(monkeypatch):
    fixed, moving = _blobs(), _blobs(shift=(4.0, -2.0))
    lm = _landmarks((4.5, -2.5))
    plain = register(fixed, moving, params=Pipeline(stages=(Stage(name="t", transform=TransformParams("translation"),
                                                                  metric=MetricParams("mean_squares")),)),
                     landmarks=lm)
    monkeypatch.setattr(landmark_guided, "run_guided_stage", lambda *a, **k: pytest.fail("guided path used"))
    zero = register(fixed, moving, params=Pipeline(stages=(Stage(name="t", transform=TransformParams("translation"),
                                                                 metric=MetricParams("mean_squares"),
                                                                 landmark_weight=0.0),)),
                    landmarks=lm)
    assert zero.transform.GetParameters() == plain.transform.GetParameters()
    assert [h.metric for h in zero.history] == [h.metric for h in plain.history]


def test_bspline_stage_honours_a_local_landmark():
    """Identical images (the metric wants no deformation); one landmark moved 3 mm locally."""
    image = _blobs()
    lm = LandmarkSet(2)
    lm.add_pair((18.0, -10.0), (21.0, -10.0))
    for p in ((-30.0, -30.0), (30.0, 30.0), (-30.0, 30.0), (30.0, -30.0)):
        lm.add_pair(p, p)
    stage = _stage("bspline", weight=1.0, grid=20.0, initializer="none")
    result = register(image, image, params=Pipeline(stages=(stage,)), initial_transform=sitk.TranslationTransform(2),
                      landmarks=lm)
    moved = np.array(result.transform.TransformPoint((18.0, -10.0))) - (18.0, -10.0)
    still = np.array(result.transform.TransformPoint((-30.0, -30.0))) - (-30.0, -30.0)
    assert moved[0] > 1.5 and abs(moved[1]) < 0.5
    assert np.linalg.norm(still) < 0.5
    plain = register(image, image, params=Pipeline(stages=(_stage("bspline", weight=0.0, grid=20.0),)),
                     initial_transform=sitk.TranslationTransform(2), landmarks=lm)
    assert abs(plain.transform.TransformPoint((18.0, -10.0))[0] - 18.0) < 0.2


def test_parameters_round_trip_and_are_checked():
    stage = _stage("affine", weight=0.05, metric="ngf")
    pipe = Pipeline(stages=(stage,))
    back = Pipeline.from_json(pipe.to_json())
    assert back == pipe and back.stages[0].landmark_weight == 0.05 and back.stages[0].metric.kind == "ngf"
    field = {f.name: f for f in Stage.__dataclass_fields__.values()}["landmark_weight"]
    assert field.metadata["help"] and field.metadata["min"] == 0.0
    with pytest.raises(ParameterError, match="landmark_weight"):
        Pipeline(stages=(_stage(weight=-1.0),)).validate()
    with pytest.raises(ParameterError, match="demons"):
        register(_blobs(), _blobs(), params=Pipeline(stages=(_stage("demons", weight=1.0),)),
                 initial_transform=sitk.TranslationTransform(2), landmarks=_landmarks((1.0, 0.0)))


def _cancelled_after_three_snapshots(pipeline: Pipeline):
    """Run `pipeline` on a shifted pair with landmarks, cancelling at the third progress event:
    the result is cancelled, every event carried a transform, and the best so far is kept."""
    fixed, moving = _blobs(), _blobs(shift=(6.0, -3.0))
    token, events = CancelToken(), []

    def progress(p):
        events.append(p)
        if len(events) == 3:
            token.cancel()

    result = register(fixed, moving, params=pipeline, landmarks=_landmarks((6.0, -3.0)), progress=progress,
                      cancel=token)
    assert result.cancelled and len(events) == 3 and len(result.history) == 3
    assert all(isinstance(e.transform, sitk.Transform) for e in events)
    assert np.linalg.norm(_offset(result.transform) - (6.0, -3.0)) < 2.0  # near the landmark start, not lost


def test_cancel_returns_the_best_so_far_with_live_snapshots():
    _cancelled_after_three_snapshots(Pipeline(stages=(_stage("affine", weight=0.01), _stage("bspline", weight=0.01))))


def test_ngf_gradient_matches_finite_differences():
    fixed, moving = _blobs(), _blobs(shift=(3.0, -2.0), invert=True)
    term = NgfTerm(fixed, moving, None)
    tx = sitk.AffineTransform(2)
    tx.SetCenter((1.0, 2.0))
    tx.SetParameters((1.01, 0.02, -0.01, 0.99, 1.0, -0.5))
    value, grad = term.value_and_gradient(tx)
    p = np.array(tx.GetParameters())
    for k, h in ((0, 1e-4), (2, 1e-4), (4, 1e-3), (5, 1e-3)):
        q = p.copy()
        q[k] += h
        tx.SetParameters(tuple(q))
        up = term.value_and_gradient(tx)[0]
        q[k] -= 2 * h
        tx.SetParameters(tuple(q))
        down = term.value_and_gradient(tx)[0]
        assert grad[k] == pytest.approx((up - down) / (2 * h), rel=0.02, abs=1e-6)
    assert -1.0 <= value < -0.05


def test_ngf_registers_opposite_contrast():
    fixed, moving = _blobs(), _blobs(shift=(4.0, -3.0), invert=True)
    stage = _stage("translation", metric="ngf", initializer="none")
    result = register(fixed, moving, params=Pipeline(stages=(stage,)))
    assert np.linalg.norm(_offset(result.transform) - (4.0, -3.0)) < 0.3


def test_symmetric_run_is_guided_both_ways():
    fixed, moving = _blobs(), _blobs(shift=(5.0, 0.0))
    lm = _landmarks((9.0, 3.0))
    stage = _stage(weight=10.0)
    result = register(fixed, moving, params=Pipeline(stages=(stage,), symmetric=True), landmarks=lm)
    assert np.linalg.norm(_offset(result.transform) - (9.0, 3.0)) < 0.5


def test_smoothness_penalty_spreads_a_local_pull():
    image = _blobs()
    lm = LandmarkSet(2)
    lm.add_pair((18.0, -10.0), (21.0, -10.0))
    lm.add_pair((-30.0, -30.0), (-30.0, -30.0))
    moved = []
    for smoothness in (0.0, 100.0):
        stage = _stage("bspline", weight=1.0, grid=20.0)
        stage = Stage(**{**stage.__dict__, "transform": TransformParams(kind="bspline", grid_spacing_mm=20.0,
                                                                         smoothness=smoothness)})
        result = register(image, image, params=Pipeline(stages=(stage,)),
                          initial_transform=sitk.TranslationTransform(2), landmarks=lm)
        moved.append(result.transform.TransformPoint((18.0, -10.0))[0] - 18.0)
    assert moved[0] > 1.5 and moved[1] < moved[0] - 0.3


def _textured(shift=(0.0, 0.0)) -> sitk.Image:
    """96x96, 1 mm: blobs plus fine texture, so a shrunk sampling grid aliases unless it is a virtual domain."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:96, 0:96] - 47.5
    img = np.zeros((96, 96))
    for cx, cy, s, a in rng.uniform((-30, -30, 3, 0.3), (30, 30, 9, 1.0), size=(12, 4)):
        img += a * np.exp(-((xx - cx - shift[0]) ** 2 + (yy - cy - shift[1]) ** 2) / (2 * s * s))
    img += 0.2 * np.sin((xx - shift[0]) * 1.3) * np.cos((yy - shift[1]) * 1.1)
    out = sitk.GetImageFromArray(img.astype(np.float32))
    out.SetOrigin((-47.5, -47.5))
    return out


def test_metric_term_is_the_plain_stages_metric_on_a_shrunk_level():
    """The guided objective must be the one a plain stage optimises on the same level (same level
    images from the shared pyramid, same sampling grid): a fixed image shrunk beforehand gave
    another, aliased objective whose optimum was off (guided runs ended worse than plain ones)."""
    from regviewer.core.registration.guided_terms import ItkMetricTerm
    from regviewer.core.registration.run_state import RunState
    from regviewer.core.registration.stages import run_method_stage

    fixed, moving = _textured(), _textured(shift=(2.5, -1.5))
    stage = Stage(name="t", transform=TransformParams("translation"), metric=MetricParams("mattes", bins=32),
                  optimizer=OptimizerParams(kind="regular_step", iterations=3),
                  pyramid=PyramidParams((4,), (2.0,)), sampling=SamplingParams(strategy="random", percentage=0.3))
    run = RunState(None, None)
    run_method_stage(stage, fixed, moving, None, run, seed=7)
    first = run.history[0].metric  # ITK's own value at the start (identity)
    fixed_l, rest = run.pyramid.level(fixed, 4, 2.0)
    moving_l, _ = run.pyramid.level(moving, 4, 2.0)
    assert rest > 1  # the case that went wrong
    term = ItkMetricTerm(stage, fixed_l, moving_l, None, 7, None, None, True, rest)
    value, grad = term.value_and_gradient(sitk.TranslationTransform(2))
    assert value == pytest.approx(first, rel=1e-9)
    assert np.linalg.norm(grad) > 0


def test_metric_term_gives_fresh_values_on_every_call():
    """One ITK method is re-run per call; the probe is re-attached each time (SimpleITK transforms
    are copy-on-write, so a stale probe would give a zero gradient)."""
    from regviewer.core.registration.guided_terms import ItkMetricTerm

    fixed, moving = _blobs(), _blobs(shift=(3.0, -2.0))
    term = ItkMetricTerm(_stage(metric="mean_squares"), fixed, moving, None, 0, None, None, True)
    tx = sitk.TranslationTransform(2)
    v0, g0 = term.value_and_gradient(tx)
    tx.SetOffset((3.0, -2.0))
    v1, g1 = term.value_and_gradient(tx)
    tx.SetOffset((0.0, 0.0))
    v2, g2 = term.value_and_gradient(tx)
    assert v1 < 0.2 * v0 and v2 == v0 and np.array_equal(g0, g2)
    assert g0[0] < 0 < g0[1]  # downhill is towards (+3, -2)


def test_guided_stage_uses_the_shared_pyramid(monkeypatch):
    from regviewer.core.registration.pyramid import PyramidCache

    calls = []
    original = PyramidCache.level

    def spy(self, image, shrink, sigma, sigma_in_mm=False):
        calls.append((shrink, sigma))
        return original(self, image, shrink, sigma, sigma_in_mm)

    monkeypatch.setattr(PyramidCache, "level", spy)
    for metric in ("mean_squares", "ngf"):
        calls.clear()
        register(_blobs(), _blobs(shift=(2.0, 0.0)), params=Pipeline(stages=(_stage(weight=0.01, metric=metric),)),
                 landmarks=_landmarks((2.0, 0.0)))
        assert calls == [(2, 1.0), (2, 1.0), (1, 0.0), (1, 0.0)]  # fixed and moving, per level


def test_weight_near_zero_matches_the_plain_linear_stage():
    """With the landmark term negligible, the guided loop (regular steps) ends where ITK's own
    regular-step stage ends, from the same start on the same pyramid."""
    fixed, moving = _textured(), _textured(shift=(4.0, -3.0))
    lm = _landmarks((4.5, -2.5))

    def stage(weight):
        return Stage(name="t", transform=TransformParams("translation"), metric=MetricParams("mattes", bins=32),
                     optimizer=OptimizerParams(kind="regular_step", iterations=100),
                     pyramid=PyramidParams((2, 1), (1.0, 0.0)), sampling=SamplingParams(strategy="none"),
                     landmark_weight=weight)

    plain = register(fixed, moving, params=Pipeline(stages=(stage(0.0),)), landmarks=lm)
    guided = register(fixed, moving, params=Pipeline(stages=(stage(1e-9),)), landmarks=lm)
    assert "regular step" in guided.stop_reason
    assert np.linalg.norm(_offset(plain.transform) - (4.0, -3.0)) < 0.1
    assert np.linalg.norm(_offset(guided.transform) - _offset(plain.transform)) < 0.1


def test_regular_step_guided_stage_is_live_and_cancels():
    stage = Stage(name="affine", transform=TransformParams("affine"), metric=MetricParams("mean_squares"),
                  optimizer=OptimizerParams(kind="regular_step", iterations=100),
                  pyramid=PyramidParams((2, 1), (1.0, 0.0)), sampling=SamplingParams(strategy="none"),
                  landmark_weight=0.01)
    _cancelled_after_three_snapshots(Pipeline(stages=(stage,)))


def test_linear_stage_is_recentred_where_itk_puts_it():
    """ITK moves the optimised transform's centre to the moving-initial transform's during Execute;
    the guided stage adopts that centre first (same mapping), so the probed derivative refers to
    the stage transform's own parameters."""
    from regviewer.core.registration.guided_terms import ItkMetricTerm
    from regviewer.core.registration.landmark_guided import _with_itk_centre

    fixed, moving = _textured(), _textured(shift=(2.0, -1.0))
    previous = sitk.AffineTransform(2)
    previous.SetCenter((12.0, -7.0))
    previous.SetTranslation((0.5, 0.2))
    term = ItkMetricTerm(_stage("affine", metric="mean_squares"), fixed, moving, previous, 0, None, None, True)
    tx = sitk.AffineTransform(2)
    tx.SetCenter((0.0, 0.0))
    tx.SetMatrix((1.02, 0.03, -0.01, 0.98))
    tx.SetTranslation((1.0, -0.5))
    out = _with_itk_centre(tx, term)
    assert out.GetCenter() == pytest.approx((12.0, -7.0)) == term.probe_centre()
    for p in ((0.0, 0.0), (30.0, -20.0), (-25.0, 15.0)):
        assert out.TransformPoint(p) == pytest.approx(tx.TransformPoint(p), abs=1e-9)
    # the value is that of the mapping previous(out(x)): the same as one affine with no moving-initial
    from regviewer.core.transforms.ops import matrix_offset

    both = sitk.CompositeTransform([previous, out])
    a, t = matrix_offset(both)
    single = sitk.AffineTransform(2)
    single.SetMatrix(tuple(a.ravel()))
    single.SetTranslation(tuple(t))
    alone = ItkMetricTerm(_stage("affine", metric="mean_squares"), fixed, moving, None, 0, None, None, True)
    assert term.value_and_gradient(out)[0] == pytest.approx(alone.value_and_gradient(single)[0], rel=1e-6)
