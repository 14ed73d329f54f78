"""A small synthetic serial-section stack with a known truth (for tests; no files needed).

The "block" is a few smooth blobs that change slowly from section to section; each
section is cut, turned and shifted by its own rigid transform, given its own brightness
and noise, and saved as an 8-bit PNG without geometry (pixel units).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SIZE = 96


def block(n: int, seed: int = 0) -> list[sitk.Image]:
    """n planes of SIZE x SIZE px: blobs drifting slowly along z (a smooth 3D object)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(28, 68, (7, 2))
    drift = rng.uniform(-0.6, 0.6, (7, 2))
    radii = rng.uniform(5, 11, 7)
    gains = rng.uniform(60, 140, 7)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    planes = []
    for k in range(n):
        img = np.full((SIZE, SIZE), 10.0)
        body = np.exp(-(((xs - 48) / 34) ** 4 + ((ys - 48) / 28) ** 4))
        img += 60 * body
        for c, d, r, g in zip(centres, drift, radii, gains):
            cx, cy = c + d * k
            img += g * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))
        planes.append(sitk.GetImageFromArray(img.astype(np.float32)))
    return planes


def cut(planes: list[sitk.Image], folder: Path, seed: int = 1, max_angle: float = 12.0, max_shift: float = 6.0,
        names: list[str] | None = None) -> list[sitk.Transform]:
    """Save each plane as an 8-bit PNG under its own rigid transform; return the true
    plane-frame -> section-frame transforms."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truths = []
    for k, plane in enumerate(planes):
        centre = ((SIZE - 1) / 2.0, (SIZE - 1) / 2.0)
        true = sitk.Euler2DTransform(centre, math.radians(rng.uniform(-max_angle, max_angle)),
                                     tuple(rng.uniform(-max_shift, max_shift, 2)))
        section = sitk.Resample(plane, plane, true.GetInverse(), sitk.sitkLinear, 10.0, sitk.sitkFloat32)
        arr = sitk.GetArrayFromImage(section) * rng.uniform(0.6, 1.3) + rng.uniform(-5, 20)
        arr = np.clip(arr + rng.normal(0, 2.0, arr.shape), 0, 255).astype(np.uint8)
        name = names[k] if names else f"s{k}.png"
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(folder / name))
        truths.append(true)
    return truths


def tissue_points() -> np.ndarray:
    g = np.linspace(24, 72, 7)
    return np.array([(x, y) for y in g for x in g], float)


def mean_error(estimated: sitk.Transform, true: sitk.Transform, points: np.ndarray) -> float:
    est = np.array([estimated.TransformPoint(p.tolist()) for p in points])
    tru = np.array([true.TransformPoint(p.tolist()) for p in points])
    return float(np.mean(np.linalg.norm(est - tru, axis=1)))
