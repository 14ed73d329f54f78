"""Run history: records from engine results, comparison, JSON round trip, going back."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import SessionError
from regviewer.core.registration.params import Pipeline
from regviewer.core.workspace.run_history import RunHistory, RunRecord, landmark_tre, record_from_result


def _fake_result(shift: float, metric_end: float, cancelled: bool = False):
    history = [types.SimpleNamespace(stage=0, stage_name="affine", level=lv, iteration=i, metric=-0.1 * (i + 1), elapsed=0.01 * i)
               for lv in range(2) for i in range(3)]
    history[-1].metric = metric_end
    return types.SimpleNamespace(transform=sitk.TranslationTransform(2, (shift, 0.0)), history=history,
                                 stop_reason="converged", elapsed=1.25, params=Pipeline(), cancelled=cancelled)


def _landmarks():
    pair = lambda f, m, e=True: types.SimpleNamespace(fixed=f, moving=m, enabled=e)  # noqa: E731
    return types.SimpleNamespace(pairs=[pair((0.0, 0.0), (2.0, 0.0)), pair((5.0, 5.0), (7.0, 6.0)),
                                        pair((1.0, 1.0), (100.0, 100.0), False)])


def test_record_from_result_and_tre():
    rec = record_from_result(_fake_result(2.0, -0.9), 1, landmarks=_landmarks(), seed=4)
    assert rec.final_metric == pytest.approx(-0.9)
    assert rec.metric_curve[0] == (0, 0, 0, pytest.approx(-0.1)) and len(rec.metric_curve) == 6
    assert rec.tre_mm["n"] == 2
    assert rec.tre_mm["mean"] == pytest.approx(0.5) and rec.tre_mm["max"] == pytest.approx(1.0)
    assert rec.summary()["stages"] == "affine" and rec.summary()["status"] == "finished"
    assert landmark_tre(sitk.TranslationTransform(2), None) is None


def test_history_compare_best_and_roundtrip():
    history = RunHistory()
    seen = []
    history.subscribe(lambda: seen.append(len(history)))
    lm = _landmarks()
    history.add_result(_fake_result(0.0, -0.5), landmarks=lm)
    history.add_result(_fake_result(2.0, -0.7), landmarks=lm, initial_transform=sitk.Euler2DTransform())
    history.add_result(_fake_result(1.0, -0.9, cancelled=True), landmarks=lm)
    assert seen == [1, 2, 3]
    assert [r["run"] for r in history.table()] == [1, 2, 3]
    assert history.best("tre").number == 2
    assert history.best("metric").number == 3
    assert history.table()[2]["status"] == "cancelled"

    text = json.dumps(history.to_dict())
    again = RunHistory()
    again.load_dict(json.loads(text))
    assert [r.number for r in again] == [1, 2, 3]
    back = again.get(2)
    assert np.allclose(back.transform.TransformPoint((1.0, 1.0)), (3.0, 1.0))
    assert back.initial_transform is not None and back.params == Pipeline().to_dict()
    assert Pipeline.from_dict(back.params) == Pipeline()
    again.remove(1)
    assert again.next_number() == 4 and len(again) == 2
    with pytest.raises(KeyError):
        again.get(1)


def test_non_finite_metric_stored_as_null_and_bad_data():
    rec = RunRecord(number=1, params={}, transform=sitk.Transform(3, sitk.sitkIdentity), final_metric=math.nan)
    assert json.loads(json.dumps(rec.to_dict()))["final_metric"] is None
    with pytest.raises(SessionError):
        RunHistory().load_dict({"runs": [{"number": 1}]})
    with pytest.raises(SessionError):
        RunHistory().load_dict([1, 2])


def test_tre_with_the_real_landmark_set():
    lm = pytest.importorskip("regviewer.core.landmarks.model")
    landmark_set = lm.LandmarkSet(dimension=2)
    landmark_set.add_pair((0.0, 0.0), (2.0, 0.0))
    landmark_set.add_pair((5.0, 5.0), (7.0, 6.0))
    tre = landmark_tre(sitk.TranslationTransform(2, (2.0, 0.0)), landmark_set)
    assert tre["n"] == 2 and tre["mean"] == pytest.approx(0.5) and tre["max"] == pytest.approx(1.0)
