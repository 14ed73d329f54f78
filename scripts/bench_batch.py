#!/usr/bin/env python
"""Batch throughput: 16 small 3D pairs (MNI T1 at 4 mm vs a T2-like copy under a different
known affine each), registered with the affine-mi preset

  * in a plain loop in this process (no Dask),
  * on a local Dask cluster with 1 worker process,
  * on a local Dask cluster with 2 worker processes,

and prints a table (best of --repeats runs, modes alternating): wall time (cluster start-up included), pairs per minute, the
2-vs-1-worker throughput ratio and the Dask-vs-loop overhead with 1 worker. ITK threads
per worker = cores // workers, so every mode uses all cores and none oversubscribes.
The mean TRE at brain points checks every mode registered correctly.

Run: .venv/bin/python scripts/bench_batch.py [--pairs 16] [--keep DIR]
Needs ../shared/data (the MNI images) and dask[distributed].
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from regviewer.core.registration.batch import BatchSettings, read_pairs, run_batch  # noqa: E402
from regviewer.core.imaging.synthetic import affine_transform, brain_points, t2_like, warp_image  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def make_pairs(folder: Path, n: int) -> tuple[Path, dict[str, sitk.Transform], np.ndarray]:
    t1, gm, wm = (sitk.BinShrink(sitk.ReadImage(str(DATA / f"mni152_2009a_{k}_1mm.nii.gz")), [4] * 3)
                  for k in ("t1", "gm", "wm"))
    t2 = t2_like(t1, gm, wm)
    mask = sitk.GetArrayFromImage(gm).astype(float) + sitk.GetArrayFromImage(wm) > 0.3 * 255
    mask_img = sitk.GetImageFromArray(mask.astype(np.uint8))
    mask_img.CopyInformation(t1)
    points = brain_points(mask_img, 500, seed=0)
    centre = t1.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in t1.GetSize()])
    sitk.WriteImage(t1, str(folder / "fixed.nii.gz"))
    rng = np.random.default_rng(0)
    truths, rows = {}, ["name,fixed,moving"]
    for i in range(n):
        true = affine_transform(centre, rotation_deg=rng.uniform(-8, 8, 3), translation_mm=rng.uniform(-8, 8, 3),
                                scale=rng.uniform(0.95, 1.05, 3))
        sitk.WriteImage(warp_image(t2, true), str(folder / f"moving_{i:02d}.nii.gz"))
        truths[f"pair{i:02d}"] = true
        rows.append(f"pair{i:02d},fixed.nii.gz,moving_{i:02d}.nii.gz")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.csv", truths, points


def mean_tre(out: Path, truths: dict[str, sitk.Transform], points: np.ndarray) -> float:
    errors = []
    for name, true in truths.items():
        est = sitk.ReadTransform(str(out / name / "transform.tfm"))
        for p in points[::10]:
            errors.append(np.linalg.norm(np.subtract(est.TransformPoint(p.tolist()), true.TransformPoint(p.tolist()))))
    return float(np.mean(errors))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="runs per mode (alternating order; the fastest is kept)")
    ap.add_argument("--keep", type=Path, help="keep the pairs and outputs in this folder")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="regviewer-bench-batch-"))
    work.mkdir(parents=True, exist_ok=True)
    pairs_csv, truths, points = make_pairs(work, args.pairs)
    pairs = read_pairs(pairs_csv)
    settings = BatchSettings(preset="affine-mi")
    cores = os.cpu_count() or 1
    modes = [("plain loop", False, 1), ("Dask local", True, 1), ("Dask local", True, 2)]
    # The machine is shared: run the modes in alternating order `--repeats` times and keep
    # each mode's fastest run, so a burst of someone else's load does not decide the ratio.
    order = [m for r in range(args.repeats) for m in (modes if r % 2 == 0 else modes[::-1])]
    best: dict[tuple, tuple] = {}
    for label, use_dask, workers in order:
        out = work / f"out_{'dask' if use_dask else 'loop'}_{workers}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        results = run_batch(pairs, out, settings, workers=workers, use_dask=use_dask)
        wall = time.perf_counter() - start
        ok = sum(r.status == "ok" for r in results)
        per_pair = statistics.median(r.seconds for r in results if r.seconds is not None)
        row = (label, workers, max(1, cores // workers), wall, ok, per_pair, mean_tre(out, truths, points))
        key = (label, workers)
        if key not in best or wall < best[key][3]:
            best[key] = row
        print(f"  done: {label}, {workers} worker(s): {wall:.1f} s", file=sys.stderr, flush=True)
    rows = [best[(label, workers)] for label, _, workers in modes]

    print(f"\n{len(pairs)} pairs: MNI T1 4 mm (49x58x47) vs T2-like under known affines, preset affine-mi, "
          f"QA on; {cores} cores; best of {args.repeats} runs per mode")
    print("| mode | workers | ITK threads / worker | wall time (s) | pairs / min | median s / pair | ok | mean TRE (mm) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, workers, threads, wall, ok, per_pair, tre in rows:
        print(f"| {label} | {workers} | {threads} | {wall:.1f} | {60 * len(pairs) / wall:.1f} | {per_pair:.2f} | "
              f"{ok}/{len(pairs)} | {tre:.2f} |")
    loop, dask1, dask2 = (r[3] for r in rows)
    print(f"\nthroughput, 2 workers vs 1 worker (Dask): {dask1 / dask2:.2f}x")
    print(f"Dask overhead with 1 worker vs the plain loop: {dask1 / loop:.2f}x wall time "
          f"({dask1 - loop:+.1f} s, cluster start-up included)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
