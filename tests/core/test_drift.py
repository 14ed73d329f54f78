"""A pyramid level that wanders off from a good position keeps its best one (and stops early)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.registration import drift
from regviewer.core.registration.engine import register
from regviewer.core.registration.params import (MetricParams, OptimizerParams, Pipeline, PyramidParams,
                                                SamplingParams, Stage, TransformParams)

NEAR_THE_ANSWER = sitk.TranslationTransform(2, (3.05, -2.0))  # fixed -> moving is a shift of (3, -2)


def _blobs(shift=(0.0, 0.0)) -> sitk.Image:
    size = [96, 96]
    image = sitk.GaussianSource(sitk.sitkFloat32, size, [6.0, 9.0], [40.0 + shift[0], 50.0 + shift[1]], 100.0)
    return image + sitk.GaussianSource(sitk.sitkFloat32, size, [4.0, 4.0], [62.0 + shift[0], 30.0 + shift[1]], 80.0)


def _run(learning_rate: float, start: sitk.Transform = NEAR_THE_ANSWER):
    """One full-resolution level of a translation, its first step `learning_rate` px long."""
    stage = Stage(initializer="none", transform=TransformParams(kind="translation"),
                  metric=MetricParams(kind="mean_squares"),
                  optimizer=OptimizerParams(kind="regular_step", learning_rate=learning_rate, min_step=1e-4,
                                            iterations=200, relaxation=0.9, scales="none"),
                  pyramid=PyramidParams((1,), (0.0,)), sampling=SamplingParams(strategy="none"))
    return register(_blobs(), _blobs((3.0, -2.0)), params=Pipeline(stages=(stage,)), initial_transform=start)


def _shift(result) -> np.ndarray:
    return np.asarray(result.transform.TransformPoint((48.0, 48.0))) - (48.0, 48.0)


def test_a_level_that_steps_off_the_image_keeps_its_best_position_instead_of_failing():
    """A 40 px step leaves the image: this used to fail with 'the images do not overlap'."""
    result = _run(40.0)
    np.testing.assert_allclose(_shift(result), (3.05, -2.0), atol=1e-9)  # its start was its best
    assert "stepped off the moving image, so its best position" in result.stop_reason


def test_a_level_that_stays_worse_than_its_best_stops_and_keeps_its_best(monkeypatch):
    monkeypatch.setattr(drift, "DRIFT_ITERATIONS", 20)  # this run stays 1 % worse 20-29 iterations, then recovers
    monkeypatch.setattr(drift, "DRIFT_STOP", 0.01)
    result = _run(20.0)
    assert len(result.history) == 21 and max(h.metric for h in result.history) > 100 * result.history[0].metric
    np.testing.assert_allclose(_shift(result), (3.05, -2.0), atol=1e-9)
    assert "ended worse than where it had been" in result.stop_reason


def test_a_level_that_recovers_or_ends_near_its_best_keeps_its_end():
    recovered = _run(20.0)  # the same run with the default patience: it comes back and converges
    assert len(recovered.history) > drift.DRIFT_ITERATIONS
    for result in (recovered, _run(1.0, sitk.TranslationTransform(2, (1.0, -1.0)))):
        np.testing.assert_allclose(_shift(result), (3.0, -2.0), atol=0.01)
        assert "best position" not in result.stop_reason


def test_a_lagging_optimisers_metric_belongs_to_the_position_before_its_step():
    """Regular-step gradient descent reports, after each step, the metric of where it stood before
    it: the best metric must be paired with that position, not the one it stepped to."""
    watch = drift.BestPosition(start=(0.0,), lags=True)
    for metric, after_step in ((5.0, (1.0,)), (1.0, (2.0,)), (3.0, (3.0,)), (4.0, (4.0,))):
        watch.update(0, metric, after_step)
    assert watch.best == (0, (1.0,)) and watch.best_metric == 1.0
    assert watch.worse_than_best(4.0) and not watch.worse_than_best(1.04)  # 1 % of the size seen (5.0)
    plain = drift.BestPosition(start=None, lags=False)
    for metric, position in ((5.0, (1.0,)), (1.0, (2.0,))):
        plain.update(0, metric, position)
    assert plain.best == (0, (2.0,))
    watch.update(0, 1e300, (9.0,))  # no overlap: ITK's largest value is not a metric
    assert watch.best_metric == 1.0 and not watch.worse_than_best(1.04)
