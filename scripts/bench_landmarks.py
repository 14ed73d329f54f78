#!/usr/bin/env python
"""Landmark fits on the demo brain: time (with and without leave-one-out) and accuracy.

100 landmark pairs are drawn inside the demo brain mask; each moving point is the
ground-truth fixed→moving transform of its fixed point plus 0.5 mm of clicking
noise per axis. For each model the table gives the fit time, the time including
leave-one-out errors, the fiducial error (FRE, RMS), the leave-one-out RMS (the
estimate of target error) and the TRUE target error at 2000 other brain points.
One pair is then displaced by 8 mm to check that it, and only it, is flagged.

A second table measures the flags (leverage-aware; `regviewer.core.landmarks.diagnostics`)
on many small random sets, as people click them: `--sets` sets of 8 and of 20 pairs in the
demo brain with 1 mm clicking noise per axis. "clean" is the share of sets with no mistake
that get any flag (false alarms); "caught N mm" the share of sets with one pair moved N mm
(random direction) in which that pair is flagged. Truth: the demo's true transform
(affine + smooth warp) for affine/tps/bspline; a random rotation and shift for rigid.

Run: .venv/bin/python scripts/bench_landmarks.py [--pairs 100] [--sets 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.landmarks.model import MODELS, LandmarkSet, fit
from regviewer.core.imaging.synthetic import brain_points, target_registration_error

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--noise-mm", type=float, default=0.5)
    parser.add_argument("--sets", type=int, default=200, help="random sets per row of the flag table")
    args = parser.parse_args()

    fixed_image = sitk.ReadImage(str(DEMO / "brain_t1_fixed.nii.gz"))
    mask = sitk.ReadImage(str(DEMO / "brain_mask_fixed.nii.gz"))
    true = sitk.ReadTransform(str(DEMO / "brain_true_fixed_to_moving.h5"))
    points = brain_points(mask, n=args.pairs + 2000, seed=1)
    fixed, held_out = points[: args.pairs], points[args.pairs:]
    rng = np.random.default_rng(2)
    landmarks = LandmarkSet(3)
    for p in fixed:
        moving = np.array(true.TransformPoint(tuple(float(v) for v in p))) + rng.normal(scale=args.noise_mm, size=3)
        landmarks.add_pair(tuple(p), tuple(moving))
    outlier = landmarks.copy()
    outlier.set_moving(10, tuple(np.add(outlier[10].moving, (6.0, -4.0, 3.5))))  # ~8 mm

    print(f"{args.pairs} pairs in the demo brain, {args.noise_mm} mm noise per axis; reference grid = the fixed image")
    print(f"{'model':<12}{'fit s':>8}{'fit+LOO s':>11}{'FRE rms':>9}{'LOO rms':>9}{'true TRE':>10}"
          f"{'TRE max':>9}  flags(clean)  flags(pair 10 moved 8 mm)")
    for model in MODELS:
        t0 = time.perf_counter()
        fit(landmarks, model, reference=fixed_image, leave_one_out=False)
        t1 = time.perf_counter()
        result = fit(landmarks, model, reference=fixed_image)
        t2 = time.perf_counter()
        tre = target_registration_error(result.transform, true, held_out)
        with_outlier = fit(outlier, model, reference=fixed_image)
        print(f"{model:<12}{t1 - t0:>8.3f}{t2 - t1:>11.3f}{result.rms_mm:>9.3f}{result.loo_rms_mm:>9.3f}"
              f"{tre.mean():>10.3f}{tre.max():>9.3f}  {str(list(result.flagged)):<12}  {list(with_outlier.flagged)}")
    print("(mm; TRE = |fit(p) - true(p)| at 2000 held-out brain points; the true transform is affine + a "
          "smooth warp, so linear models keep the warp as error)")
    print()
    flag_table(mask, true, args.sets)


MISTAKES_MM = (5.0, 10.0, 15.0, 20.0)


def flag_table(mask: sitk.Image, true: sitk.Transform, sets: int, noise_mm: float = 1.0) -> None:
    """Flag rate on clean random sets and catch rate of one planted mistake, per model and size."""
    pool = brain_points(mask, n=5000, seed=3)
    # a coarse grid over the brain: the flags do not depend on it, and the tps field is cheap on it
    lo, hi = pool.min(axis=0) - 10, pool.max(axis=0) + 10
    grid = sitk.Image([16, 16, 16], sitk.sitkUInt8)
    grid.SetOrigin(tuple(float(v) for v in lo))
    grid.SetSpacing(tuple(float(v) for v in (hi - lo) / 15))
    print(f"Flags on {sets} random sets per row, {noise_mm} mm clicking noise per axis (share of sets)")
    print(f"{'model':<9}{'pairs':>6}{'clean':>8}" + "".join(f"{f'caught {m:.0f} mm':>15}" for m in MISTAKES_MM))
    for model in ("rigid", "affine", "tps", "bspline"):
        for n in (8, 20):
            rng = np.random.default_rng(1000 * n + len(model))
            counts = {m: 0 for m in MISTAKES_MM}
            false_sets = 0
            for _ in range(sets):
                fixed = pool[rng.choice(len(pool), n, replace=False)]
                moving = _truth_for(model, true, rng)(fixed) + rng.normal(scale=noise_mm, size=fixed.shape)
                false_sets += bool(fit(_set(fixed, moving), model, reference=grid).flagged)
                k = int(rng.integers(n))
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                for m in MISTAKES_MM:
                    bad = moving.copy()
                    bad[k] += m * direction
                    counts[m] += k in fit(_set(fixed, bad), model, reference=grid).flagged
            clean = false_sets / sets
            caught = "".join(f"{counts[m] / sets:>15.0%}" for m in MISTAKES_MM)
            print(f"{model:<9}{n:>6}{clean:>8.1%}{caught}")


def _truth_for(model: str, true: sitk.Transform, rng: np.random.Generator):
    if model == "rigid":
        angles = rng.uniform(-0.2, 0.2, 3)
        tx = sitk.Euler3DTransform((0.0, 0.0, 0.0), *angles, tuple(rng.uniform(-10, 10, 3)))
    else:
        tx = true
    return lambda pts: np.array([tx.TransformPoint(tuple(float(v) for v in p)) for p in pts])


def _set(fixed: np.ndarray, moving: np.ndarray) -> LandmarkSet:
    out = LandmarkSet(3)
    for f, m in zip(fixed, moving):
        out.add_pair(tuple(float(v) for v in f), tuple(float(v) for v in m))
    return out


if __name__ == "__main__":
    main()
