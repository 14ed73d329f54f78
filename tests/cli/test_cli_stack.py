"""`regviewer stack`, run as the real command: outputs, a missing section, exit codes."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.registration.params import OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage
from tests.stack_phantom import block, cut, mean_error, tissue_points

from .conftest import run_cli


def test_stack_writes_volume_transforms_and_table(tmp_path):
    sections = tmp_path / "sections"
    planes = block(6, seed=2)
    truths = cut(planes, sections, seed=3, names=[f"slice{k + 1}.png" for k in range(6)])  # slice10-safe naming
    (sections / "slice4.png").write_bytes(b"\x89PNG truncated")  # one bad section
    out = tmp_path / "out"
    proc = run_cli("stack", sections, "--out", out, "--spacing", "0.5", "0.5", "3", "--anchor", "1",
                   "--neighbours", "2")
    assert proc.returncode == 3, proc.stderr  # a section could not be read: reported, the rest written
    assert "slice4" in proc.stderr and "missing" in proc.stderr
    assert "5/6 sections aligned" in proc.stdout
    vol = sitk.ReadImage(str(out / "stack.nii.gz"))
    assert vol.GetSize() == (96, 96, 6) and np.allclose(vol.GetSpacing(), (0.5, 0.5, 3.0))
    rows = list(csv.DictReader((out / "stack.csv").open()))
    assert [r["section"] for r in rows] == [f"slice{k + 1}" for k in range(6)]
    assert [r["status"] for r in rows].count("missing") == 1
    assert sorted(p.stem for p in (out / "transforms").glob("*.tfm")) == sorted(
        f"slice{k + 1}" for k in range(6) if k != 3)
    anchor = sitk.ReadTransform(str(out / "transforms" / "slice2.tfm"))
    assert np.allclose(anchor.TransformPoint((10.0, 20.0)), (10.0, 20.0), atol=1e-6)  # the anchor's frame


def test_stack_with_reference_volume_exits_zero(tmp_path):
    sections = tmp_path / "sections"
    planes = block(4, seed=6)
    truths = cut(planes, sections, seed=7)
    ref = sitk.JoinSeries(planes)
    sitk.WriteImage(ref, str(tmp_path / "reference.nii.gz"))
    proc = run_cli("stack", sections, "--out", tmp_path / "out", "--reference", tmp_path / "reference.nii.gz")
    assert proc.returncode == 0, proc.stderr
    for k, true in enumerate(truths):
        est = sitk.ReadTransform(str(tmp_path / "out" / "transforms" / f"s{k}.tfm"))
        assert mean_error(est, true, tissue_points()) < 1.0


def test_stack_bad_arguments(tmp_path):
    proc = run_cli("stack", tmp_path / "missing", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_cli("stack", "--help")
    assert proc.returncode == 0 and "--reference" in proc.stdout


def test_stack_workers_give_the_same_transforms(tmp_path):
    sections = tmp_path / "sections"
    cut(block(5, seed=10), sections, seed=11)
    one = run_cli("stack", sections, "--out", tmp_path / "one", "--quiet")
    two = run_cli("stack", sections, "--out", tmp_path / "two", "--workers", "2", "--quiet")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    for k in range(5):
        a = sitk.ReadTransform(str(tmp_path / "one" / "transforms" / f"s{k}.tfm"))
        b = sitk.ReadTransform(str(tmp_path / "two" / "transforms" / f"s{k}.tfm"))
        # the same up to ITK threading (1 thread per worker process here, all cores in one process)
        assert np.allclose(a.TransformPoint((30.0, 60.0)), b.TransformPoint((30.0, 60.0)), atol=0.05)


def test_stack_on_an_external_dask_scheduler(tmp_path, dask_cluster):
    """A scheduler and a worker as separate processes; `stack` gets only the address."""
    sections = tmp_path / "sections"
    cut(block(4, seed=13), sections, seed=14)
    proc = run_cli("stack", sections, "--out", tmp_path / "out", "--scheduler", dask_cluster, "--quiet", timeout=240)
    assert proc.returncode == 0, proc.stderr + (tmp_path / "worker.log").read_text()[-2000:]
    rows = list(csv.DictReader((tmp_path / "out" / "stack.csv").open()))
    assert [r["status"] for r in rows] == ["ok"] * 4


def test_an_unusable_out_fails_before_aligning(tmp_path):
    sections = tmp_path / "sections"
    cut(block(4, seed=2), sections, seed=3)
    out = tmp_path / "out"
    out.write_text("a file where the folder should be")
    proc = run_cli("stack", sections, "--out", out)
    assert proc.returncode == 1 and "not a folder" in proc.stderr, proc.stderr
    assert "aligned" not in proc.stdout  # nothing was registered


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_cancel_with_workers_stops_the_running_pairs_promptly(tmp_path):
    """Ctrl+C during `--workers 2` ends the pairs being registered (worker processes
    included) and exits 130 within about 2 s, not when the pairs would have finished."""
    sections = tmp_path / "sections"
    cut([sitk.Expand(p, [4, 4]) for p in block(4, seed=10)], sections, seed=11)  # 384 px: slow pairs
    slow = Pipeline(stages=(Stage(optimizer=OptimizerParams(iterations=10000, min_step=0.0, convergence_tolerance=0.0),
                                  pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,)),
                                  sampling=SamplingParams(strategy="none"), initializer="geometry"),), name="slow")
    (tmp_path / "slow.json").write_text(slow.to_json())
    proc = subprocess.Popen([sys.executable, "-m", "regviewer", "stack", str(sections), "--out", str(tmp_path / "out"),
                             "--params", str(tmp_path / "slow.json"), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:  # the worker processes exist
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) >= 2, "the worker processes never started"
        time.sleep(1.5)  # both are registering a pair (a minute each with these parameters)
        assert proc.poll() is None
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, proc.stderr.read()
    assert took < 2.5, f"took {took:.1f} s to stop"
    time.sleep(0.2)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in _state(w)]
    assert not (tmp_path / "out" / "stack.nii.gz").exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_trend_options_reach_align_stack(tmp_path, monkeypatch):
    """--trend MODE / --keep-trend are passed to align_stack as remove_trend (default 'stretch')."""
    import regviewer
    from regviewer.cli.parser import main

    seen = []

    def fake_align_stack(sections, **kwargs):
        seen.append(kwargs["remove_trend"])
        raise KeyboardInterrupt  # stop here: only the argument matters

    monkeypatch.setattr(regviewer, "align_stack", fake_align_stack)
    (tmp_path / "s").mkdir()
    for extra in ([], ["--trend", "pose"], ["--keep-trend"]):
        assert main(["stack", str(tmp_path / "s"), "--out", str(tmp_path / "out"), "--quiet", *extra]) == 130
    assert seen == ["stretch", "pose", "off"]
