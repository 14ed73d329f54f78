"""The HTML report: self-contained, every section present, 3D and 2D (RGB) images."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ImageWriteError
from regviewer.core.qa.evaluation import evaluate_registration
from regviewer.core.qa.report import write_report
from regviewer.core.qa.report_images import png_data_uri
from regviewer.core.qa.report_svg import histogram_svg, metric_curve_svg


def _volume(size=(30, 34, 26)):
    rng = np.random.default_rng(3)
    img = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random(size[::-1]).astype(np.float32) * 200), 2.0)
    img.SetSpacing((2.0, 2.0, 2.5))
    img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    return img


HISTORY = [
    {"stage": s, "stage_name": name, "level": lvl, "iteration": i, "metric": -0.2 - 0.01 * (s * 30 + lvl * 10 + i), "elapsed": 0.1}
    for s, name in enumerate(["affine", "bspline"]) for lvl in range(2) for i in range(10)
]


def test_report_3d_is_self_contained(tmp_path):
    fixed = _volume()
    moving = sitk.Resample(fixed, fixed, sitk.Euler3DTransform((0, 0, 0), 0.05, 0.0, 0.1, (2.0, -1.0, 0.0)))
    labels = sitk.Cast(fixed > 100, sitk.sitkUInt8)
    tx = sitk.Euler3DTransform((0, 0, 0), 0.05, 0.0, 0.1, (2.0, -1.0, 0.0)).GetInverse()
    e = evaluate_registration(fixed, moving, tx, labels_fixed=labels, labels_moving=labels, history=HISTORY,
                              params={"stages": [{"transform": "affine"}]})
    out = write_report(e, tmp_path / "sub" / "qa.html")
    text = out.read_text(encoding="utf-8")
    for heading in ("Checkerboards", "Deformation", "Histogram of Jacobian", "Metric during the run", "Tables",
                    "Parameters", "Software", "Labels", "SimpleITK"):
        assert heading in text, heading
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 12  # 3 planes x (before, after, grid, Jacobian)
    assert "<polyline" in text  # grid and metric curve
    assert not re.search(r'(src|href)="(https?:|file:|/)', text)  # nothing outside the file
    # every embedded picture is a real PNG
    for uri in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', text)[:3]:
        assert base64.b64decode(uri)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_2d_rgb(tmp_path):
    rng = np.random.default_rng(0)
    arr = (sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(rng.random((60, 80)).astype(np.float32)), 2.0)) * 255)
    rgb = sitk.GetImageFromArray(np.clip(np.stack([arr, arr * 0.8, arr * 0.5], -1), 0, 255).astype(np.uint8), isVector=True)
    e = evaluate_registration(rgb, rgb, sitk.TranslationTransform(2, (1.0, 0.0)))
    text = write_report(e, tmp_path / "qa2d.html").read_text(encoding="utf-8")
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 4
    assert "image plane" in text
    assert "No registration parameters" in text


def test_report_needs_html_suffix(tmp_path):
    fixed = _volume((10, 10, 10))
    e = evaluate_registration(fixed, fixed, sitk.TranslationTransform(3))
    with pytest.raises(ImageWriteError, match="HTML"):
        write_report(e, tmp_path / "qa.pdf")


def test_svg_helpers():
    svg = metric_curve_svg(HISTORY)
    assert svg.count("stroke-dasharray") == 4  # two stages x two levels
    assert "bspline L1" in svg
    hist = histogram_svg(np.array([-0.5, 0.5, 1.0, 1.0, 1.2]))
    assert "#ffe600" in hist  # the folding bar is drawn in the folding colour
    assert metric_curve_svg([{"metric": float("nan")}]).startswith("<p>")


def test_png_data_uri_grey_and_rgb():
    assert png_data_uri(np.zeros((4, 5), np.uint8)).startswith("data:image/png;base64,")
    assert png_data_uri(np.zeros((4, 5, 3), np.uint8)).startswith("data:image/png;base64,")
