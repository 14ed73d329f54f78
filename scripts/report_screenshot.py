#!/usr/bin/env python
"""Make the demo QA report and render it in headless Chromium to a PNG.

    .venv/bin/python scripts/report_screenshot.py [--html out.html] [--png out.png]
        [--preset affine-bspline-mi] [--true]   # --true: evaluate the ground truth, no registration

Registers the bundled demo brain pair (T1 fixed, T2-like moving), evaluates the
result inside the brain mask, with 20 "landmarks" placed at random brain points and
their true positions in the moving image (so the TRE table is the error against the
ground truth), writes the self-contained HTML report and screenshots it. Chromium is
run with no network, no GPU and a throw-away profile.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from regviewer.core.imaging.io import read_image, read_transform  # noqa: E402
from regviewer.core.qa.evaluation import evaluate_registration  # noqa: E402
from regviewer.core.qa.report import write_report  # noqa: E402
from regviewer.core.resources import demo_dir  # noqa: E402
from regviewer.core.imaging.synthetic import brain_points  # noqa: E402


@dataclass
class _Pair:
    name: str
    fixed: tuple
    moving: tuple
    enabled: bool = True


@dataclass
class _TruthLandmarks:
    """Duck-typed landmark set: fixed brain points and where the TRUE transform puts them."""

    pairs: list = field(default_factory=list)


def truth_landmarks(mask: sitk.Image, true: sitk.Transform, n: int = 20) -> _TruthLandmarks:
    pts = brain_points(mask, n=n, seed=7)
    return _TruthLandmarks([_Pair(f"P{i + 1}", tuple(p), tuple(true.TransformPoint(tuple(float(v) for v in p)))) for i, p in enumerate(pts)])


def make_report(html_path: Path, preset: str, use_truth: bool) -> Path:
    demo = demo_dir()
    fixed = read_image(demo / "brain_t1_fixed.nii.gz")
    moving = read_image(demo / "brain_t2like_moving.nii.gz")
    mask = read_image(demo / "brain_mask_fixed.nii.gz")
    true = read_transform(demo / "brain_true_fixed_to_moving.h5")
    history = params = None
    if use_truth:
        transform = true
    else:
        from regviewer.core.registration.engine import register

        t0 = time.perf_counter()
        result = register(fixed, moving, preset=preset, fixed_mask=mask, seed=0)
        print(f"registration ({preset}): {time.perf_counter() - t0:.1f} s, {len(result.history)} iterations, stop: {result.stop_reason}")
        transform, history, params = result.transform, result.history, result.params
    t0 = time.perf_counter()
    evaluation = evaluate_registration(
        fixed, moving, transform, mask=mask, landmarks=truth_landmarks(mask.sitk, true), history=history, params=params
    )
    path = write_report(evaluation, html_path)
    print(f"evaluation + report: {time.perf_counter() - t0:.1f} s -> {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 4000) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("Chromium is not installed (apt-get install -y chromium)")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="regviewer-chromium-") as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
            f"--screenshot={png_path}", f"--window-size={width},{height}", "--hide-scrollbars",
            html_path.resolve().as_uri(),
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    print(f"screenshot -> {png_path}")
    return png_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--html", type=Path, default=Path(tempfile.gettempdir()) / "regviewer-report" / "demo_report.html")
    ap.add_argument("--png", type=Path, default=None, help="default: beside the HTML, .png")
    ap.add_argument("--preset", default="affine-bspline-mi")
    ap.add_argument("--true", action="store_true", help="evaluate the ground-truth transform instead of registering")
    ap.add_argument("--height", type=int, default=4000)
    args = ap.parse_args(argv)
    html_path = make_report(args.html, args.preset, args.true)
    screenshot(html_path, args.png or html_path.with_suffix(".png"), height=args.height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
