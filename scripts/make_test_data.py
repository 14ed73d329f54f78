"""Build the small real images the tests read from `tests/data/` (run once; outputs committed).

The sources are the MNI152 2009a templates and scikit-image's camera photograph (see the
shared data folder's README for their licences). The tests need real anatomy and a real
photograph, not a large grid, so each file is a binned-down copy of tens of KB:

- `mni152_2009a_{t1,gm,wm}_4mm.nii.gz`: the 1 mm templates binned 4x4x4 (49 x 58 x 47, uint8,
  direction diag(-1,-1,1) kept), exactly what `brain_pair(..., shrink=4)` used to build;
- `camera_128.nii.gz`: the camera photograph binned 4x4 to 128 x 128 float32.

Usage: python scripts/make_test_data.py [SOURCE_FOLDER]   (default: ../shared/data beside the project)
"""

from __future__ import annotations

import sys
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data"


def build(source: Path, out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ("t1", "gm", "wm"):
        img = sitk.ReadImage(str(source / f"mni152_2009a_{kind}_1mm.nii.gz"))
        path = out / f"mni152_2009a_{kind}_4mm.nii.gz"
        sitk.WriteImage(sitk.BinShrink(img, [4, 4, 4]), str(path), useCompression=True)
        written.append(path)
    camera = sitk.ReadImage(str(source / "camera.png"), sitk.sitkFloat32)
    path = out / "camera_128.nii.gz"
    sitk.WriteImage(sitk.BinShrink(camera, [4, 4]), str(path), useCompression=True)
    written.append(path)
    return written


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    for p in build(src):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size / 1024:.0f} KB")
