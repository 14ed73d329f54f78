"""Robustness benchmark: does the default (`auto`) succeed on pairs it was never tuned on?

Builds realistic pairs with a known answer from ../shared/data (MNI T1 / tissue maps at
2 mm, camera.png, retina.jpg) and resources/demo: large rotations, thick slices, a
partial field of view, bias field and noise, low and inverted contrast, far-apart
origins, another axis order, flipped direction cosines, small float 2D slices,
photographs with zoom, RGB against grey, and deformable photographs (a known smooth
dense warp). For every method it prints the mean error in voxels of the fixed image
(deformable cases: mean / median end-point error in pixels) and the wall time.
Success: mean error <= 1 voxel (deformable: mean <= 3 px and median <= 1 px).

    python scripts/bench_robustness.py              # all cases, all methods (several minutes)
    python scripts/bench_robustness.py --quick      # auto, auto-deformable and the SimpleITK script only
    python scripts/bench_robustness.py --cases rot180-3d,photo-zoom

Methods: auto, auto-deformable (deformable cases), every named preset that applies
(photo-2d on 2D only, demons / affine-bspline-mi on deformable cases), and a plain
SimpleITK script (moments start, affine, Mattes MI 50 bins, 10 % random sampling,
regular-step gradient descent, 4/2/1 pyramid: the usual notebook recipe). elastix and
ANTs are run when their command-line tools are installed (they are not here).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import regviewer  # noqa: E402
from regviewer.core.imaging.image import as_volume  # noqa: E402
from regviewer.core.registration import search  # noqa: E402

DATA = Path(os.environ.get("REGVIEWER_DATA", ROOT.parent / "shared" / "data"))
DEMO = ROOT / "resources" / "demo"
WRONG_FLAG = "probably wrong"  # the wrong-optimum check's warning (core/registration/verify.py)


@dataclass
class Case:
    name: str
    what: str
    fixed: sitk.Image
    moving: sitk.Image
    true: sitk.Transform  # fixed -> moving
    points: np.ndarray  # fixed-space physical points where the error is measured
    voxel: float  # mm per voxel of the fixed image (errors are reported in these units)
    deformable: bool = False


# --- building blocks ------------------------------------------------------------------------------
def moved(source: sitk.Image, true: sitk.Transform, default: float = 0.0) -> sitk.Image:
    """An image with moving(true(x)) = source(x), on source's grid (true must be invertible)."""
    return sitk.Resample(source, source, true.GetInverse(), sitk.sitkLinear, default)


def center(img: sitk.Image) -> tuple:
    return img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in img.GetSize()])


def grid_points(img: sitk.Image, n: int = 12, margin: float = 0.15) -> np.ndarray:
    axes = [np.linspace(margin * (s - 1), (1 - margin) * (s - 1), n) for s in img.GetSize()]
    idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, img.GetDimension())
    return np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(map(float, i))) for i in idx])


def brain_points(t1: sitk.Image, mask: np.ndarray, step: int = 6) -> np.ndarray:
    idx = np.argwhere(mask[::step, ::step, ::step]) * step  # z, y, x
    return np.array([t1.TransformIndexToPhysicalPoint((int(x), int(y), int(z))) for z, y, x in idx])


def compose(*transforms: sitk.Transform) -> sitk.Transform:
    """x -> transforms[0](transforms[1](...(x))): the LAST is applied first."""
    comp = sitk.CompositeTransform(transforms[0].GetDimension())
    for t in transforms:
        comp.AddTransform(t)
    return comp


def rigid3(c, deg=(0, 0, 0), shift=(0, 0, 0)) -> sitk.Euler3DTransform:
    return sitk.Euler3DTransform(c, *(math.radians(d) for d in deg), shift)


def sim2(c, deg=0.0, scale=1.0, shift=(0.0, 0.0)) -> sitk.Similarity2DTransform:
    return sitk.Similarity2DTransform(scale, math.radians(deg), shift, c)


def bias_noise(img: sitk.Image, seed: int = 1, strength: float = 0.35, noise: float = 0.04) -> sitk.Image:
    a = sitk.GetArrayFromImage(img).astype(np.float32)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in a.shape], indexing="ij")
    field = np.exp(strength * (grids[-1] + 0.6 * grids[0] - 0.5 * grids[-1] * grids[0]))
    rng = np.random.default_rng(seed)
    out = a * field + rng.normal(0, noise * float(a.max()), a.shape)
    res = sitk.GetImageFromArray(out.astype(np.float32), isVector=False)
    res.CopyInformation(img)
    return res


def smooth_warp(shape: tuple[int, int], amplitude: float, seed: int, blobs: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(float)
    d = np.zeros((h, w, 2))
    for _ in range(blobs):
        cx, cy, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.2) * max(h, w)
        a = rng.normal(0, amplitude, 2)
        g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        d[..., 0] += a[0] * g
        d[..., 1] += a[1] * g
    return d


# --- the cases -------------------------------------------------------------------------------------
def build_cases() -> list[Case]:
    cases: list[Case] = []
    t1_full = sitk.ReadImage(str(DATA / "mni152_2009a_t1_1mm.nii.gz"), sitk.sitkFloat32)
    gm_full = sitk.ReadImage(str(DATA / "mni152_2009a_gm_1mm.nii.gz"), sitk.sitkFloat32)
    wm_full = sitk.ReadImage(str(DATA / "mni152_2009a_wm_1mm.nii.gz"), sitk.sitkFloat32)
    two = [s // 2 for s in t1_full.GetSize()]

    def at2(img):
        return sitk.Resample(sitk.SmoothingRecursiveGaussian(img, 0.8), two, sitk.Transform(), sitk.sitkLinear,
                             img.GetOrigin(), [2.0] * 3, img.GetDirection())

    t1, gm, wm = at2(t1_full), at2(gm_full), at2(wm_full)
    g, w, a = (sitk.GetArrayFromImage(i) for i in (gm, wm, t1))
    head = (a > 15).astype(np.float32)
    csf = np.clip(head - (g + w) / 255.0, 0, 1)
    t2 = sitk.GetImageFromArray((200 * csf + 120 * g / 255.0 + 50 * w / 255.0).astype(np.float32))
    t2.CopyInformation(t1)
    pts3 = brain_points(t1, (g + w) / 255.0 > 0.3)
    c3 = center(t1)

    def add3(name, what, moving_source, true, moving=None, fixed=t1):
        mv = moving if moving is not None else moved(moving_source, true)
        cases.append(Case(name, what, fixed, mv, true, pts3, 2.0))

    add3("rigid-25-3d", "3D T1 vs T1 turned 25° and shifted 23 mm", t1, rigid3(c3, (25, 0, 8), (15, -12, 12)))
    add3("rot90-3d", "3D T1 turned 90° about the vertical axis", t1, rigid3(c3, (0, 0, 90), (5, 0, 0)))
    add3("rot180-3d", "3D T1 turned 180°", t1, rigid3(c3, (0, 0, 180), (0, 8, 0)))
    aff = sitk.AffineTransform(3)
    aff.SetCenter(c3)
    aff.SetMatrix((1.08, 0.05, 0.0, -0.03, 0.95, 0.04, 0.02, 0.0, 1.04))
    aff.SetTranslation((6, -8, 4))
    add3("t1-t2-affine", "3D T1 vs T2-like (different modality), affine", t2, aff)
    add3("t1-t2-rot40", "3D T1 vs T2-like turned 40°", t2, rigid3(c3, (0, 40, 0), (0, 5, -5)))
    add3("inverted-3d", "3D T1 vs inverted contrast, turned 15°", sitk.Cast(255 - t1, sitk.sitkFloat32) * 1.0,
         rigid3(c3, (15, 0, 0), (4, 4, 0)))
    add3("bias-noise-3d", "3D T1 vs T1 with bias field and noise", bias_noise(t1), rigid3(c3, (0, 10, 10), (6, 0, 3)))
    add3("low-contrast-3d", "3D T1 vs T1 at 5 % contrast on an offset", t1 * 0.05 + 100.0, rigid3(c3, (8, 0, -8), (-5, 5, 0)))
    true = rigid3(c3, (0, 0, 10), (4, -3, 2))
    thick = sitk.Resample(sitk.SmoothingRecursiveGaussian(moved(t1, true), [0.5, 0.5, 2.5]),
                          [two[0], two[1], two[2] // 3], sitk.Transform(), sitk.sitkLinear, t1.GetOrigin(),
                          [2.0, 2.0, 6.0], t1.GetDirection())
    add3("thick-slices", "3D 2 mm vs 2x2x6 mm thick slices (1x1x5 vs 1 mm at half size)", t1, true, moving=thick)
    true = rigid3(c3, (5, 0, 0), (3, 6, -4))
    mv = moved(t1, true)
    slab = sitk.RegionOfInterest(mv, [mv.GetSize()[0], mv.GetSize()[1], 22], [0, 0, 40])
    add3("partial-fov", "3D whole brain vs a 44 mm slab (partial field of view)", t1, true, moving=slab)
    true = rigid3(c3, (0, 8, 0), (2, 2, 2))
    far = moved(t1, true)
    far.SetOrigin(tuple(np.add(far.GetOrigin(), (320.0, -250.0, 180.0))))
    add3("origins-far", "3D origins 450 mm apart in the headers", t1,
         compose(sitk.TranslationTransform(3, (320.0, -250.0, 180.0)), true), moving=far)
    true = rigid3(c3, (10, 0, 0), (0, 4, 4))
    add3("axis-order", "3D stored in another axis order (same anatomy in space)", t1, true,
         moving=sitk.PermuteAxes(moved(t1, true), [2, 0, 1]))
    add3("flipped-direction", "3D stored with flipped direction cosines", t1, true,
         moving=sitk.Flip(moved(t1, true), [True, False, True]))

    # 2D
    cam = sitk.ReadImage(str(DATA / "camera.png"), sitk.sitkFloat32)
    cp = grid_points(cam)
    cc = center(cam)

    def add2(name, what, fixed, moving_source, true, moving=None, points=None):
        mv = moving if moving is not None else moved(moving_source, true)
        cases.append(Case(name, what, fixed, mv, true, cp if points is None else points, 1.0))

    add2("photo-rot90", "photograph turned 90°", cam, cam, sim2(cc, 90, 1.0, (10, -6)))
    add2("photo-rot180", "photograph turned 180°", cam, cam, sim2(cc, 180, 1.0, (-8, 12)))
    add2("photo-zoom", "photograph turned 28° and zoomed 15 %", cam, cam, sim2(cc, 28, 1.15, (12, -9)))
    add2("photo-bias-noise", "photograph with uneven lighting and noise", cam, bias_noise(cam, 2),
         sim2(cc, -12, 0.95, (5, 5)))
    add2("photo-low-contrast", "photograph at 8 % contrast", cam, cam * 0.08 + 40.0, sim2(cc, 15, 1.05, (-6, 3)))
    retina_rgb = sitk.ReadImage(str(DATA / "retina.jpg"))
    retina_rgb.SetSpacing((1.0, 1.0))
    small = sitk.Resample(retina_rgb, [470, 470], sitk.Transform(), sitk.sitkLinear, (0.0, 0.0), (3.0, 3.0),
                          retina_rgb.GetDirection())
    small.SetSpacing((1.0, 1.0))
    grey = as_volume(small).scalar()
    rp = grid_points(grey)
    true = sim2(center(grey), 20, 1.0, (8, -10))
    cases.append(Case("rgb-vs-grey", "colour fundus photograph vs grey copy turned 20°", small, moved(grey, true),
                      true, rp, 1.0))
    sl = sitk.GetArrayFromImage(t1_full)[:, 116, :]  # a coronal slice, 0..1 floats
    mr = sitk.GetImageFromArray((sl / sl.max()).astype(np.float32))
    mp = grid_points(mr, margin=0.25)
    true = sim2(center(mr), 12, 1.08, (4, -3))
    cases.append(Case("mr-slice-float", "small 2D MR slice, 0..1 floats, similarity", mr, moved(mr, true), true, mp, 1.0))
    true = sim2(center(mr), -20, 1.0, (3, 3))
    cases.append(Case("mr-slice-inverted", "2D MR slice vs inverted contrast", mr, moved(1.0 - mr, true, 1.0),
                      true, mp, 1.0))
    fixed_demo = as_volume(str(DEMO / "retina_fixed.png")).sitk
    true = sitk.ReadTransform(str(DEMO / "retina_true_affine.tfm"))
    cases.append(Case("retina-demo", "the retina demo pair (resources/demo)", fixed_demo,
                      as_volume(str(DEMO / "retina_moving.png")).sitk, true, grid_points(as_volume(fixed_demo).scalar()), 1.0))
    cases += deformable_cases(retina_rgb, cam)
    return cases


def deformable_cases(retina_rgb: sitk.Image, cam: sitk.Image) -> list[Case]:
    """Photographs with a known smooth dense warp after an affine: fixed(x) = moving(true(x))."""
    out = []
    lum = as_volume(retina_rgb).scalar()
    sc = 1411 / 741 * 0.9
    retina = sitk.Resample(lum, [741, 500], sitk.Transform(), sitk.sitkLinear, (70.0, 277.0), (sc, sc))
    retina.SetOrigin((0.0, 0.0))
    retina.SetSpacing((1.0, 1.0))
    for name, what, moving, seed, amp in (("deformable-retina", "fundus photograph 741x500, affine + dense warp", retina, 1, 6.0),
                                          ("deformable-camera", "photograph 512x512, affine + dense warp", cam, 2, 5.0)):
        h, w = moving.GetSize()[1], moving.GetSize()[0]
        field = sitk.GetImageFromArray(smooth_warp((h, w), amp, seed), isVector=True)
        field.CopyInformation(moving)
        warp = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
        aff = sitk.AffineTransform(2)
        aff.SetCenter(center(moving))
        aff.SetMatrix((1.05, 0.04, -0.03, 0.98))
        aff.SetTranslation((6.0, -4.0))
        true = compose(aff, warp)
        fixed = sitk.Resample(moving, moving, true, sitk.sitkLinear, 0.0) * 0.9 + 10.0
        fixed = sitk.AdditiveGaussianNoise(fixed, 2.0, 0.0, seed)
        y, x = np.mgrid[0:h:6, 0:w:6]
        pts = np.stack([x.ravel(), y.ravel()], 1).astype(float)
        tp = np.array([true.TransformPoint(tuple(p)) for p in pts])
        inside = (tp[:, 0] > 5) & (tp[:, 0] < w - 6) & (tp[:, 1] > 5) & (tp[:, 1] < h - 6)
        out.append(Case(name, what, fixed, moving, true, pts[inside], 1.0, deformable=True))
    return out


# --- methods ----------------------------------------------------------------------------------------
def sitk_script(fixed: sitk.Image, moving: sitk.Image) -> sitk.Transform:
    """The usual SimpleITK notebook recipe: moments, affine, Mattes MI, 10 % random, RSGD, 4/2/1."""
    f, m = as_volume(fixed).scalar(), as_volume(moving).scalar()
    dim = f.GetDimension()
    init = sitk.CenteredTransformInitializer(f, m, sitk.AffineTransform(dim),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(50)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(0.1, 1)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel([4, 2, 1])
    r.SetSmoothingSigmasPerLevel([2, 1, 0])
    r.SetInitialTransform(init, inPlace=True)
    r.Execute(f, m)
    return init


def methods_for(case: Case, quick: bool, only: set[str] | None = None) -> list[tuple[str, Callable[[], object]]]:
    """(name, run): a run returns a transform, or regviewer's result (whose warnings are read)."""
    def preset(name):
        def run():
            search._CACHE.clear()  # every run pays for its own inspection
            return regviewer.register(case.fixed, case.moving, preset=name)  # a result: its warnings count too
        return run

    names = ["auto"] + (["auto-deformable"] if case.deformable else [])
    if not quick:
        names += ["rigid", "rigid-mi", "affine-mi"] + (["photo-2d"] if case.fixed.GetDimension() == 2 else [])
        names += ["affine-bspline-mi", "demons"] if case.deformable else []
    out = [(n, preset(n)) for n in names]
    out.append(("sitk-script", lambda: sitk_script(case.fixed, case.moving)))
    return [(n, fn) for n, fn in out if only is None or n in only]


def errors(case: Case, tx: sitk.Transform) -> np.ndarray:
    est = np.array([tx.TransformPoint(tuple(map(float, p))) for p in case.points])
    ref = np.array([case.true.TransformPoint(tuple(map(float, p))) for p in case.points])
    return np.linalg.norm(est - ref, axis=1) / case.voxel


def run(cases: list[Case], quick: bool, only: set[str] | None = None) -> None:
    tools = [t for t in ("elastix", "antsRegistration") if shutil.which(t)]
    print(f"elastix / ANTs installed: {', '.join(tools) or 'no (not run)'}")
    columns: list[str] = []
    rows = []
    for case in cases:
        cells = {}
        for name, fn in methods_for(case, quick, only):
            t = time.perf_counter()
            try:
                out = fn()
                tx = getattr(out, "transform", out)
                flagged = any(WRONG_FLAG in w for w in getattr(out, "warnings", ()))
                e = errors(case, tx)
                ok = (e.mean() <= 3 and np.median(e) <= 1) if case.deformable else e.mean() <= 1
                cells[name] = (float(e.mean()), float(np.median(e)), time.perf_counter() - t, ok, flagged)
            except Exception as exc:  # a failure is a result here
                cells[name] = (math.inf, math.inf, time.perf_counter() - t, False, True)
                print(f"  {case.name} {name}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
            if name not in columns:
                columns.append(name)
        rows.append((case, cells))
        line = "  ".join(f"{n}={c[0]:.2f}v/{c[2]:.1f}s{'' if c[3] else ' FAIL'}{' flagged' if c[4] else ''}"
                         for n, c in cells.items())
        print(f"{case.name}: {line}", file=sys.stderr, flush=True)
    print()
    print("| case | " + " | ".join(columns) + " | auto / best named (time) |")
    print("|---" * (len(columns) + 2) + "|")
    n_ok = 0
    for case, cells in rows:
        out = []
        for name in columns:
            if name not in cells:
                out.append("")
                continue
            mean, median, seconds, ok, flagged = cells[name]
            err = f"{mean:.2f}/{median:.2f}" if case.deformable else f"{mean:.2f}"
            out.append(f"{'✓' if ok else '✗'} {err} · {seconds:.1f}s{' ⚑' if flagged else ''}")
        auto = cells.get("auto-deformable" if case.deformable else "auto")
        n_ok += bool(auto and auto[3])
        named = [c[2] for n, c in cells.items() if not n.startswith("auto") and n != "sitk-script" and c[3]]
        ratio = f"{auto[2] / min(named):.2f}" if named and auto else "no named preset succeeds"
        print(f"| {case.name} | " + " | ".join(out) + f" | {ratio} |")
    print(f"\nauto (auto-deformable on deformable cases) succeeds on {n_ok} of {len(rows)} cases. Errors in voxels "
          "of the fixed image (deformable: mean/median end-point error, px); ✓ = mean <= 1 voxel "
          "(deformable: mean <= 3 and median <= 1 px); ⚑ = the run said its result is probably wrong "
          "(or it raised).")
    for name in columns:
        if name == "sitk-script":
            continue
        cells = [c[name] for _, c in rows if name in c]
        wrong = [c for c in cells if not c[3]]
        print(f"{name}: {len(wrong)} of {len(cells)} wrong, {sum(c[4] for c in wrong)} of them flagged; "
              f"{sum(c[4] for c in cells if c[3])} right ones flagged")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="auto, auto-deformable and the SimpleITK script only")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--methods", default="", help="comma-separated methods (default: all that apply), e.g. "
                    "auto,auto-deformable,rigid,affine-mi,photo-2d,sitk-script")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the shared data folder beside the project: {DATA}")
    cases = build_cases()
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c.name in wanted]
    for c in cases:
        print(f"{c.name:<20} {c.what}")
    run(cases, args.quick, set(args.methods.split(",")) if args.methods else None)


if __name__ == "__main__":
    main()
