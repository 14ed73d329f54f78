"""The Python API as the README shows it, and the progress printers (TTY vs plain)."""

from __future__ import annotations

import io
import json

import SimpleITK as sitk

import regviewer
from regviewer.cli.progress import BatchProgress, ProgressPrinter
from regviewer.core.registration.headless import register_to_folder
from regviewer.core.registration.batch import PairResult
from regviewer.core.registration.engine import Progress

from .conftest import grid_points, tiny_pipeline, tre


def test_python_api_register_with_progress_callback(tiny_pair):
    seen: list[Progress] = []
    result = regviewer.register(str(tiny_pair.fixed), str(tiny_pair.moving), params=tiny_pipeline(),
                                progress=seen.append)
    assert seen and seen[-1].iteration >= 0 and isinstance(seen[-1].transform, sitk.Transform)
    assert len(result.history) >= len(seen) and not result.cancelled
    assert result.resampled.GetSize() == sitk.ReadImage(str(tiny_pair.fixed)).GetSize()
    assert tre(result.transform, tiny_pair.true_transform, grid_points(tiny_pair.fixed)).mean() < 0.5


def test_python_api_cancel_returns_inside_a_long_itk_filter(tiny_pair, monkeypatch):
    """The API used to wait for a filter that checks no token (15 s and more) before it saw a cancel."""
    import threading
    import time

    import pytest

    from regviewer.core.errors import RegistrationCancelled
    from regviewer.core.registration import engine

    def stuck(*args, **kwargs):  # ~5 s of C++ on a quiet 2-core machine
        sitk.DiscreteGaussian(sitk.Image([120, 120, 120], sitk.sitkFloat32), 400.0, 200, 0.0001, False)

    monkeypatch.setattr(engine, "register", stuck)
    token = engine.CancelToken()
    threading.Timer(0.3, token.cancel).start()
    start = time.monotonic()
    with pytest.raises(RegistrationCancelled) as err:
        regviewer.register(str(tiny_pair.fixed), str(tiny_pair.moving), cancel=token)
    assert time.monotonic() - start < 3.0 and getattr(err.value, "abandoned", False)
    for thread in threading.enumerate():  # let the filter end before the process does
        if thread.name == "regviewer-work":
            thread.join(120)


def test_python_api_cancel_still_returns_the_best_transform_when_the_engine_answers(tiny_pair):
    from regviewer.core.registration.engine import CancelToken

    token = CancelToken()
    token.cancel()
    result = regviewer.register(str(tiny_pair.fixed), str(tiny_pair.moving), params=tiny_pipeline(), cancel=token)
    assert result.cancelled and isinstance(result.transform, sitk.Transform)


def test_register_to_folder_from_python(tiny_pair, tmp_path):
    outcome = register_to_folder(tiny_pair.fixed, tiny_pair.moving, tmp_path, params=tiny_pipeline(), evaluate=False)
    assert outcome.files["transform"].name == "transform.tfm" and outcome.files["resampled"].is_file()
    summary = json.loads(outcome.files["qa"].read_text())
    assert "qa" not in summary and summary["final_metric"] == outcome.final_metric


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(stage=0, level=0, iteration=0, metric=-0.5):
    return Progress(stage=stage, stage_name="affine", level=level, n_levels=3, iteration=iteration, metric=metric,
                    transform=sitk.Transform(2, sitk.sitkIdentity), elapsed=1.0)


def test_progress_is_one_updating_line_on_a_tty_and_throttled_lines_otherwise():
    tty = _Tty()
    printer = ProgressPrinter(tty, label="affine-mi", tty_interval=0.0)
    for i in range(5):
        printer(_progress(iteration=i))
    printer.finish()
    text = tty.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1
    assert "stage 1 affine" in text and "level 1/3" in text and "iteration 4" in text and "metric -0.5" in text

    plain = io.StringIO()
    printer = ProgressPrinter(plain, plain_interval=60.0)
    for i in range(100):
        printer(_progress(iteration=i))
    printer(_progress(level=1))  # a new level always gets a line
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in plain.getvalue()
    assert "level 2/3" in lines[1]


def test_batch_progress_counts_and_bar():
    tty = _Tty()
    bar = BatchProgress(3, tty)
    bar.skip([PairResult("a", "ok", this_run="skipped")])
    bar(PairResult("b", "ok", seconds=1.0, final_metric=-0.9))
    bar(PairResult("c", "failed", error="boom"))
    bar.finish()
    text = tty.getvalue()
    assert "3/3 pairs" in text and "1 ok" in text and "1 failed" in text and "c: FAILED: boom" in text


def test_no_command_or_image_paths_open_the_window(monkeypatch):
    import regviewer.gui.app as app
    from regviewer.cli.parser import main

    calls = []
    monkeypatch.setattr(app, "run_app", lambda **kw: calls.append(kw) or 0)
    assert main([]) == 0 and main(["f.nii.gz", "m.nii.gz"]) == 0 and main(["--session", "s.json"]) == 0
    assert calls[0]["fixed"] is None and calls[1]["fixed"] == "f.nii.gz" and calls[1]["moving"] == "m.nii.gz"
    assert calls[2]["session"] == "s.json"
