"""`regviewer batch`: a local Dask cluster, an external scheduler + worker, the plain loop,
resuming, failure isolation and the summary CSV."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time

import pytest
import SimpleITK as sitk

from regviewer.cli.parser import main
from regviewer.core.registration.batch import BatchSetupError, read_pairs

from .conftest import grid_points, make_pair, run_cli, tre, write_landmarks

ANGLES = [(5.0, (6.0, -4.0)), (-6.0, (-5.0, 3.0)), (3.0, (4.0, 4.0)), (8.0, (-3.0, -6.0))]


def _pairs(folder: Path, n: int, corrupt: str | None = None) -> Path:
    rows = ["name,fixed,moving"]
    for i, (angle, shift) in enumerate(ANGLES[:n]):
        p = make_pair(folder, f"p{i}", angle, shift)
        rows.append(f"p{i},{p.fixed.name},{p.moving.name}")  # relative to the CSV
    if corrupt:
        (folder / f"{corrupt}_moving.mha").write_bytes(b"this is not an image")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.csv"


def _summary(out: Path) -> dict[str, dict]:
    return {r["pair"]: r for r in csv.DictReader((out / "summary.csv").open())}


def test_local_cluster_isolates_a_corrupt_pair_and_a_rerun_does_nothing(tmp_path, tiny_params, capsys):
    pairs = _pairs(tmp_path / "in", 4, corrupt="p3")
    out = tmp_path / "out"
    proc = run_cli("batch", pairs, "--out", out, "--params", tiny_params, "--workers", "2", timeout=240)
    assert proc.returncode == 3, proc.stderr  # one pair failed
    rows = _summary(out)
    assert [rows[p]["status"] for p in ("p0", "p1", "p2", "p3")] == ["ok", "ok", "ok", "failed"]
    assert "p3_moving.mha" in rows["p3"]["error"] and "p3" in proc.stdout
    assert all(r["worker"].startswith("tcp://") for r in rows.values())  # ran on Dask workers
    cores = os.cpu_count() or 1
    assert all(int(r["itk_threads"]) == max(1, cores // 2) for r in rows.values())  # 2 workers share the cores
    for p in ("p0", "p1", "p2"):
        assert (out / p / "done.json").is_file() and (out / p / "transform.tfm").is_file()
        true = sitk.ReadTransform(str(tmp_path / "in" / f"{p}_true.tfm"))
        errors = tre(sitk.ReadTransform(str(out / p / "transform.tfm")), true, grid_points(tmp_path / "in" / f"{p}_fixed.mha"))
        assert errors.mean() < 0.5
    assert (out / "p3" / "failed.json").is_file() and not (out / "p3" / "transform.tfm").exists()
    assert not list(out.glob(".staging-*"))
    stamps = {p: (out / p).stat().st_mtime_ns for p in rows}

    # A rerun: every pair finished (or failed on unchanged input) before, so nothing runs.
    capsys.readouterr()
    start = time.monotonic()
    assert main(["batch", str(pairs), "--out", str(out), "--params", str(tiny_params), "--workers", "2"]) == 3
    assert all(r["this_run"] == "skipped" for r in _summary(out).values())
    assert {p: (out / p).stat().st_mtime_ns for p in rows} == stamps
    assert "4 finished before" in capsys.readouterr().out
    assert time.monotonic() - start < 10  # no cluster was started


def test_plain_loop_retries_a_failed_pair_once_its_file_is_fixed(tmp_path, tiny_params):
    pairs = _pairs(tmp_path / "in", 2, corrupt="p1")
    # p0 gets landmarks: its summary row then has a TRE.
    true0 = sitk.ReadTransform(str(tmp_path / "in" / "p0_true.tfm"))
    write_landmarks(tmp_path / "in" / "p0_landmarks.csv", tmp_path / "in" / "p0_fixed.mha", true0)
    text = pairs.read_text().splitlines()
    text = [text[0] + ",landmarks", text[1] + ",p0_landmarks.csv", text[2] + ","]
    pairs.write_text("\n".join(text) + "\n")
    out = tmp_path / "out"
    assert main(["batch", str(pairs), "--out", str(out), "--params", str(tiny_params), "--no-dask"]) == 3
    assert _summary(out)["p1"]["status"] == "failed"
    # Repair the moving image: its fingerprint changes, so the next run retries just that pair.
    make_pair(tmp_path / "in", "p1", *ANGLES[1])
    assert main(["batch", str(pairs), "--out", str(out), "--params", str(tiny_params), "--no-dask"]) == 0
    rows = _summary(out)
    assert rows["p0"]["this_run"] == "skipped" and rows["p1"]["this_run"] == "ran" and rows["p1"]["status"] == "ok"
    assert float(rows["p0"]["tre_mean_mm"]) < 0.5 and rows["p1"]["tre_mean_mm"] == ""
    assert not (out / "p1" / "failed.json").exists() and (out / "p1" / "done.json").is_file()


def test_external_scheduler_and_worker_processes(tmp_path, tiny_params, dask_cluster):
    """A dask.distributed scheduler and a worker started as separate processes, as on a
    cluster; the batch only gets the scheduler's address."""
    pairs = _pairs(tmp_path / "in", 2)
    out = tmp_path / "out"
    proc = run_cli("batch", pairs, "--out", out, "--params", tiny_params, "--scheduler", dask_cluster, timeout=180)
    assert proc.returncode == 0, proc.stderr + (tmp_path / "worker.log").read_text()[-2000:]
    rows = _summary(out)
    assert [r["status"] for r in rows.values()] == ["ok", "ok"]
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows.values())


def test_dask_missing_says_how_to_install(tmp_path, tiny_params, monkeypatch, capsys):
    pairs = _pairs(tmp_path / "in", 1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["batch", str(pairs), "--out", str(tmp_path / "out"), "--params", str(tiny_params)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'regviewer[batch]'" in err and "--no-dask" in err


def test_unreachable_scheduler_and_bad_pairs_files_exit_2(tmp_path, tiny_params, capsys, monkeypatch):
    pairs = _pairs(tmp_path / "in", 1)
    monkeypatch.setattr("regviewer.core.registration.batch_dask.SCHEDULER_TIMEOUT_S", 1.0)
    assert main(["batch", str(pairs), "--out", str(tmp_path / "out"), "--params", str(tiny_params),
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "tcp://127.0.0.1:9" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("image_a,image_b\nx.nii,y.nii\n")
    with pytest.raises(BatchSetupError, match="no column fixed or moving"):
        read_pairs(bad)
    assert main(["batch", str(bad), "--out", str(tmp_path / "out"), "--no-dask"]) == 2
    assert "bad.csv" in capsys.readouterr().err


def test_pairs_file_resolves_paths_and_names_pairs_by_content(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pairs.csv").write_text("fixed,moving,landmarks\n"
                                               "f.nii.gz,subj 1/m.nii.gz,\n"
                                               "/abs/f.nii.gz,subj 2/m.nii.gz,l.csv\n")
    a, b = read_pairs(tmp_path / "sub" / "pairs.csv")
    assert a.name == "subj_1_m" and b.name == "subj_2_m"  # from the path, never from the row's position
    assert a.fixed == str(tmp_path / "sub" / "f.nii.gz") and b.fixed == "/abs/f.nii.gz"
    assert a.landmarks is None and b.landmarks == str(tmp_path / "sub" / "l.csv")
    shutil.rmtree(tmp_path / "sub")


def test_ctrl_c_in_a_plain_loop_batch_exits_130_and_leaves_no_partial_pair(tmp_path):
    import signal

    from regviewer.core.registration.params import OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage

    from .conftest import DEMO

    slow = Pipeline(stages=(Stage(optimizer=OptimizerParams(iterations=10000, min_step=0.0, convergence_tolerance=0.0),
                                  pyramid=PyramidParams(shrink_factors=(1,), smoothing_sigmas=(0.0,)),
                                  sampling=SamplingParams(strategy="none"), initializer="geometry"),), name="slow")
    (tmp_path / "slow.json").write_text(slow.to_json())
    pairs = tmp_path / "pairs.csv"  # the full-size retina pair: minutes with these parameters
    pairs.write_text(f"fixed,moving\n{DEMO / 'retina_fixed.png'},{DEMO / 'retina_moving.png'}\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "regviewer", "batch", str(pairs), "--out", str(out), "--params",
                             str(tmp_path / "slow.json"), "--no-dask"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "summary.csv").exists() and time.monotonic() < deadline:  # the batch has started
            time.sleep(0.1)
        time.sleep(1.5)  # the pair is registering
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]  # no pair folder, no staging folder
