"""A regular-step level that creeps is started again with a longer step (`regrow_step`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.registration import stages
from regviewer.core.registration.creep import CREEP_STEPS, REGROWTH, CreepWatch
from regviewer.core.registration.engine import register
from regviewer.core.registration.presets import load_preset
from regviewer.core.registration.search import clear_cache

DATA = Path(__file__).resolve().parents[1] / "data"


def _walk(watch: CreepWatch, steps: list[np.ndarray], metrics: list[float]) -> list[bool]:
    position = np.zeros(3)
    watch.begin(position)
    out = []
    for step, metric in zip(steps, metrics):
        position = position + step
        out.append(watch.update(position, metric))
    return out


def test_small_steps_the_same_way_that_keep_improving_are_creeping():
    step = np.array([0.03, 0.04, 0.0])  # 0.05 = a twentieth of the learning rate
    flags = _walk(CreepWatch(1.0), [step] * (CREEP_STEPS + 1), list(-np.arange(CREEP_STEPS + 1.0)))
    assert flags == [False] * CREEP_STEPS + [True]  # the first step has no step before it to agree with
    watch = CreepWatch(1.0)
    _walk(watch, [step] * (CREEP_STEPS + 1), list(-np.arange(CREEP_STEPS + 1.0)))
    assert watch.regrown_rate() == pytest.approx(REGROWTH * 0.05)
    slow = CreepWatch(0.1)  # creeping at a quarter of its rate: the restart is capped at that rate
    _walk(slow, [np.array([0.025, 0.0, 0.0])] * (CREEP_STEPS + 1), list(-np.arange(CREEP_STEPS + 1.0)))
    assert slow.creeping and slow.regrown_rate() == pytest.approx(0.1)


@pytest.mark.parametrize("spoil", ["reversal", "worse", "long", "halving"])
def test_a_reversal_a_worse_metric_a_long_step_or_a_halving_is_not_creeping(spoil):
    step = np.array([0.05, 0.0, 0.0])
    steps, metrics = [step] * 12, list(-np.arange(12.0))
    if spoil == "reversal":
        steps = [s * (-1) ** (i // 4) for i, s in enumerate(steps)]  # turns back every fourth step
    elif spoil == "worse":
        metrics = [m if i % 4 else m + 100 for i, m in enumerate(metrics)]
    elif spoil == "long":
        steps = [np.array([0.5, 0.0, 0.0])] * 12  # half the learning rate: still moving briskly
    elif spoil == "halving":
        steps = [step / 2 ** (i // 4) for i in range(12)]  # the optimiser is still relaxing
    assert not any(_walk(CreepWatch(1.0), steps, metrics))


def _pair():
    """The 4 mm MNI T1 against a squared-intensity copy, turned and shifted (a known answer)."""
    fixed = sitk.ReadImage(str(DATA / "mni152_2009a_t1_4mm.nii.gz"), sitk.sitkFloat32)
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in fixed.GetSize()])
    true = sitk.Euler3DTransform(centre, 0.12, -0.08, 0.15, (6.0, -5.0, 4.0))
    moving = sitk.Resample(fixed, fixed, true.GetInverse(), sitk.sitkLinear, 0.0)
    return fixed, sitk.Cast(sitk.Square(moving) / 100.0, sitk.sitkFloat32), true


def _affine_mi(regrow: bool):
    pipe = load_preset("affine-mi")
    stage = pipe.stages[0]
    return dataclasses.replace(pipe, stages=(dataclasses.replace(
        stage, optimizer=dataclasses.replace(stage.optimizer, regrow_step=regrow)),))


def test_affine_mi_restarts_a_creeping_level_and_lands_where_the_plain_run_does(monkeypatch):
    assert load_preset("affine-mi").stages[0].optimizer.regrow_step
    fixed, moving, true = _pair()
    executes = []
    real = stages._execute
    monkeypatch.setattr(stages, "_execute", lambda stage, *a, **k: executes.append(stage) or real(stage, *a, **k))
    runs = {}
    for regrow in (False, True, True):
        clear_cache()
        executes.clear()
        runs.setdefault(regrow, []).append((register(fixed, moving, params=_affine_mi(regrow)), len(executes)))
    (plain, plain_runs), = runs[False]
    (grown, grown_runs), (again, _) = runs[True]
    assert plain_runs == 3 and grown_runs > 3  # one ImageRegistrationMethod per level, plus the restarts
    assert len(grown.history) < len(plain.history)
    points = [fixed.TransformContinuousIndexToPhysicalPoint(i) for i in [(5, 5, 5), (40, 50, 40), (20, 30, 25)]]
    for p in points:
        assert np.linalg.norm(np.subtract(grown.transform.TransformPoint(p), true.TransformPoint(p))) < 2.0
        assert np.linalg.norm(np.subtract(grown.transform.TransformPoint(p), plain.transform.TransformPoint(p))) < 0.5
    assert again.transform.GetParameters() == grown.transform.GetParameters()  # still bit for bit
    for level in {h.level for h in grown.history}:  # a restarted level counts its iterations on
        its = [h.iteration for h in grown.history if h.level == level]
        assert its == list(range(len(its)))
    restarted = [s.optimizer.learning_rate for s in executes if s.optimizer.learning_rate < 1.0]
    assert restarted and all(r > 0 for r in restarted)


def test_the_landmark_guided_loop_lengthens_a_creeping_step_too():
    """The guided stages' own regular-step loop follows the same rule, without a restart: in a narrow
    valley it zig-zags, halves its step, then creeps along the floor."""
    from regviewer.core.registration.landmark_guided import regular_step

    def valley(z):
        across = z[1] - 0.3 * z[0]
        return 30 * across**2 + (z[0] - 12) ** 2, np.array([-18 * across + 2 * (z[0] - 12), 60 * across])

    paths = {}
    for regrow in (False, True):
        path = paths[regrow] = []
        regular_step(valley, 2, 1.0, 1e-3, 0.5, 500, lambda z: path.append(z.copy()), regrow=regrow)
    assert len(paths[True]) < 0.85 * len(paths[False])
    np.testing.assert_allclose(paths[True][-1], [12.0, 3.6], atol=0.03)
    np.testing.assert_allclose(paths[False][-1], [12.0, 3.6], atol=0.03)


def test_a_level_whose_budget_runs_out_between_restarts_says_so_and_restarts_are_capped(monkeypatch):
    """The iteration budget is the level's, restarts included, and the stop reasons say when it ran out
    while the optimiser was still creeping; no level restarts more than MAX_RESTARTS times."""
    from regviewer.core.registration import creep

    fixed, moving, _true = _pair()
    pipe = _affine_mi(True)
    stage = pipe.stages[0]
    tight = dataclasses.replace(pipe, stages=(dataclasses.replace(
        stage, optimizer=dataclasses.replace(stage.optimizer, iterations=21)),))
    said = []  # each level's own stop reason (the result keeps the last level's)
    real_level = stages._run_level

    def level_and_its_words(*args, **kwargs):
        tx = real_level(*args, **kwargs)
        said.append(args[4].stop_reasons[-1])  # args[4]: the run
        return tx

    monkeypatch.setattr(stages, "_run_level", level_and_its_words)
    clear_cache()
    result = register(fixed, moving, params=tight)
    per_level = [sum(1 for h in result.history if h.level == level) for level in range(3)]
    assert max(per_level) <= 21
    assert any("maximum iterations (21) reached while creeping" in r for r in said)
    assert any("restarts)" in r for r in said)  # a restarted level's words count the whole level
    monkeypatch.setattr(stages, "_run_level", real_level)

    executes = []
    real = stages._execute
    monkeypatch.setattr(stages, "_execute",
                        lambda stage, *a, **k: executes.append(k["level_offset"]) or real(stage, *a, **k))
    monkeypatch.setattr(stages, "MAX_RESTARTS", 1)
    clear_cache()
    register(fixed, moving, params=_affine_mi(True))
    assert all(executes.count(level) <= 2 for level in range(3))  # one run and at most one restart
    assert creep.MAX_RESTARTS == 8
