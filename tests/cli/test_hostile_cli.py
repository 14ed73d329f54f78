"""Hostile and unlucky use of the command line (issue 16): inputs never overwritten, the
output folder checked first, all-or-nothing output sets, Ctrl+C while saving, landmarks for
measurement only, results worse than their start flagged, batch keyed on content."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.cli.parser import main
from regviewer.core import atomic
from regviewer.core.errors import RegistrationCancelled
from regviewer.core.registration import headless, output_folder

from .conftest import make_pair


def _args(pair, params, out, *extra):
    return ["register", str(pair.fixed), str(pair.moving), "--params", str(params), "--quiet", "--out", str(out),
            *map(str, extra)]


# --- 5: never write over an input ---------------------------------------------------------------
def test_apply_refuses_to_replace_its_own_input(tiny_pair, capsys):
    before = tiny_pair.moving.read_bytes()
    code = main(["apply", str(tiny_pair.true), str(tiny_pair.moving), "--reference", str(tiny_pair.fixed),
                 "--out", str(tiny_pair.moving)])
    assert code == 1
    assert "input" in capsys.readouterr().err
    assert tiny_pair.moving.read_bytes() == before


def test_register_refuses_an_out_folder_whose_input_has_an_output_name(tiny_pair, tiny_params, tmp_path,
                                                                        monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    moving = out / "moving_resampled.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(tiny_pair.moving)), str(moving))
    before = moving.read_bytes()
    monkeypatch.setattr("regviewer.core.registration.engine.register", lambda *a, **k: pytest.fail("registered"))
    code = main(["register", str(tiny_pair.fixed), str(moving), "--params", str(tiny_params), "--quiet", "--out", str(out)])
    assert code == 1
    assert "moving" in capsys.readouterr().err
    assert moving.read_bytes() == before


# --- 9: the output folder is checked before registering ----------------------------------------
def test_unwritable_out_fails_before_registering(tiny_pair, tiny_params, tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output_folder.tempfile, "mkstemp", refuse)
    monkeypatch.setattr("regviewer.core.registration.engine.register", lambda *a, **k: pytest.fail("registered"))
    assert main(_args(tiny_pair, tiny_params, tmp_path / "ro")) == 1
    err = capsys.readouterr().err
    assert "not writable" in err and "Permission denied" in err and "unexpected" not in err


# --- 7: all-or-nothing output sets, stale staging cleaned -----------------------------------------
def test_a_kill_while_publishing_never_mixes_old_and_new(tiny_pair, tiny_params, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(_args(tiny_pair, tiny_params, out)) == 0
    manifest = atomic.read_manifest(out, check_digests=True)
    assert manifest and set(manifest["files"]) >= {"transform.tfm", "qa.json", "history.csv"}
    old_inodes = {p.stat().st_ino for p in out.iterdir() if p.is_file()}
    real_replace = os.replace
    for allowed in range(0, 6):
        calls = []

        def dying_replace(src, dst, _allowed=allowed, _calls=calls):
            if len(_calls) >= _allowed:
                raise KeyboardInterrupt("killed")  # stands in for kill -9 between two renames
            _calls.append(dst)
            return real_replace(src, dst)

        monkeypatch.setattr(atomic.os, "replace", dying_replace)
        assert main(_args(tiny_pair, tiny_params, out, "--seed", allowed + 1)) == 130
        monkeypatch.setattr(atomic.os, "replace", real_replace)
        manifest = atomic.read_manifest(out, check_digests=True)
        listed = {(out / n).stat().st_ino for n in manifest["files"]} if manifest else set()
        present = {p.stat().st_ino for p in out.iterdir() if p.is_file() and p.name != atomic.MANIFEST_NAME}
        if manifest:  # killed before publishing: the old set is still whole
            assert listed == present == old_inodes - {(out / atomic.MANIFEST_NAME).stat().st_ino}
        else:  # killed while publishing: no manifest, and no old file beside the new ones
            assert not present & old_inodes, f"an old file survived beside new ones (after {allowed} renames)"
        old_inodes = {p.stat().st_ino for p in out.iterdir() if p.is_file()}
    assert main(_args(tiny_pair, tiny_params, out)) == 0
    assert atomic.read_manifest(out, check_digests=True) is not None


def test_stale_staging_folders_are_cleaned(tmp_path):
    dead = tmp_path / ".regviewer-out-999999999-abc"
    live = tmp_path / f".regviewer-out-{os.getpid()}-xyz"
    for d in (dead, live):
        d.mkdir()
        (d / "transform.tfm").write_text("x")
    assert atomic.clean_stale_staging(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


def test_the_next_run_removes_a_killed_runs_staging_folder(tiny_pair, tiny_params, tmp_path):
    out = tmp_path / "out"
    left = out / ".regviewer-out-999999999-killed"
    left.mkdir(parents=True)
    (left / "moving_resampled.nii.gz").write_bytes(b"half")
    assert main(_args(tiny_pair, tiny_params, out)) == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".regviewer-")]


# --- 13: Ctrl+C while saving writes nothing --------------------------------------------------------
def test_cancel_while_saving_writes_nothing(tiny_pair, tiny_params, tmp_path, monkeypatch):
    from regviewer.core.registration.engine import CancelToken

    token = CancelToken()
    real_write = headless.write_image

    def write_then_interrupt(*args, **kwargs):
        real_write(*args, **kwargs)
        token.cancel()  # the first Ctrl+C arrives while the files are being written

    monkeypatch.setattr(headless, "write_image", write_then_interrupt)
    out = tmp_path / "out"
    with pytest.raises(RegistrationCancelled, match="nothing was written"):
        headless.register_to_folder(tiny_pair.fixed, tiny_pair.moving, out, params=tiny_params, cancel=token)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


# --- 12: --landmarks measures; it initialises only when asked ---------------------------------------
def test_three_landmarks_only_measure_the_error(tiny_pair, tiny_params, tmp_path, capsys):
    from regviewer.core.landmarks.model import LandmarkSet

    fixed = sitk.ReadImage(str(tiny_pair.fixed))
    pts = [fixed.TransformContinuousIndexToPhysicalPoint(ix) for ix in ([40, 40], [80, 50], [60, 85])]
    lm = LandmarkSet(2)
    for i, p in enumerate(pts):
        lm.add_pair(fixed=list(p), moving=list(tiny_pair.true_transform.TransformPoint(p)), name=f"L{i}")
    lm.save(tmp_path / "three.csv")
    out = tmp_path / "out"
    assert main(_args(tiny_pair, tiny_params, out, "--landmarks", tmp_path / "three.csv")) == 0, capsys.readouterr().err
    qa = json.loads((out / "qa.json").read_text())
    assert qa["landmark_tre_mean_mm"] is not None and qa["landmark_tre_mean_mm"] < 2.0
    assert qa["verdict"] == "ok"


# --- 8: a result worse than its start is not a success ----------------------------------------------
def test_landmark_error_that_grows_is_flagged_and_exits_3(tiny_pair, tiny_params, tmp_path, capsys):
    from regviewer.core.landmarks.model import LandmarkSet

    fixed = sitk.ReadImage(str(tiny_pair.fixed))
    lm = LandmarkSet(2)
    for i, ix in enumerate(([40, 40], [80, 50], [60, 85], [45, 75])):
        p = fixed.TransformContinuousIndexToPhysicalPoint(ix)
        lm.add_pair(fixed=list(p), moving=list(p), name=f"L{i}")  # claims the images already agree
    lm.save(tmp_path / "identity.csv")
    out = tmp_path / "out"
    assert main(_args(tiny_pair, tiny_params, out, "--landmarks", tmp_path / "identity.csv")) == 3
    err = capsys.readouterr().err
    assert "worse than its start" in err and "landmark error grew" in err
    qa = json.loads((out / "qa.json").read_text())
    assert qa["verdict"] == "not improved" and any("grew" in w for w in qa["warnings"])


def test_engine_verification_failure_is_flagged(tiny_pair, tiny_params, tmp_path, monkeypatch, capsys):
    from regviewer.core.registration import engine

    real = engine.register

    def unverified(*args, **kwargs):
        result = real(*args, **kwargs)
        result.details["verification"] = {"improved": False, "message": "stage 1 raised the metric"}
        return result

    monkeypatch.setattr(engine, "register", unverified)
    assert main(_args(tiny_pair, tiny_params, tmp_path / "out")) == 3
    assert "stage 1 raised the metric" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "qa.json").read_text())["verdict"] == "not improved"


# --- 2: batch keyed on content; names unique; malformed rows refused with the line ------------------
def _batch(pairs_csv, out, params, *extra):
    return main(["batch", str(pairs_csv), "--out", str(out), "--params", str(params), "--no-dask", "--no-qa", *extra])


def test_batch_reruns_a_pair_whose_input_changed_in_place(tmp_path, tiny_params, capsys):
    pair = make_pair(tmp_path, "p", 4.0, (3.0, -2.0))
    (tmp_path / "pairs.csv").write_text(f"name,fixed,moving\nonly,{pair.fixed.name},{pair.moving.name}\n")
    out = tmp_path / "out"
    assert _batch(tmp_path / "pairs.csv", out, tiny_params) == 0
    first = json.loads((out / "only" / "done.json").read_text())
    # Same size, same modification time, different pixels: a stale result must not be reused.
    st = pair.moving.stat()
    other = make_pair(tmp_path / "other", "p", -5.0, (-4.0, 3.0))
    data = other.moving.read_bytes()
    if len(data) == st.st_size:
        pair.moving.write_bytes(data)
    else:  # compressed sizes differ: flip pixels in place instead
        img = sitk.ReadImage(str(pair.moving))
        sitk.WriteImage(sitk.Flip(img, [True, False]), str(pair.moving))
    os.utime(pair.moving, ns=(st.st_atime_ns, st.st_mtime_ns))
    capsys.readouterr()
    assert _batch(tmp_path / "pairs.csv", out, tiny_params) == 0
    second = json.loads((out / "only" / "done.json").read_text())
    assert second["inputs"] != first["inputs"]
    assert "0 finished before" in capsys.readouterr().out
    capsys.readouterr()
    assert _batch(tmp_path / "pairs.csv", out, tiny_params) == 0  # unchanged now: skipped
    assert "1 finished before" in capsys.readouterr().out


@pytest.mark.parametrize("rows, expect", [
    ("name,fixed,moving\na,f.mha,m.mha\nb,f.mha,m2.mha\na,f.mha,m3.mha\n", ["line 4", "repeats line 2"]),
    ('fixed,moving\n"f.mha,m.mha\nf2.mha,m2.mha\nf3.mha,m3.mha\n', ["line 2", "quote"]),
    ("fixed,moving\nf.mha,m.mha,extra,cells\n", ["line 2", "4 cells"]),
    ("fixed,moving\nf.mha,\n", ["line 2", "need a path"]),
])
def test_malformed_pairs_files_exit_2_with_the_line(tmp_path, tiny_params, capsys, rows, expect):
    (tmp_path / "pairs.csv").write_text(rows)
    assert _batch(tmp_path / "pairs.csv", tmp_path / "out", tiny_params) == 2
    err = capsys.readouterr().err
    assert "pairs.csv" in err and all(e in err for e in expect), err
    assert "unexpected" not in err


# --- 1: Ctrl+C works even while ITK is busy inside one long filter --------------------------------
_BUSY_IN_ITK = """
import sys, SimpleITK as sitk
from regviewer.cli.commands import sigint_cancels
from regviewer.core.registration.engine import CancelToken
token = CancelToken()
with sigint_cancels(token):
    print("busy", flush=True)
    sitk.DiscreteGaussian(sitk.Image([100, 100, 100], sitk.sitkFloat32), 400.0, 200, 0.0001, False)  # ~30 s in C++
print("finished the filter", flush=True)
"""


def test_second_ctrl_c_ends_a_run_stuck_inside_itk():
    """Python runs signal handlers only between bytecodes: inside one long ITK call, Ctrl+C
    (once or twice) used to be ignored until the filter returned."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", _BUSY_IN_ITK], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "busy"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert code == 130, err
    assert "stopping" in err and took < 5
    assert "finished the filter" not in proc.stdout.read()


def test_nan_voxels_are_reported_on_stderr_and_in_qa_json(tiny_pair, tiny_params, tmp_path, capsys):
    img = sitk.Cast(sitk.ReadImage(str(tiny_pair.moving)), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(img)
    arr[:3, :] = np.nan
    nan_img = sitk.GetImageFromArray(arr)
    nan_img.CopyInformation(img)
    moving = tmp_path / "nan_moving.nrrd"
    sitk.WriteImage(nan_img, str(moving))
    out = tmp_path / "out"
    code = main(["register", str(tiny_pair.fixed), str(moving), "--params", str(tiny_params), "--quiet", "--no-qa",
                 "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("NaN or infinite") == 1 and "UserWarning" not in err
    qa = json.loads((out / "qa.json").read_text())
    assert any("NaN or infinite" in w for w in qa["warnings"]) and qa["verdict"] == "ok"


def test_cancel_abandons_a_registration_stuck_inside_itk(tiny_pair, tmp_path, monkeypatch):
    """A CancelToken is checked per iteration; inside one long ITK filter it used to be
    ignored for as long as the filter ran (15 s and more)."""
    import threading
    import time

    from regviewer.core.registration import engine

    def stuck(*args, **kwargs):  # a filter that checks no token: ~5 s of C++ on a quiet 2-core machine
        sitk.DiscreteGaussian(sitk.Image([120, 120, 120], sitk.sitkFloat32), 400.0, 200, 0.0001, False)
        pytest.fail("the stuck filter's result must be dropped")

    monkeypatch.setattr(engine, "register", stuck)
    token = engine.CancelToken()
    threading.Timer(0.3, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(RegistrationCancelled) as err:
        headless.register_to_folder(tiny_pair.fixed, tiny_pair.moving, tmp_path / "out", preset="rigid", cancel=token)
    assert time.monotonic() - start < 3.0
    assert getattr(err.value, "abandoned", False)
    assert not any((tmp_path / "out").iterdir())
    # The abandoned filter runs on in its daemon thread; let it end before the test process
    # does (a thread killed inside C++ at interpreter exit aborts the process).
    for thread in threading.enumerate():
        if thread.name == "regviewer-work":
            thread.join(120)
