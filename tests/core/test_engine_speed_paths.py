"""The speed paths keep results repeatable: threaded metrics with a fixed split, shared pyramid images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.registration.engine import register
from regviewer.core.registration.params import MetricParams, Pipeline, PyramidParams, SamplingParams, Stage
from regviewer.core.registration.pyramid import PyramidCache


def _pair():
    y, x = np.mgrid[0:80, 0:96].astype(np.float32)
    fixed = np.exp(-((x - 40) ** 2 + (y - 35) ** 2) / 150.0) + 0.5 * np.exp(-((x - 65) ** 2 + (y - 50) ** 2) / 60.0)
    moving = np.exp(-((x - 43) ** 2 + (y - 33) ** 2) / 150.0) + 0.5 * np.exp(-((x - 68) ** 2 + (y - 48) ** 2) / 60.0)
    return sitk.GetImageFromArray(fixed.astype(np.float32)), sitk.GetImageFromArray(moving.astype(np.float32))


def test_threaded_metrics_are_bit_for_bit_reproducible():
    """Correlation runs on several work units in reproducible mode; two runs must still agree exactly."""
    fixed, moving = _pair()
    stage = Stage(initializer="geometry", metric=MetricParams(kind="correlation"),
                  sampling=SamplingParams("random", 0.3), pyramid=PyramidParams((2, 1), (1.0, 0.0)))
    pipe = Pipeline(stages=(stage, Stage(name="again", metric=MetricParams(kind="correlation"),
                                         pyramid=PyramidParams((2, 1), (1.0, 0.0)))))
    runs = [register(fixed, moving, params=pipe, seed=5) for _ in range(3)]
    assert all(r.transform.GetParameters() == runs[0].transform.GetParameters() for r in runs)
    assert all([h.metric for h in r.history] == [h.metric for h in runs[0].history] for r in runs)
    np.testing.assert_allclose(runs[0].transform.TransformPoint((40.0, 35.0)), (43.0, 33.0), atol=0.3)


def test_pyramid_images_are_made_once_and_shared():
    fixed, _ = _pair()
    cache = PyramidCache()
    a, rest = cache.level(fixed, 4, 2.0)
    assert rest == 2 and a.GetSize() == (48, 40)  # averaged 2x, ITK shrinks its grid the other 2x
    assert cache.level(fixed, 4, 2.0)[0] is a and cache.level(fixed, 1, 0.0)[0] is fixed
    b, rest = cache.level(fixed, 2, 1.0)
    assert rest == 2 and b.GetSize() == fixed.GetSize() and b is not a
    # same physical extent, smoothed: the level image's mean equals the original's
    assert abs(np.mean(sitk.GetArrayViewFromImage(a)) - np.mean(sitk.GetArrayViewFromImage(fixed))) < 1e-3


def test_a_level_made_in_the_background_is_the_same_image():
    """`prefetch` makes the next level on another thread while the optimiser runs; same numbers."""
    fixed, _ = _pair()
    inline = PyramidCache().level(fixed, 4, 2.0)
    cache = PyramidCache()
    cache.prefetch(fixed, 4, 2.0)
    cache.prefetch(fixed, 1, 0.0)  # nothing to make: the image itself
    made = cache.level(fixed, 4, 2.0)
    assert made[1] == inline[1]
    assert np.array_equal(sitk.GetArrayViewFromImage(made[0]), sitk.GetArrayViewFromImage(inline[0]))
    assert cache.level(fixed, 4, 2.0)[0] is made[0]


def test_mattes_runs_repeat_bit_for_bit_with_the_background_work():
    """Default (reproducible) Mattes MI with prefetched levels and the wrong-optimum search running
    alongside: the transform and the optimiser's history repeat exactly."""
    fixed, moving = _pair()
    stage = Stage(initializer="geometry", sampling=SamplingParams("regular", 0.5),
                  pyramid=PyramidParams((4, 2, 1), (2.0, 1.0, 0.0)))
    pipe = Pipeline(stages=(stage,))
    runs = [register(fixed, moving, params=pipe) for _ in range(3)]
    assert all(r.transform.GetParameters() == runs[0].transform.GetParameters() for r in runs)
    assert all([h.metric for h in r.history] == [h.metric for h in runs[0].history] for r in runs)
    assert runs[0].details["verification"]["final"] > runs[0].details["verification"]["start"]


def test_coarse_levels_stop_at_a_step_scaled_by_their_shrink(monkeypatch):
    """`coarse_min_step` (affine-mi): level k of a 4/2/1 pyramid stops at 4x, 2x, 1x the minimum step."""
    from regviewer.core.registration import stages
    from regviewer.core.registration.params import OptimizerParams
    from regviewer.core.registration.presets import load_preset

    seen = []
    real = stages._execute

    def spy(stage, *args, **kwargs):
        seen.append(stage.optimizer.min_step)
        return real(stage, *args, **kwargs)

    monkeypatch.setattr(stages, "_execute", spy)
    fixed, moving = _pair()
    opt = OptimizerParams(min_step=0.001, coarse_min_step=True)
    pipe = Pipeline(stages=(Stage(initializer="geometry", optimizer=opt, pyramid=PyramidParams((4, 2, 1), (2.0, 1.0, 0.0))),))
    register(fixed, moving, params=pipe)
    np.testing.assert_allclose(seen, [0.004, 0.002, 0.001])
    seen.clear()
    register(fixed, moving, params=Pipeline(stages=(Stage(initializer="geometry", pyramid=PyramidParams((2, 1), (1.0, 0.0))),)))
    assert seen == [Stage().optimizer.min_step] * 2  # off by default
    assert load_preset("affine-mi").stages[0].optimizer.coarse_min_step


def test_a_landmark_guided_stage_scales_the_coarse_minimum_step_as_the_plain_one(monkeypatch):
    """The same preset with a landmark weight must optimise like the plain stage, level by level."""
    from regviewer.core.registration import landmark_guided
    from regviewer.core.registration.params import OptimizerParams

    seen = []
    real = landmark_guided.regular_step

    def spy(objective, n, learning_rate, min_step, *args, **kwargs):
        seen.append(min_step)
        return real(objective, n, learning_rate, min_step, *args, **kwargs)

    monkeypatch.setattr(landmark_guided, "regular_step", spy)
    fixed, moving = _pair()
    opt = OptimizerParams(min_step=0.001, coarse_min_step=True, iterations=5)
    stage = Stage(initializer="geometry", metric=MetricParams(kind="ngf"), optimizer=opt,
                  pyramid=PyramidParams((4, 2, 1), (2.0, 1.0, 0.0)))
    register(fixed, moving, params=Pipeline(stages=(stage,)))
    np.testing.assert_allclose(seen, [0.004, 0.002, 0.001])


def test_background_work_gets_its_own_image_objects_sharing_the_pixels():
    """Reading pixels from numpy calls the image object's MakeUnique, which swaps its buffer; two
    threads doing that on one object (verification and pose search on the fixed image) crashed
    the engine now and then. Each background task gets an object of its own."""
    import SimpleITK as sitk

    from regviewer.core.registration.pyramid import in_background

    image = sitk.GaussianSource(sitk.sitkFloat32, [16, 16, 16], [4.0] * 3, [8.0] * 3)
    received = in_background(lambda img, n: (img, n), image, 3).result()
    assert received[0] is not image and received[1] == 3
    assert sitk.Hash(received[0]) == sitk.Hash(image)
    readers = [in_background(lambda img: float(sitk.GetArrayViewFromImage(img).sum()), image) for _ in range(8)]
    assert len({f.result() for f in readers}) == 1


def test_a_cancelled_run_leaves_no_background_work_running():
    """A thread still inside ITK when the process exits aborts it ("exception not rethrown"): a run
    cancelled mid-way used to return with its pose search and pyramid prefetches still running."""
    import threading

    import SimpleITK as sitk

    from regviewer.core.registration.engine import CancelToken, register
    from regviewer.core.registration.pyramid import BACKGROUND_THREAD_NAME
    from regviewer.core.registration.presets import load_preset

    fixed = sitk.GaussianSource(sitk.sitkFloat32, [64, 64, 64], [10.0, 14.0, 8.0], [30.0, 34.0, 30.0])
    moving = sitk.GaussianSource(sitk.sitkFloat32, [64, 64, 64], [10.0, 14.0, 8.0], [34.0, 30.0, 31.0])
    token = CancelToken()

    def cancel_at_once(_progress):
        token.cancel()

    result = register(fixed, moving, params=load_preset("affine-mi"), progress=cancel_at_once, cancel=token)
    assert result.cancelled
    assert not [t for t in threading.enumerate() if t.name == BACKGROUND_THREAD_NAME and t.is_alive()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_background_work_yields_the_cores_to_the_run_itself():
    """The pose search, pyramid prefetches and the evaluation run beside the optimisation: with more
    threads than cores, the optimisation everything waits for must get a core first."""
    import os
    import threading

    from regviewer.core.registration.pyramid import BACKGROUND_NICE, in_background

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    theirs = in_background(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    assert BACKGROUND_NICE > 0 and theirs == min(19, mine + BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller keeps its own


def test_a_single_threaded_pose_search_finds_the_same_candidates():
    """The wrong-optimum check scores its pose grid on one ITK thread (off the run's core); the
    search shares its cache with `search_pose`, so the numbers must not depend on the thread count."""
    from regviewer.core.registration.search import clear_cache, find_candidates

    fixed = sitk.GaussianSource(sitk.sitkFloat32, [48, 40, 36], [8.0, 5.0, 4.0], [20.0, 22.0, 17.0])
    fixed = fixed + sitk.GaussianSource(sitk.sitkFloat32, [48, 40, 36], [3.0] * 3, [30.0, 12.0, 20.0], 60.0)
    moving = sitk.Resample(fixed, sitk.Euler3DTransform((24, 20, 18), 0.3, -0.2, 0.5, (3.0, -2.0, 1.0)))
    found = []
    for threads in (0, 1):
        clear_cache()
        found.append(find_candidates(fixed, moving, "rigid", threads=threads))
    clear_cache()
    assert [(s, m.tolist(), t.tolist()) for s, m, t in found[0].chosen] == \
        [(s, m.tolist(), t.tolist()) for s, m, t in found[1].chosen]
    assert sitk.Hash(found[0].fixed) == sitk.Hash(found[1].fixed)
