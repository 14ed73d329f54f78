"""`regviewer evaluate`: the QA summary, Dice from label maps, the HTML report, exit codes."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from regviewer.cli.parser import main

from .conftest import run_cli


def test_evaluate_prints_the_summary_with_dice_and_writes_the_report(tiny_pair, tmp_path):
    pytest.importorskip("regviewer.core.qa.evaluation")
    # Labels drawn on the fixed image, and the same anatomy's labels on the moving image.
    from regviewer.core.imaging.synthetic import warp_image

    fixed_labels = sitk.Cast(sitk.ReadImage(str(tiny_pair.fixed)) > 90, sitk.sitkUInt8)
    moving_labels = warp_image(fixed_labels, tiny_pair.true_transform)
    moving_labels = sitk.Cast(moving_labels > 0.5, sitk.sitkUInt8)
    sitk.WriteImage(fixed_labels, str(tmp_path / "lf.nii.gz"))
    sitk.WriteImage(moving_labels, str(tmp_path / "lm.nii.gz"))
    proc = run_cli("evaluate", "--fixed", tiny_pair.fixed, "--moving", tiny_pair.moving, "--transform", tiny_pair.true,
                   "--labels-fixed", tmp_path / "lf.nii.gz", "--labels-moving", tmp_path / "lm.nii.gz",
                   "--report", tmp_path / "report.html", "--json", tmp_path / "qa.json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((tmp_path / "qa.json").read_text())
    assert summary["dice"]["1"] > 0.9  # the true transform overlaps the labels
    assert summary["direction"].startswith("fixed -> moving")
    assert (tmp_path / "report.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_evaluate_missing_input_exits_2(tiny_pair, tmp_path, capsys):
    missing = str(tmp_path / "no_transform.tfm")
    assert main(["evaluate", "--fixed", str(tiny_pair.fixed), "--moving", str(tiny_pair.moving),
                 "--transform", missing]) == 2
    assert "no_transform.tfm" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--fixed", str(tiny_pair.fixed)])  # --moving and --transform are required
    assert exc.value.code == 2
