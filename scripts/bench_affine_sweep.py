#!/usr/bin/env python
"""`affine-mi` with and without `regrow_step` on affines it was not tuned on.

The MNI T1 (fixed) against the T2-like image of the same anatomy under random affines
(rotations up to 12° about each axis, shifts up to 10 mm, scales 0.94-1.06 per axis), at
2 mm or 1 mm. For each pair: wall time, iterations, TRE mean / max at 2000 brain points and
whether the run warned that the result is probably wrong; then medians and the worst case.

    .venv/bin/python scripts/bench_affine_sweep.py [--mm 2] [--pairs 8] [--seed 7]

Needs ../shared/data (the 1 mm MNI templates; or set REGVIEWER_DATA).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("REGVIEWER_DATA", "") or ROOT.parent / "shared" / "data")

from regviewer.core.imaging import synthetic as syn  # noqa: E402
from regviewer.core.registration.engine import register  # noqa: E402
from regviewer.core.registration.presets import load_preset  # noqa: E402
from regviewer.core.registration.search import clear_cache  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mm", type=int, default=2, choices=(1, 2, 4), help="grid spacing of the pair")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    t1, gm, wm = (sitk.ReadImage(str(DATA / f"mni152_2009a_{k}_1mm.nii.gz")) for k in ("t1", "gm", "wm"))
    if args.mm > 1:
        t1, gm, wm = (sitk.BinShrink(img, [args.mm] * 3) for img in (t1, gm, wm))
    t2 = syn.t2_like(t1, gm, wm)
    mask = sitk.Cast((sitk.Cast(gm, sitk.sitkFloat32) + sitk.Cast(wm, sitk.sitkFloat32)) / 255.0 > 0.3, sitk.sitkUInt8)
    points = syn.brain_points(mask, 2000)
    centre = t1.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in t1.GetSize()])
    preset = load_preset("affine-mi")
    stage = preset.stages[0]
    arms = {on: dataclasses.replace(preset, stages=(dataclasses.replace(
        stage, optimizer=dataclasses.replace(stage.optimizer, regrow_step=on)),)) for on in (False, True)}
    rng = np.random.default_rng(args.seed)
    rows: dict[bool, list[tuple]] = {on: [] for on in arms}
    print(f"{args.pairs} pairs, {args.mm} mm {t1.GetSize()}, affine-mi with regrow_step off / on")
    for i in range(args.pairs):
        true = syn.affine_transform(centre, rotation_deg=rng.uniform(-12, 12, 3),
                                    translation_mm=rng.uniform(-10, 10, 3), scale=rng.uniform(0.94, 1.06, 3))
        moving = syn.warp_image(t2, true)
        cells = []
        for on, params in arms.items():
            clear_cache()  # every run sees the pair for the first time
            t0 = time.perf_counter()
            result = register(t1, moving, params=params)
            seconds = time.perf_counter() - t0
            err = syn.target_registration_error(result.transform, true, points)
            wrong = any("probably wrong" in w for w in result.warnings)
            rows[on].append((seconds, len(result.history), float(err.mean()), float(err.max()), wrong))
            cells.append(f"{'on ' if on else 'off'} {seconds:.2f} s, {len(result.history)} it, TRE {err.mean():.3f} / "
                         f"{err.max():.3f} mm{' (warned: probably wrong)' if wrong else ''}")
        print(f"pair {i}: " + "  |  ".join(cells), flush=True)
    print()
    print("| regrow_step | median time | median iterations | mean TRE (mean over pairs) | worst pair: mean / max TRE "
          "| warned \"probably wrong\" |")
    print("|---|---|---|---|---|---|")
    for on, r in rows.items():
        worst = max(r, key=lambda x: x[2])
        print(f"| {'on' if on else 'off'} | {statistics.median(x[0] for x in r):.2f} s "
              f"| {statistics.median(x[1] for x in r):.0f} | {np.mean([x[2] for x in r]):.3f} mm "
              f"| {worst[2]:.3f} / {worst[3]:.3f} mm | {sum(x[4] for x in r)} of {len(r)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
