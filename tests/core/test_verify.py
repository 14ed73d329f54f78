"""Verification after every stage: one fixed evaluation, rollback of a stage that made things worse, warnings."""

import json

import numpy as np
import SimpleITK as sitk

import regviewer
from regviewer.core.registration import stages as stages_module
from regviewer.core.registration.params import Pipeline, Stage, TransformParams, MetricParams, PyramidParams
from regviewer.core.registration.verify import Evaluation
from regviewer.core.workspace.run_history import RunHistory, RunRecord


def blobs(shift=(0.0, 0.0), size=64) -> sitk.Image:
    y, x = np.mgrid[0:size, 0:size].astype(float)
    a = np.exp(-((x - 24 - shift[0]) ** 2 + (y - 30 - shift[1]) ** 2) / 40.0)
    a += 0.6 * np.exp(-((x - 42 - shift[0]) ** 2 + (y - 20 - shift[1]) ** 2) / 25.0)
    a += 0.3 * np.exp(-((x - 36 - shift[0]) ** 2 + (y - 46 - shift[1]) ** 2) / 60.0)
    return sitk.GetImageFromArray(a.astype(np.float32))


def one_stage(kind="translation") -> Pipeline:
    return Pipeline(stages=(Stage(name=kind, transform=TransformParams(kind=kind), metric=MetricParams(kind="mean_squares"),
                                  pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,))),))


def test_evaluation_prefers_the_true_transform_and_penalises_losing_overlap():
    fixed, moving = blobs(), blobs((3.0, -2.0))
    ev = Evaluation(fixed, moving)
    true = sitk.TranslationTransform(2, (3.0, -2.0))
    assert ev.score(true) > ev.score(None) > ev.score(sitk.TranslationTransform(2, (500.0, 0.0)))
    assert ev.score(sitk.TranslationTransform(2, (500.0, 0.0))) == 0.0  # nothing overlaps: no information
    assert ev.n_samples == 64 * 64  # a small image: every pixel


def test_a_stage_that_makes_things_worse_is_rolled_back_with_a_warning(monkeypatch, tmp_path):
    fixed, moving = blobs(), blobs((3.0, -2.0))

    def bad_stage(stage, fixed, moving, previous, run, *args, **kwargs):
        run.stop_reasons.append("test")
        return sitk.TranslationTransform(2, (-20.0, 15.0))  # far from the answer

    monkeypatch.setattr(stages_module, "run_method_stage", bad_stage)
    start = sitk.TranslationTransform(2, (2.5, -2.0))
    result = regviewer.register(fixed, moving, params=one_stage(), initial_transform=start)
    assert result.warnings and "made the alignment worse" in result.warnings[0]
    assert result.transform.TransformPoint((10.0, 10.0)) == start.TransformPoint((10.0, 10.0))
    checks = result.details["verification"]["stages"]
    assert checks[0]["kept"] is False and checks[0]["after"] < checks[0]["before"]


def test_a_good_stage_is_kept_without_warning():
    fixed, moving = blobs(), blobs((3.0, -2.0))
    result = regviewer.register(fixed, moving, params=one_stage())
    assert result.warnings == []
    assert np.allclose(result.transform.TransformPoint((0.0, 0.0)), (3.0, -2.0), atol=0.1)
    v = result.details["verification"]
    assert v["final"] > v["start"] and result.evaluation == v["final"]


def test_warnings_reach_qa_json_and_the_cli_stderr(monkeypatch, tmp_path):
    from regviewer.core.registration.headless import register_to_folder

    def bad_stage(stage, fixed, moving, previous, run, *args, **kwargs):
        run.stop_reasons.append("test")
        return sitk.TranslationTransform(2, (-20.0, 15.0))

    monkeypatch.setattr(stages_module, "run_method_stage", bad_stage)
    outcome = register_to_folder(blobs(), blobs((3.0, -2.0)), tmp_path / "out", params=one_stage())
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["warnings"] and "worse" in qa["warnings"][0]
    assert outcome.summary["warnings"] == qa["warnings"]


def test_history_ranks_runs_by_the_fixed_evaluation_not_the_optimiser_metric():
    identity = sitk.Transform(2, sitk.sitkIdentity)
    history = RunHistory()
    # a run cancelled at the coarse level: better-looking optimiser metric, worse evaluation
    history.add(RunRecord(1, {}, identity, final_metric=-0.99, cancelled=True, evaluation=0.4))
    history.add(RunRecord(2, {}, identity, final_metric=-0.82, evaluation=0.9))
    assert history.best(by="metric").number == 2
    again = RunHistory()
    again.load_dict(history.to_dict())
    assert again.best(by="metric").number == 2 and again.records[1].evaluation == 0.9


def test_the_cli_prints_the_warning_on_stderr(monkeypatch, tmp_path, capsys):
    from regviewer.cli.parser import main

    def bad_stage(stage, fixed, moving, previous, run, *args, **kwargs):
        run.stop_reasons.append("test")
        return sitk.TranslationTransform(2, (-20.0, 15.0))

    monkeypatch.setattr(stages_module, "run_method_stage", bad_stage)
    sitk.WriteImage(blobs(), str(tmp_path / "f.nii.gz"))
    sitk.WriteImage(blobs((3.0, -2.0)), str(tmp_path / "m.nii.gz"))
    (tmp_path / "p.json").write_text(one_stage().to_json())
    code = main(["register", str(tmp_path / "f.nii.gz"), str(tmp_path / "m.nii.gz"), "--params",
                 str(tmp_path / "p.json"), "--quiet", "--no-qa", "--out", str(tmp_path / "out")])
    # The stage is undone, and the coarse search then finds a better pose than what is left: the
    # result is not to be trusted, so the command says so and exits 3 (issue 16, case 8).
    assert code == 3
    err = capsys.readouterr().err
    assert "regviewer: warning: Stage 'translation' made the alignment worse" in err
    assert "probably wrong" in err
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert qa["verdict"] == "not improved" and any("made the alignment worse" in w for w in qa["warnings"])


def test_a_guided_stage_trading_similarity_for_landmarks_is_kept_and_said():
    from regviewer.core.registration.verify import StageVerifier

    fixed, moving = blobs(), blobs((3.0, -2.0))
    truth = sitk.TranslationTransform(2, (3.0, -2.0))
    verifier = StageVerifier(Evaluation(fixed, moving))
    verifier.begin(truth)
    off = sitk.TranslationTransform(2, (15.0, -10.0))  # clearly worse for the image
    assert not verifier.accept(0, "plain", truth, off)  # judged by the image alone: undone
    assert verifier.accept(1, "guided", truth, off, landmark_mm=(3.0, 0.5))  # landmarks much closer: kept
    assert "to follow the landmarks" in verifier.warnings[-1]
    assert not verifier.accept(2, "guided", truth, off, landmark_mm=(3.0, 2.95))  # no real landmark gain


def test_a_symmetric_runs_average_is_the_transform_judged():
    import dataclasses

    fixed, moving = blobs(), blobs((3.0, -2.0))
    result = regviewer.register(fixed, moving, params=dataclasses.replace(one_stage(), symmetric=True))
    verification = result.details["verification"]
    assert verification["final_is"] == "forward/backward average"
    assert verification["final"] == round(Evaluation(fixed, moving).score(result.transform), 6)
