#!/usr/bin/env python3
"""Benchmark serial-section alignment (`regviewer.align_stack`) against a known truth.

A stack is cut from the 1 mm MNI T1 volume: coronal (or `--cut axial|sagittal`) sections
`--gap` mm apart, each put
under its own known rigid transform (rotation up to +-`--max-angle` degrees, shift up to
+-`--max-shift` px), its own brightness and contrast, and noise, then saved as 8-bit PNG
files without geometry (pixel units), exactly what a slide scanner hands over.

Prints one table:
- with a reference (the unmoved planes cut from the volume): per-section error (mean over
  brain points of |estimated(x) - true(x)|, px);
- without a reference (once per `--trend` mode of `remove_trend`): the error of each
  consecutive pair's relative transform; the drift curve (error versus sections from the
  anchor) with its growth exponent p from error(d) ~ a d^p (0.5 = square-root growth,
  1 = steady drift); and the first-to-last drift against sqrt(N-1) x the mean
  consecutive error. A section's misplacement is measured over its brain in the block's
  own (plane) coordinates, after the one global transform a reconstruction without a
  reference is free in (the anchor's pose) and nothing else. A diagnosis row repeats
  the measures with the best quadratic bend of angle and shift along the stack (fitted
  to the truth) taken out: how much of the drift is that smooth bend, which no method
  without a reference can see unless it assumes the mounting poses have no trend;
- seconds per section and peak RSS.
`--slide` adds a synthetic 20 000 x 20 000 pyramidal slide pair aligned and written at full
resolution, with the peak RSS of that run (a child process, so the figure is its own).

    python scripts/bench_stack.py [--n 24] [--gap 6] [--cut coronal] [--trend stretch off]
                                  [--neighbours 2] [--no-reference] [--slide] [--slide-size 20000]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("REGVIEWER_SHARED_DATA", ROOT.parent / "shared" / "data"))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def coronal_planes(n: int, gap: int) -> tuple[list[sitk.Image], list[np.ndarray]]:
    """n coronal planes (x by z, 1 mm px, pixel frame) around the middle, and brain masks."""
    return cut_planes("coronal", n, gap)


def cut_planes(cut: str, n: int, gap: int) -> tuple[list[sitk.Image], list[np.ndarray]]:
    """n planes `gap` mm apart around the middle of the MNI volume, cut 'coronal' (x by z),
    'axial' (x by y) or 'sagittal' (y by z), 1 mm px, pixel frame; and their brain masks."""
    from regviewer.core.imaging.io import read_image

    def load(name: str) -> np.ndarray:  # z, y, x
        return sitk.GetArrayFromImage(read_image(DATA / f"mni152_2009a_{name}_1mm.nii.gz").sitk).astype(np.float32)

    t1, gm, wm = load("t1"), load("gm"), load("wm")
    axis = {"coronal": 1, "axial": 0, "sagittal": 2}[cut]
    cuts = {"coronal": lambda a, i: a[::-1, i, :], "axial": lambda a, i: a[i, ::-1, :],
            "sagittal": lambda a, i: a[::-1, :, i]}[cut]
    mid = t1.shape[axis] // 2
    idx = [mid + (k - n // 2) * gap for k in range(n)]
    if idx[0] < 10 or idx[-1] >= t1.shape[axis] - 10:
        raise SystemExit(f"{n} sections {gap} mm apart do not fit in the volume's {t1.shape[axis]} {cut} planes")
    planes, masks = [], []
    for i in idx:
        planes.append(sitk.GetImageFromArray(np.ascontiguousarray(cuts(t1, i))))  # rows = superior/anterior first
        masks.append((cuts(gm, i) + cuts(wm, i)) > 80)
    return planes, masks


def make_stack(planes: list[sitk.Image], folder: Path, max_angle: float, max_shift: float, seed: int):
    """Save each plane under its own rigid transform (true: plane frame -> section frame),
    brightness, contrast and noise, as 8-bit PNG. Returns the true transforms."""
    rng = np.random.default_rng(seed)
    truths = []
    folder.mkdir(parents=True, exist_ok=True)
    for k, plane in enumerate(planes):
        w, h = plane.GetSize()
        centre = ((w - 1) / 2.0, (h - 1) / 2.0)
        true = sitk.Euler2DTransform(centre, math.radians(rng.uniform(-max_angle, max_angle)),
                                     tuple(rng.uniform(-max_shift, max_shift, 2)))
        pad = 30  # the section image is larger than the plane: the shifted tissue must fit
        grid = sitk.Image(w + 2 * pad, h + 2 * pad, sitk.sitkFloat32)
        grid.SetOrigin((-pad, -pad))
        # section(y) = plane(true^-1(y)); the grid is shifted by -pad, which the true transform must include
        section = sitk.Resample(plane, grid, true.GetInverse(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        arr = sitk.GetArrayFromImage(section)
        gain, bias = rng.uniform(0.6, 1.3), rng.uniform(-10, 30)
        arr = np.clip(arr * gain + bias + rng.normal(0, 4.0, arr.shape), 0, 255).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(folder / f"s{k}.png"))
        # The PNG has origin 0, so section-frame point y_png = y + pad.
        shifted = sitk.CompositeTransform([sitk.TranslationTransform(2, (pad, pad)), true])
        truths.append(shifted)
    return truths


def points_of(mask: np.ndarray, step: int = 4) -> np.ndarray:
    ys, xs = np.nonzero(mask[::step, ::step])
    return np.stack([xs * step, ys * step], axis=1).astype(float)


def apply(tx: sitk.Transform, pts: np.ndarray) -> np.ndarray:
    return np.array([tx.TransformPoint(p.tolist()) for p in pts])


def stack_table(args) -> list[tuple]:
    import regviewer

    planes, masks = cut_planes(args.cut, args.n, args.gap)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sections"
        truths = make_stack(planes, folder, args.max_angle, args.max_shift, args.seed)
        if not args.no_reference:
            rows += reference_rows(folder, planes, masks, truths, args.gap, args.n)
        # without a reference, once per trend mode
        for mode in args.trend:
            t0 = time.perf_counter()
            res = regviewer.align_stack(folder, remove_trend=mode, neighbours=args.neighbours)
            t_free = (time.perf_counter() - t0) / args.n
            rows += drift_rows(res, truths, masks, args.n, f"without ({mode})", t_free)
    rows.append(("peak RSS, stack runs (MB)", f"{rss_mb():.0f}"))
    return rows


def reference_rows(folder: Path, planes: list, masks: list, truths: list, gap: int, n: int) -> list[tuple]:
    """Per-section error with a reference (the unmoved planes as a 3D volume)."""
    import regviewer

    ref = sitk.JoinSeries(planes)
    ref.SetSpacing((1.0, 1.0, float(gap)))
    t0 = time.perf_counter()
    res = regviewer.align_stack(folder, reference=ref)
    t_ref = (time.perf_counter() - t0) / n
    errs = []
    for k, s in enumerate(res.sections):
        pts = points_of(masks[k])
        errs.append(float(np.mean(np.linalg.norm(apply(s.transform, pts) - apply(truths[k], pts), axis=1))))
    return [("with reference: per-section error, mean of means (px)", f"{np.mean(errs):.2f}"),
            ("with reference: worst section mean error (px)", f"{np.max(errs):.2f}"),
            ("with reference: sections within 1 px mean", f"{sum(e <= 1.0 for e in errs)}/{len(errs)}"),
            ("with reference: flagged", str(sum(s.status != 'ok' for s in res.sections))),
            ("with reference: s per section", f"{t_ref:.2f}")]


def drift_rows(res, truths: list, masks: list, n: int, label: str, seconds: float) -> list[tuple]:
    """Consecutive-pair error and the drift curve (error vs sections from the anchor) of a
    result without a reference, and how the curve grows: error(d) ~ a d^p fitted over
    d >= 1 (p = 0.5 is the square-root growth of a random walk, 1 a steady drift).

    Also the same measures once the best quadratic trend (in sections from the anchor) of
    each section's angle and shift error is taken out, fitted to the TRUTH: no method
    without a reference can see that smooth bend unless it knows the mounting poses have
    none, so the row says how much of the drift is the bend and how much is a random walk
    of pair errors. It is a diagnosis, not the goal: the goal is on the first rows."""
    a = res.anchor
    found = [s.transform for s in res.sections]
    m = drift_measures(found, truths, masks, n, a)
    rows = [
        (f"{label}: consecutive-pair error, mean (px)", f"{m['consec_mean']:.2f}"),
        (f"{label}: consecutive-pair error, worst pair (px)", f"{m['consec_worst']:.2f}"),
        (f"{label}: consecutive pairs within 1.5 px", f"{m['within']}/{n - 1}"),
        (f"{label}: error vs sections from anchor (d:px)", m["curve"]),
        (f"{label}: growth error(d) ~ a d^p: a, p", f"{m['a']:.2f}, {m['p']:.2f} "
                                                   f"({'within' if m['p'] <= 0.55 else 'faster than'} sqrt)"),
        (f"{label}: first-to-last drift vs sqrt(N-1) x mean consecutive (px)",
         f"{m['drift']:.2f} vs {m['bound']:.2f} ({'within' if m['drift'] <= m['bound'] else 'over'})"),
    ]
    if all(t is not None for t in found):
        bent = drift_measures(without_bend(found, truths, masks, a), truths, masks, n, a)
        rows.append((f"{label}: without the smooth bend (truth-fitted; diagnosis): consecutive mean, p, "
                     "first-to-last vs bound", f"{bent['consec_mean']:.2f}, {bent['p']:.2f}, "
                                                f"{bent['drift']:.2f} vs {bent['bound']:.2f}"))
    rows += [(f"{label}: flagged", str(sum(s.status != 'ok' for s in res.sections))),
             (f"{label}: s per section", f"{seconds:.2f}")]
    return rows


def drift_measures(found: list, truths: list, masks: list, n: int, a: int) -> dict:
    """The measures of `drift_rows` for output -> section transforms `found` (anchor `a`).

    Section k's misplacement at an output point x is T_k^-1(A_k(x)) - T_a^-1(x): where its
    aligned pixel really comes from in the block minus where it should (plane px). The
    anchor fixes the one global transform a reconstruction without a reference is free in,
    so nothing else is removed."""
    anchor_inv = truths[a].GetInverse()

    def misplacement(k: int, out_pts: np.ndarray) -> np.ndarray:
        return apply(truths[k].GetInverse(), apply(found[k], out_pts)) - apply(anchor_inv, out_pts)

    consec = []
    for k in range(n - 1):
        out_pts = apply(truths[a], points_of(masks[k]))  # output-frame points over section k's brain
        consec.append(float(np.mean(np.linalg.norm(misplacement(k + 1, out_pts) - misplacement(k, out_pts), axis=1))))
    by_distance: dict[int, list[float]] = {}
    for k in range(n):
        out_pts = apply(truths[a], points_of(masks[k]))
        by_distance.setdefault(abs(k - a), []).append(float(np.mean(np.linalg.norm(misplacement(k, out_pts),
                                                                                  axis=1))))
    pts0 = apply(truths[a], points_of(masks[0]))
    drift = float(np.mean(np.linalg.norm(misplacement(n - 1, pts0) - misplacement(0, pts0), axis=1)))
    ds = np.array([d for d in sorted(by_distance) if d > 0], float)
    curve = np.array([np.mean(by_distance[int(d)]) for d in ds])
    p, log_a = np.polyfit(np.log(ds), np.log(np.maximum(curve, 1e-6)), 1)
    return dict(consec_mean=float(np.mean(consec)), consec_worst=float(np.max(consec)),
                within=sum(c <= 1.5 for c in consec), drift=drift, bound=math.sqrt(n - 1) * float(np.mean(consec)),
                p=float(p), a=math.exp(log_a),
                curve=", ".join(f"{d}:{np.mean(v):.1f}" for d, v in sorted(by_distance.items())))


def affine_of(tx: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(M, t) of a 2D transform that is affine, probed at three points."""
    p0, px, py = (np.array(tx.TransformPoint(p)) for p in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
    return np.stack([px - p0, py - p0], axis=1), p0


def without_bend(found: list, truths: list, masks: list, a: int) -> list:
    """`found` with the best quadratic (in k - a, zero at the anchor) of each section's
    angle and shift error removed, fitted to the truth; the error is E_k = truth_k^-1 o A_k
    (output -> output), parametrised as in `trend.pose` about the anchor's brain centre."""
    from regviewer.core.stack.result import affine_from
    from regviewer.core.stack.trend import pose

    c = apply(truths[a], points_of(masks[a])).mean(axis=0)
    ta = affine_of(truths[a])
    errors, mats = [], []
    for k, tx in enumerate(found):
        tm, tt = affine_of(truths[k])
        true_m = tm @ np.linalg.inv(ta[0])  # truth_k o truth_a^-1: output -> section k
        true_t = tt - true_m @ ta[1]
        m, t = affine_of(tx)
        ti = np.linalg.inv(true_m)
        errors.append(pose(ti @ m, ti @ (t - true_t), c)[[0, 4, 5]])
        mats.append((m, t))
    ks = np.arange(len(found), dtype=float) - a
    x = np.stack([ks, ks * ks], axis=1)
    coefs = np.linalg.lstsq(x, np.array(errors), rcond=None)[0]  # (2, 3): angle, u_x, u_y
    out = []
    for k, (m, t) in enumerate(mats):
        eps, ex, ey = x[k] @ coefs
        back = np.array([[np.cos(eps), np.sin(eps)], [-np.sin(eps), np.cos(eps)]])  # A o E^-1, as trend.py
        out.append(affine_from(m @ back, m @ (c - back @ (c + np.array([ex, ey]))) + t))
    return out


def make_slide(path: Path, size: int, angle: float, shift: tuple[float, float], seed: int) -> None:
    """A size x size tiled pyramidal TIFF of smooth random 'tissue' under a rigid transform,
    written tile by tile (the generator never holds the full image): a 1000 px random
    texture, smoothed, is sampled through the transform with bilinear interpolation."""
    import tifffile
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (1000, 1000)), 12)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (1000, 1000)), 3) * 0.3 + base / base.std()
    yy, xx = np.mgrid[0:1000, 0:1000]
    body = np.exp(-(((xx - 500) / 380.0) ** 6 + ((yy - 500) / 300.0) ** 6))  # a tissue outline on glass
    tissue = np.clip(40 + body * (120 + 40 * base), 0, 255).astype(np.float32)
    f = size / 1000.0
    centre = size / 2.0
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))

    def value(xs, ys):
        # section(y) = tissue(true^-1(y)); true = rotation about the centre, then the shift
        x0, y0 = xs - centre - shift[0], ys - centre - shift[1]
        u, v = c * x0 + s * y0 + centre, -s * x0 + c * y0 + centre
        out = ndimage.map_coordinates(tissue, [v / f - 0.5, u / f - 0.5], order=1, mode="constant", cval=40.0)
        return out.astype(np.uint8)

    def tiles(level_size: int, factor: int):
        t = 512
        for ty in range(0, level_size, t):
            for tx in range(0, level_size, t):
                ys, xs = (np.mgrid[ty:ty + t, tx:tx + t].astype(np.float32) + 0.5) * factor
                yield value(xs, ys)

    levels = []
    n = size
    while n > 1024:
        n //= 4
        levels.append(n)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(tiles(size, 1), shape=(size, size), dtype=np.uint8, tile=(512, 512), subifds=len(levels),
                  compression="zlib")
        for n in levels:
            tif.write(tiles(n, size // n), shape=(n, n), dtype=np.uint8, tile=(512, 512), subfiletype=1,
                      compression="zlib")


def slide_child(folder: str) -> None:
    """Runs in its own process: align the two slides and write the full-resolution OME-TIFF."""
    import regviewer

    t0 = time.perf_counter()
    res = regviewer.align_stack(folder, anchor=0, neighbours=1)
    t_align = time.perf_counter() - t0
    t0 = time.perf_counter()
    res.write(Path(folder) / "out")
    t_write = time.perf_counter() - t0
    tx = res.sections[1].transform
    w = res.slides[0].size[0]
    points = [(f * w, g * w) for f in (0.2, 0.5, 0.8) for g in (0.2, 0.5, 0.8)]
    mapped = [tx.TransformPoint(p) for p in points]
    print(f"{t_align:.1f} {t_write:.1f} {rss_mb():.0f} {res.sections[1].status} "
          + " ".join(f"{p[0]:.3f},{p[1]:.3f},{m[0]:.3f},{m[1]:.3f}" for p, m in zip(points, mapped)))


def slide_table(args) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        make_slide(folder / "slide1.tif", args.slide_size, 0.0, (0.0, 0.0), 1)
        make_slide(folder / "slide2.tif", args.slide_size, 4.0, (60.0, -40.0), 1)
        t_make = time.perf_counter() - t0
        out = subprocess.run([sys.executable, __file__, "--slide-child", str(folder)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr)
        t_align, t_write, rss, status, *pairs = out.stdout.split()[-13:]
        size = (folder / "out" / "stack.ome.tif").stat().st_size / 1e6
        centre = args.slide_size / 2.0
        a = math.radians(4.0)
        errors = []
        for item in pairs:
            px, py, mx, my = map(float, item.split(","))
            # true: output (slide 1) point p -> slide 2 point R(p - c) + c + shift
            p = np.array([px, py]) - centre
            true = np.array([math.cos(a) * p[0] - math.sin(a) * p[1], math.sin(a) * p[0] + math.cos(a) * p[1]]) \
                + centre + np.array([60.0, -40.0])
            errors.append(float(np.hypot(mx - true[0], my - true[1])))
        n = args.slide_size
        rows += [(f"slide {n}x{n} px, 2 sections: make (s)", f"{t_make:.1f}"),
                 ("slide: align on a pyramid level (s)", t_align),
                 ("slide: write full-res OME-TIFF tile by tile (s)", f"{t_write} ({size:.0f} MB file)"),
                 ("slide: error at 9 points over the slide, mean / max, full-res px",
                  f"{np.mean(errors):.2f} / {np.max(errors):.2f} ({status})"),
                 ("slide: peak RSS of the align+write process (MB)", rss),
                 ("slide: one full-res 8-bit plane would be (MB)", f"{n * n / 1e6:.0f}")]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--gap", type=int, default=6, help="mm between sections")
    ap.add_argument("--cut", choices=("coronal", "axial", "sagittal"), default="coronal")
    ap.add_argument("--trend", nargs="*", default=["stretch", "off"], choices=("stretch", "pose", "off"),
                    help="remove_trend modes to run without a reference (default: stretch off; none: skip)")
    ap.add_argument("--no-reference", action="store_true", help="skip the run with a reference")
    ap.add_argument("--neighbours", type=int, default=2,
                    help="pairs k, k+1 ... k+N in the joint fit without a reference (align_stack's default 2)")
    ap.add_argument("--max-angle", type=float, default=15.0)
    ap.add_argument("--max-shift", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slide", action="store_true", help="also the 20k x 20k slide case")
    ap.add_argument("--slide-only", action="store_true")
    ap.add_argument("--slide-size", type=int, default=20000)
    ap.add_argument("--slide-child", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.slide_child:
        slide_child(args.slide_child)
        return
    rows = [] if args.slide_only else stack_table(args)
    if args.slide or args.slide_only:
        rows += slide_table(args)
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
