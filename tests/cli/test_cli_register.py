"""`regviewer register`, `apply`, `presets`, help and exit codes, run as the real command."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.cli.parser import main

from .conftest import DEMO, PYTHON, grid_points, run_cli, tre, write_landmarks


def test_register_writes_every_output_and_recovers_the_known_transform(tiny_pair, tiny_params, tmp_path):
    out = tmp_path / "out"
    landmarks = write_landmarks(tmp_path / "landmarks.csv", tiny_pair.fixed, tiny_pair.true_transform)
    proc = run_cli("register", tiny_pair.fixed, tiny_pair.moving, "--params", tiny_params, "--out", out,
                   "--landmarks", landmarks)
    assert proc.returncode == 0, proc.stderr
    for name in ("transform.tfm", "moving_resampled.nii.gz", "history.csv", "qa.json", "parameters.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".regviewer-*")), "no staging folder is left behind"
    estimated = sitk.ReadTransform(str(out / "transform.tfm"))
    assert tre(estimated, tiny_pair.true_transform, grid_points(tiny_pair.fixed)).mean() < 0.5  # mm; pixels are 4 mm
    assert "FIXED image points to MOVING" in (out / "transform.tfm").read_text()
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) > 10 and {"stage", "level", "iteration", "metric"} <= set(rows[0])
    qa = json.loads((out / "qa.json").read_text())
    assert qa["linear"] is True and qa["transform_direction"].startswith("fixed -> moving")
    assert qa["final_metric"] == pytest.approx(float(rows[-1]["metric"]))
    assert qa["landmark_tre_mean_mm"] < 0.5 and qa["landmark_tre_max_mm"] >= qa["landmark_tre_mean_mm"]
    assert qa["qa"]["landmarks"]  # the QA module's landmark table summary
    assert "TRE" in proc.stdout
    resampled = sitk.ReadImage(str(out / "moving_resampled.nii.gz"))
    assert resampled.GetSize() == sitk.ReadImage(str(tiny_pair.fixed)).GetSize()
    # Not a terminal: plain progress lines (stage, level, iteration, metric), no carriage returns.
    assert "level" in proc.stderr and "iteration" in proc.stderr and "metric" in proc.stderr
    assert "\r" not in proc.stderr


def test_register_demo_brain_affine(tmp_path):
    """The bundled multi-modal brain pair (T1 fixed, T2-like moving) with an affine MI
    registration: close to the true warp (which includes a small deformation an affine
    cannot follow; affine-only TRE is about 1.2 mm). Two pyramid levels keep it quick;
    the presets' own accuracy is the engine's tests' business."""
    from regviewer.core.registration.params import MetricParams, OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage

    quick = Pipeline(stages=(Stage(metric=MetricParams(kind="mattes", bins=32), optimizer=OptimizerParams(iterations=100),
                                   pyramid=PyramidParams(shrink_factors=(4, 2), smoothing_sigmas=(2.0, 1.0)),
                                   sampling=SamplingParams(strategy="random", percentage=0.1),
                                   initializer="moments"),), name="quick-affine-mi")
    (tmp_path / "quick.json").write_text(quick.to_json())
    out = tmp_path / "brain"
    proc = run_cli("register", DEMO / "brain_t1_fixed.nii.gz", DEMO / "brain_t2like_moving.nii.gz",
                   "--params", tmp_path / "quick.json", "--no-qa", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from regviewer.core.imaging.synthetic import brain_points

    true = sitk.ReadTransform(str(DEMO / "brain_true_fixed_to_moving.h5"))
    points = brain_points(sitk.ReadImage(str(DEMO / "brain_mask_fixed.nii.gz")), 300)
    errors = tre(sitk.ReadTransform(str(out / "transform.tfm")), true, points)
    assert errors.mean() < 2.0, errors.mean()


def test_png_input_gives_png_output_and_apply_matches(tiny_dir, tiny_params, tmp_path):
    from .conftest import make_pair

    pair = make_pair(tiny_dir, "png", -4.0, (-6.0, 4.0), suffix=".png")
    out = tmp_path / "out"
    proc = run_cli("register", pair.fixed, pair.moving, "--params", tiny_params, "--no-qa", "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "moving_resampled.png").is_file() and proc.stderr == ""
    # `apply` with the saved transform reproduces the resampled image (same grid, same pixels).
    applied = tmp_path / "applied.png"
    proc = run_cli("apply", out / "transform.tfm", pair.moving, "--reference", pair.fixed, "--out", applied)
    assert proc.returncode == 0, proc.stderr
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(applied))).astype(int)
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "moving_resampled.png"))).astype(int)
    assert np.abs(a - b).max() <= 1


def test_apply_nearest_keeps_labels(tiny_pair, tmp_path):
    labels = sitk.Cast(sitk.ReadImage(str(tiny_pair.moving)) > 100, sitk.sitkUInt8) * 7
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    assert main(["apply", str(tiny_pair.true), str(tmp_path / "labels.nii.gz"), "--reference", str(tiny_pair.fixed),
                 "--out", str(tmp_path / "warped.nii.gz"), "--interpolator", "nearest"]) == 0
    warped = sitk.ReadImage(str(tmp_path / "warped.nii.gz"))
    assert set(np.unique(sitk.GetArrayViewFromImage(warped))) <= {0, 7}
    assert warped.GetPixelID() == sitk.sitkUInt8


def test_presets_and_help(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("rigid", "rigid-mi", "affine-mi", "affine-bspline-mi", "demons", "photo-2d"):
        assert name in out
    for command in ("register", "apply", "apply-points", "presets", "evaluate", "batch"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "usage: regviewer" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "corrupt", "preset", "params", "dimensions", "noargs"])
def test_bad_input_exits_2_naming_the_file(case, tiny_pair, tmp_path, capsys):
    fixed, moving = str(tiny_pair.fixed), str(tiny_pair.moving)
    extra: list[str] = []
    expect = ""
    if case == "missing":
        moving = expect = str(tmp_path / "nope.nii.gz")
    elif case == "corrupt":
        moving = expect = str(tmp_path / "broken.nii.gz")
        (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    elif case == "preset":
        extra, expect = ["--preset", "no-such-preset"], "no-such-preset"
    elif case == "params":
        (tmp_path / "p.json").write_text("{not json")
        extra, expect = ["--params", str(tmp_path / "p.json")], "p.json"
    elif case == "dimensions":
        moving, expect = str(DEMO / "brain_t1_fixed.nii.gz"), "brain_t1_fixed.nii.gz"
    argv = ["register", fixed, moving, "--out", str(tmp_path / "out"), "--quiet", *extra]
    if case == "noargs":
        with pytest.raises(SystemExit) as exc:
            main(["register", fixed])  # argparse: missing MOVING and --out
        assert exc.value.code == 2
        return
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_blank_image_is_refused_before_registering(tmp_path, capsys):
    """A constant image used to fail inside ITK ("Refusing to change spacing ... to [.., 0]")
    or stop after 0 iterations as a success; it is bad input, named (exit 2)."""
    blank = sitk.Image([40, 40], sitk.sitkUInt8)
    sitk.WriteImage(blank, str(tmp_path / "blank_fixed.nii.gz"))
    sitk.WriteImage(blank, str(tmp_path / "blank_moving.nii.gz"))
    for preset in ("rigid", "affine-mi"):
        code = main(["register", str(tmp_path / "blank_fixed.nii.gz"), str(tmp_path / "blank_moving.nii.gz"),
                     "--preset", preset, "--quiet", "--out", str(tmp_path / "out")])
        assert code == 2
        err = capsys.readouterr().err
        assert "blank_fixed.nii.gz" in err and "same value" in err and "spacing" not in err


def test_ctrl_c_stops_cleanly_with_130_and_writes_nothing(tmp_path):
    from regviewer.core.registration.params import OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage

    slow = Pipeline(stages=(Stage(optimizer=OptimizerParams(iterations=10000, min_step=0.0, convergence_tolerance=0.0),
                                  pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,)),
                                  sampling=SamplingParams(strategy="none"), initializer="geometry"),), name="slow")
    (tmp_path / "slow.json").write_text(slow.to_json())
    out = tmp_path / "out"
    proc = subprocess.Popen([PYTHON, "-m", "regviewer", "register", str(DEMO / "retina_fixed.png"),
                             str(DEMO / "retina_moving.png"), "--params", str(tmp_path / "slow.json"), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "iteration" not in seen:  # wait for the first progress line: the engine is iterating
            line = proc.stderr.readline()
            assert line, seen + proc.stderr.read()
            seen += line
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, proc.stderr.read()
    assert stopped_after < 5
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_an_output_that_cannot_be_written_exits_1_before_registering(tiny_pair, tiny_params, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    start = time.monotonic()
    assert main(["register", str(tiny_pair.fixed), str(tiny_pair.moving), "--params", str(tiny_params),
                 "--quiet", "--out", str(tmp_path / "a_file")]) == 1
    assert time.monotonic() - start < 1.0  # refused up front
    assert "a_file" in capsys.readouterr().err


def test_a_deformable_result_is_saved_as_h5(tiny_pair, tmp_path):
    from regviewer.core.registration.params import MetricParams, OptimizerParams, Pipeline, PyramidParams, Stage, TransformParams

    from .conftest import tiny_pipeline

    bspline = Stage(name="bspline", transform=TransformParams(kind="bspline", grid_spacing_mm=120.0, refine_grid=False),
                    metric=MetricParams(kind="correlation"), optimizer=OptimizerParams(kind="lbfgsb", iterations=10),
                    pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,)))
    pipeline = Pipeline(stages=(tiny_pipeline().stages[0], bspline), name="tiny-deformable")
    (tmp_path / "p.json").write_text(pipeline.to_json())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "transform.tfm").write_text("stale")  # an earlier linear result
    assert main(["register", str(tiny_pair.fixed), str(tiny_pair.moving), "--params", str(tmp_path / "p.json"),
                 "--quiet", "--no-qa", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "transform.h5").is_file() and not (tmp_path / "out" / "transform.tfm").exists()
    tx = sitk.ReadTransform(str(tmp_path / "out" / "transform.h5"))
    assert tre(tx, tiny_pair.true_transform, grid_points(tiny_pair.fixed)).mean() < 1.0
