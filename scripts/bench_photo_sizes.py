#!/usr/bin/env python
"""How the 2D presets' time grows with the photograph's size (issue: they should follow the
pixels sampled, not the image size).

The colour fundus photograph resampled to N x N (pixel spacing 1) against a copy under a known
affine (-9°, 6 % / -4 % scale, a shift of 2 % / 1.5 % of the width); `photo-2d` and `auto`, best
of --repeat runs, each with the pose search's cache emptied; TRE at 1000 points on the retina.

    .venv/bin/python scripts/bench_photo_sizes.py [--sizes 480,960,1411,2822] [--repeat 2]

Needs ../shared/data/retina.jpg (or set REGVIEWER_DATA).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("REGVIEWER_DATA", "") or ROOT.parent / "shared" / "data")

from regviewer.core.imaging import synthetic as syn  # noqa: E402
from regviewer.core.registration.engine import register  # noqa: E402
from regviewer.core.registration.presets import load_preset  # noqa: E402
from regviewer.core.registration.search import clear_cache  # noqa: E402


def photograph(rgb: sitk.Image, size: int) -> sitk.Image:
    """The photograph on an N x N grid with pixel spacing 1 (the file's own spacing is not 1)."""
    spacing = rgb.GetSpacing()[0] * rgb.GetSize()[0] / size
    out = sitk.Resample(rgb, [size, size], sitk.Transform(), sitk.sitkLinear, rgb.GetOrigin(), [spacing] * 2)
    out.SetSpacing((1.0, 1.0))
    out.SetOrigin((0.0, 0.0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="480,960,1411,2822")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rgb = sitk.ReadImage(str(DATA / "retina.jpg"))
    print("| size | pixels | preset | time (best of %d) | TRE mean / max |" % args.repeat)
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        fixed = photograph(rgb, size)
        centre = [(n - 1) / 2 for n in fixed.GetSize()]
        true = syn.affine_transform(centre, rotation_deg=(0, 0, -9), translation_mm=(0.02 * size, -0.015 * size),
                                    scale=(1.06, 0.96))
        moving = syn.warp_image(fixed, true)
        retina = sitk.Cast(sitk.VectorIndexSelectionCast(fixed, 1) > 20, sitk.sitkUInt8)
        points = syn.brain_points(sitk.BinaryErode(retina, [max(1, size // 140)] * 2), 1000)
        for preset in ("photo-2d", "auto"):
            params = load_preset(preset)
            times = []
            for _ in range(args.repeat):
                clear_cache()
                t0 = time.perf_counter()
                result = register(fixed, moving, params=params)
                times.append(time.perf_counter() - t0)
            err = syn.target_registration_error(result.transform, true, points)
            print(f"| {size}×{size} | {size * size / 1e6:.2f} M | {preset} | {min(times):.2f} s | "
                  f"{err.mean():.3f} / {err.max():.3f} px |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
