#!/usr/bin/env python3
"""Build the bundled demo pairs in resources/demo/ from ../shared/data/.

3D: MNI T1 at 2 mm (fixed) and a T2-like image of the same anatomy (moving), misaligned
by a known affine (~10°, ~11 mm, 5 % scale) plus a mild smooth warp.
2D: the retina photograph (fixed) and a rotated, scaled, shifted, gently warped copy.
The ground-truth transforms (fixed → moving) ship beside them.

    .venv/bin/python scripts/make_demo_data.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import SimpleITK as sitk

from regviewer.core.imaging.io import write_image, write_transform
from regviewer.core.imaging.synthetic import brain_pair, brain_points, photo_pair, target_registration_error

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "resources" / "demo"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    brain = brain_pair(args.shared, shrink=2, warp_mm=6.0, seed=1)
    write_image(brain.fixed, out / "brain_t1_fixed.nii.gz")
    write_image(sitk.Cast(sitk.Clamp(brain.moving, lowerBound=0, upperBound=255), sitk.sitkUInt8), out / "brain_t2like_moving.nii.gz")
    write_image(brain.mask, out / "brain_mask_fixed.nii.gz")
    write_transform(brain.true, out / "brain_true_fixed_to_moving.h5")
    write_transform(brain.true_affine, out / "brain_true_affine.tfm")
    pts = brain_points(brain.mask, 2000, seed=0)
    warp_only = target_registration_error(brain.true_affine, brain.true, pts)
    print(f"3D pair: {brain.fixed.GetSize()} at {brain.fixed.GetSpacing()} mm; "
          f"warp beyond the affine: mean {warp_only.mean():.2f} mm, max {warp_only.max():.2f} mm")

    retina = sitk.ReadImage(str(Path(args.shared) / "retina.jpg"))
    photo = photo_pair(retina, size=480, warp_px=6.0, seed=2)
    write_image(photo.fixed, out / "retina_fixed.png")
    write_image(photo.moving, out / "retina_moving.png")
    write_transform(photo.true, out / "retina_true_fixed_to_moving.h5")
    write_transform(photo.true_affine, out / "retina_true_affine.tfm")
    pts2 = brain_points(photo.mask, 2000, seed=0)
    warp2 = target_registration_error(photo.true_affine, photo.true, pts2)
    print(f"2D pair: {photo.fixed.GetSize()} px; warp beyond the affine: mean {warp2.mean():.2f} px, max {warp2.max():.2f} px")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {len(list(out.iterdir()))} files, {total / 1e6:.1f} MB, to {out}")


if __name__ == "__main__":
    main()
