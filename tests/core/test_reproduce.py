"""'Copy as Python' / 'Copy as command line' text reruns the same registration."""

from __future__ import annotations

import shlex
import sys
import types

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.registration.params import Pipeline, Stage
from regviewer.core.registration.reproduce import RunSpec, affine_matrix, as_command_line, as_python, is_identity, is_linear


def _run_python_text(text: str, monkeypatch) -> dict:
    """Execute the generated script with `regviewer.register` replaced by a recorder."""
    import regviewer
    import regviewer.core.imaging.io as io

    calls: dict = {}

    def fake_register(fixed, moving, **kwargs):
        calls.update(kwargs, fixed=fixed, moving=moving)
        return types.SimpleNamespace(transform=sitk.Transform(2, sitk.sitkIdentity), stop_reason="ok", elapsed=0.1)

    monkeypatch.setattr(regviewer, "register", fake_register)
    monkeypatch.setattr(io, "write_transform", lambda tx, path: calls.setdefault("written", path))
    exec(compile(text, "<copied>", "exec"), {"__name__": "__copied__"})
    return calls


def test_python_text_carries_params_seed_and_linear_initial(monkeypatch):
    params = Pipeline(stages=(Stage(name="rigid"), Stage(name="affine 2")), name="mine")
    initial = sitk.Euler2DTransform((3.0, 4.0), 0.2, (1.5, -2.0))
    spec = RunSpec("/data/f it's.png", "/data/m.png", params, seed=7, initial_transform=initial,
                   fixed_mask="/data/mask.png")
    calls = _run_python_text(as_python(spec), monkeypatch)
    assert calls["params"] == params
    assert calls["seed"] == 7
    assert calls["fixed"] == "/data/f it's.png" and calls["fixed_mask"] == "/data/mask.png"
    got = calls["initial_transform"]
    for p in [(0.0, 0.0), (10.0, -3.0), (50.0, 80.0)]:
        assert np.allclose(got.TransformPoint(p), initial.TransformPoint(p), atol=1e-9)
    assert calls["written"].endswith("transform.h5")


def test_identity_initial_is_left_out(monkeypatch):
    spec = RunSpec("f.nii", "m.nii", Pipeline(), initial_transform=sitk.Transform(3, sitk.sitkIdentity))
    text = as_python(spec)
    assert "initial_transform" not in text
    calls = _run_python_text(text, monkeypatch)
    assert "initial_transform" not in calls


def test_linear_helpers():
    composite = sitk.CompositeTransform([sitk.TranslationTransform(3, (1, 2, 3)), sitk.Euler3DTransform()])
    assert is_linear(composite) and is_linear(None)
    assert is_identity(None) and is_identity(sitk.Transform(3, sitk.sitkIdentity))
    assert not is_identity(composite)
    img = sitk.Image([8, 8], sitk.sitkFloat32)
    assert not is_linear(sitk.BSplineTransformInitializer(img, [2, 2]))
    a, t = affine_matrix(sitk.ScaleTransform(2, (2.0, 3.0)))
    assert np.allclose(a, np.diag([2.0, 3.0])) and np.allclose(t, 0)


def test_command_line_preset_and_custom_params(tmp_path):
    spec = RunSpec("/d/fixed image.nii.gz", "/d/moving.nii.gz", Pipeline(), preset="affine-mi", seed=3,
                   landmarks="/d/lm.csv", out_dir="/out dir")
    text = as_command_line(spec)
    args = shlex.split(text)
    assert args[:4] == ["regviewer", "register", "/d/fixed image.nii.gz", "/d/moving.nii.gz"]
    assert args[args.index("--preset") + 1] == "affine-mi"
    assert args[args.index("--landmarks") + 1] == "/d/lm.csv"
    assert args[args.index("--out") + 1] == "/out dir"

    params = Pipeline(stages=(Stage(name="custom one"),))
    text = as_command_line(RunSpec("f.nii", "m.nii", params, out_dir=str(tmp_path)))
    heredoc, command = text.rsplit("\n", 1)
    body = heredoc.split("<<'EOF'\n", 1)[1].rsplit("\nEOF", 1)[0]
    assert Pipeline.from_json(body) == params
    assert "--params" in shlex.split(command)


def test_command_line_parses_with_the_real_cli_when_present():
    from regviewer.cli import parser as cli

    parser = cli._build_parser()
    try:
        parser.parse_args(["register", "--help"])
    except SystemExit as exit_:
        if exit_.code != 0:
            pytest.skip("the CLI has no 'register' command yet")
    spec = RunSpec("f.nii", "m.nii", Pipeline(), preset="affine-mi", fixed_mask="mask.nii", out_dir="out")
    args = parser.parse_args(shlex.split(as_command_line(spec))[1:])
    assert args.command == "register"


def test_command_line_carries_the_initial_transform_as_itk_text(tmp_path):
    initial = sitk.Euler2DTransform((3.0, 4.0), 0.2, (1.5, -2.0))
    text = as_command_line(RunSpec("f.png", "m.png", Pipeline(), preset="photo-2d", seed=5, initial_transform=initial))
    heredoc = text.split("<<'EOF'\n", 1)[1].split("\nEOF", 1)[0]
    path = tmp_path / "initial.tfm"
    path.write_text(heredoc + "\n")
    back = sitk.ReadTransform(str(path))
    assert np.allclose(back.TransformPoint((7.0, 8.0)), initial.TransformPoint((7.0, 8.0)))
    command = shlex.split(text.rsplit("\n", 1)[1])
    assert command[command.index("--initial-transform") + 1] == "regviewer-initial.tfm"
    assert command[command.index("--seed") + 1] == "5"


def test_command_line_runs_through_the_real_cli_parser():
    from regviewer.cli import parser as cli

    parser = cli._build_parser()
    initial = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))
    spec = RunSpec("f.nii", "m.nii", Pipeline(stages=(Stage(name="x"),)), seed=2, fixed_mask="mask.nii",
                   landmarks="lm.csv", initial_transform=initial, out_dir="out")
    command = as_command_line(spec).rsplit("\n", 1)[1]
    args = parser.parse_args(shlex.split(command)[1:])
    assert args.command == "register" and args.seed == 2 and args.initial_transform == "regviewer-initial.tfm"
    assert args.params == "regviewer-params.json" and args.fixed_mask == "mask.nii"


def _tiny_pair(tmp_path):
    fixed = sitk.GaussianSource(sitk.sitkFloat32, [48, 40], sigma=[6.0, 4.0], mean=[22.0, 20.0], scale=100.0)
    fixed = fixed + sitk.GaussianSource(sitk.sitkFloat32, [48, 40], sigma=[3.0, 3.0], mean=[32.0, 12.0], scale=60.0)
    moving = sitk.Resample(fixed, sitk.TranslationTransform(2, (-2.0, 1.5)))
    fp, mp = tmp_path / "fixed.nii.gz", tmp_path / "moving.nii.gz"
    sitk.WriteImage(fixed, str(fp))
    sitk.WriteImage(moving, str(mp))
    return str(fp), str(mp)


def _tiny_params():
    from regviewer.core.registration.params import MetricParams, OptimizerParams, PyramidParams, TransformParams

    return Pipeline(stages=(Stage(name="t", initializer="none", transform=TransformParams(kind="translation"),
                                  metric=MetricParams(kind="mean_squares"),
                                  optimizer=OptimizerParams(iterations=30),
                                  pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,))),))


def test_copied_python_and_command_line_reproduce_the_run(tmp_path, monkeypatch):
    """The copied text, run for real, gives the same transform as the run it describes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import regviewer
    from regviewer.core.transforms.io import read_transform

    fixed, moving = _tiny_pair(tmp_path)
    initial = sitk.TranslationTransform(2, (0.5, 0.0))
    params = _tiny_params()
    original = regviewer.register(fixed, moving, params=params, initial_transform=initial, seed=3)
    spec = RunSpec(fixed, moving, params, seed=3, initial_transform=initial, out_dir=str(tmp_path / "py"))
    monkeypatch.chdir(tmp_path)
    exec(compile(as_python(spec), "<copied>", "exec"), {"__name__": "__copied__"})
    again = read_transform(tmp_path / "py" / "transform.h5")
    probe = [(5.0, 7.0), (30.0, 20.0)]
    for p in probe:
        assert np.allclose(again.TransformPoint(p), original.transform.TransformPoint(p), atol=1e-9)

    command = as_command_line(dc_replace(spec, out_dir=str(tmp_path / "cli")))
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "cli"
    saved = next(p for p in out.iterdir() if p.name.startswith("transform"))
    cli_tx = read_transform(saved)
    for p in probe:
        assert np.allclose(cli_tx.TransformPoint(p), original.transform.TransformPoint(p), atol=1e-6)


def dc_replace(spec, **changes):
    import dataclasses

    return dataclasses.replace(spec, **changes)
