"""Tiny 2D pairs with a known fixed -> moving transform, and a fast parameter set, so the
command line and batch tests run real registrations in well under a second each."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging.image import to_scalar_float32
from regviewer.core.registration.params import MetricParams, OptimizerParams, Pipeline, PyramidParams, SamplingParams, Stage, TransformParams
from regviewer.core.imaging.synthetic import affine_transform, warp_image

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"
PYTHON = sys.executable


@dataclass
class TinyPair:
    fixed: Path
    moving: Path
    true: Path  # fixed -> moving transform file
    true_transform: sitk.Transform


def tiny_fixed() -> sitk.Image:
    """The retina demo's luminance at 4 mm spacing: 120 x 120 pixels, uint8."""
    grey = to_scalar_float32(sitk.ReadImage(str(DEMO / "retina_fixed.png")))
    small = sitk.BinShrink(grey, [4, 4])
    return sitk.Cast(sitk.RescaleIntensity(small, 0, 255), sitk.sitkUInt8)


def make_pair(folder: Path, name: str, angle: float, shift: tuple[float, float], suffix: str = ".mha") -> TinyPair:
    folder.mkdir(parents=True, exist_ok=True)
    fixed = tiny_fixed()
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in fixed.GetSize()])
    true = affine_transform(centre, rotation_deg=(0.0, 0.0, angle), translation_mm=shift, scale=(1.03, 0.98))
    moving = warp_image(fixed, true)
    paths = TinyPair(folder / f"{name}_fixed{suffix}", folder / f"{name}_moving{suffix}", folder / f"{name}_true.tfm", true)
    sitk.WriteImage(fixed, str(paths.fixed))
    sitk.WriteImage(moving, str(paths.moving))
    sitk.WriteTransform(true, str(paths.true))
    return paths


def tiny_pipeline(iterations: int = 300) -> Pipeline:
    """Affine, correlation (same modality), 2 levels, all pixels: ~0.5 s on a 120 px pair."""
    stage = Stage(name="affine", transform=TransformParams(kind="affine"), metric=MetricParams(kind="correlation"),
                  optimizer=OptimizerParams(iterations=iterations),
                  pyramid=PyramidParams(shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0)),
                  sampling=SamplingParams(strategy="none"), initializer="geometry")
    return Pipeline(stages=(stage,), name="tiny-affine")


def grid_points(image_path: Path, margin: int = 20, step: int = 10) -> np.ndarray:
    img = sitk.ReadImage(str(image_path))
    nx, ny = img.GetSize()
    return np.array([img.TransformContinuousIndexToPhysicalPoint([x, y])
                     for x in range(margin, nx - margin, step) for y in range(margin, ny - margin, step)])


def tre(estimated: sitk.Transform, true: sitk.Transform, points: np.ndarray) -> np.ndarray:
    est = np.array([estimated.TransformPoint(p.tolist()) for p in points])
    ref = np.array([true.TransformPoint(p.tolist()) for p in points])
    return np.linalg.norm(est - ref, axis=1)


def write_landmarks(path: Path, fixed_image: Path, true: sitk.Transform) -> Path:
    """A landmark file (regviewer CSV) of grid points on the fixed image and their true partners."""
    from regviewer.core.landmarks.model import LandmarkSet

    points = grid_points(fixed_image, margin=25, step=25)
    lm = LandmarkSet(points.shape[1])
    for i, p in enumerate(points):
        lm.add_pair(fixed=p.tolist(), moving=list(true.TransformPoint(p.tolist())), name=f"L{i}")
    lm.save(path)
    return path


def run_cli(*args, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The real command, as a user types it (python -m regviewer ...)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([PYTHON, "-m", "regviewer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=kwargs.pop("cwd", None), **kwargs)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_pair(tiny_dir) -> TinyPair:
    return make_pair(tiny_dir, "a", 6.0, (8.0, -5.0))


@pytest.fixture(scope="session")
def tiny_params(tiny_dir) -> Path:
    path = tiny_dir / "tiny_params.json"
    path.write_text(tiny_pipeline().to_json())
    return path


@pytest.fixture
def dask_cluster(tmp_path):
    """A dask.distributed scheduler and one worker started as separate processes, as on a
    cluster; yields the scheduler's address (worker output in tmp_path/worker.log)."""
    import json
    import time

    scheduler_file = tmp_path / "scheduler.json"
    dask = str(Path(sys.executable).parent / "dask")  # the `dask` command of this environment
    logs = [open(tmp_path / "scheduler.log", "w"), open(tmp_path / "worker.log", "w")]
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([dask, "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard", "--memory-limit", "0"], stdout=logs[1],
                                      stderr=subprocess.STDOUT))
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
