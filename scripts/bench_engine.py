#!/usr/bin/env python
"""Benchmark the registration engine's presets on images with a known answer.

    .venv/bin/python scripts/bench_engine.py            # all cases, prints a markdown table
    .venv/bin/python scripts/bench_engine.py --cases affine-known,affine-bspline

Data: the 2 mm MNI T1 (fixed) and a T2-like image of the same anatomy (moving), warped by a
known fixed -> moving transform (regviewer.core.synthetic.brain_pair: affine 10 deg / ~11 mm /
5 % scale, plus a smooth warp of up to 3 mm for the deformable cases). Same-modality presets
(rigid, demons) get the T1 warped by the same transform. TRE = |estimated(p) - true(p)| at
2000 points inside the brain (GM+WM > 0.3).

Each case runs in its own process so the peak RSS is the case's own (measured after the
first regviewer run). "plain" is a plain SimpleITK script with the same settings and no
progress callback or history; the two alternate BENCH_REPEAT (3) times and the best time
of each is shown; "overhead" is regviewer time / plain time. itk-elastix and antspyx are run on the same data when
installed, and skipped otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from regviewer.core import synthetic as syn  # noqa: E402
from regviewer.core.engine import register  # noqa: E402
from regviewer.core.engine_stages import _mesh_for_spacing, itk_seed, refine_bspline  # noqa: E402
from regviewer.core.params import LINEAR_TRANSFORMS, Pipeline, Stage, replace  # noqa: E402
from regviewer.core.presets import load_preset  # noqa: E402
from regviewer.core.resample import interpolator_id  # noqa: E402
from regviewer.core.transforms import make_linear, transform_points  # noqa: E402

REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CASES = {
    # name: (preset, pair kind, description)
    "affine-known": ("affine-mi", "affine", "known affine (T1 -> T2-like)"),
    "rigid-known": ("rigid", "rigid-same", "known rigid, same modality"),
    "rigid-mi-known": ("rigid-mi", "rigid", "known rigid (T1 -> T2-like)"),
    "affine-warp": ("affine-mi", "warp", "affine + smooth warp, affine only"),
    "affine-bspline": ("affine-bspline-mi", "warp", "affine + smooth warp"),
    "demons": ("demons", "warp-same", "affine + smooth warp, same modality"),
    "symmetric-affine": ("affine-mi", "affine", "inverse consistency, affine-mi"),
    "photo-2d": ("photo-2d", "retina", "retina photo (RGB), affine + warp"),
}


# --- data ---------------------------------------------------------------------------
def make_pair(kind: str):
    if kind == "retina":
        demo = ROOT / "resources" / "demo"
        fixed = sitk.ReadImage(str(demo / "retina_fixed.png"))
        moving = sitk.ReadImage(str(demo / "retina_moving.png"))
        true = sitk.ReadTransform(str(demo / "retina_true_fixed_to_moving.h5"))
        lum = sitk.VectorIndexSelectionCast(fixed, 1)
        mask = sitk.Cast(lum > 20, sitk.sitkUInt8)
        return fixed, moving, true, syn.brain_points(sitk.BinaryErode(mask, [10, 10]), 2000)
    pair = syn.brain_pair(DATA, shrink=2, with_warp=kind.startswith("warp"))
    points = syn.brain_points(pair.mask, 2000)
    if kind.startswith("rigid"):
        centre = pair.fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in pair.fixed.GetSize()])
        true = syn.affine_transform(centre, rotation_deg=(4.0, -3.0, 9.0), translation_mm=(8.0, -6.0, 5.0))
        source = pair.fixed if kind == "rigid-same" else sitk.Resample(pair.moving, pair.fixed, pair.true)
        return pair.fixed, syn.warp_image(source, true), true, points
    if kind == "warp-same":
        return pair.fixed, syn.warp_image(pair.fixed, pair.true), pair.true, points
    return pair.fixed, pair.moving, pair.true, points


def tre(estimated, true, points) -> np.ndarray:
    return np.linalg.norm(transform_points(estimated, points) - transform_points(true, points), axis=1)


# --- a plain SimpleITK script with the same settings ----------------------------------
def plain_simpleitk(pipeline: Pipeline, fixed: sitk.Image, moving: sitk.Image, seed: int = 0) -> sitk.Transform:
    """What a user would write by hand: ITK's own pyramid, no callbacks."""
    from regviewer.core.engine_stages import _set_metric, _set_optimizer, _set_sampling, _TransformBuilder

    f = sitk.Cast(fixed, sitk.sitkFloat32) if fixed.GetNumberOfComponentsPerPixel() == 1 else _lum(fixed)
    m = sitk.Cast(moving, sitk.sitkFloat32) if moving.GetNumberOfComponentsPerPixel() == 1 else _lum(moving)
    composite = sitk.CompositeTransform(f.GetDimension())
    for i, stage in enumerate(pipeline.stages):
        initial = None
        if i == 0 and stage.initializer in ("moments", "geometry"):
            mode = sitk.CenteredTransformInitializerFilter.MOMENTS if stage.initializer == "moments" else \
                sitk.CenteredTransformInitializerFilter.GEOMETRY
            initial = sitk.CenteredTransformInitializer(f, m, make_linear(stage.transform.kind, f.GetDimension()),
                                                       mode).Downcast()
        previous = sitk.CompositeTransform(composite) if composite.GetNumberOfTransforms() else None
        if stage.transform.kind == "demons":
            composite.AddTransform(_plain_demons(stage, f, m, previous))
            continue
        levels = list(zip(stage.pyramid.shrink_factors, stage.pyramid.smoothing_sigmas))
        # One Execute per level, like the engine (ITK cannot refine a B-spline grid for L-BFGS-B
        # itself); PLAIN_ITK_PYRAMID=1 uses ITK's own multi-level loop for linear stages instead.
        per_level = not os.environ.get("PLAIN_ITK_PYRAMID") or stage.transform.kind == "bspline"
        runs = [[lv] for lv in levels] if per_level else [levels]
        tx = initial
        if stage.transform.kind == "bspline":
            mesh = _mesh_for_spacing(f, stage.transform.grid_spacing_mm)
            n = len(levels)
            tx = sitk.BSplineTransformInitializer(f, [max(1, round(x / 2 ** (n - 1))) for x in mesh], 3)
        for k, lv in enumerate(runs):
            one = replace(stage, pyramid=replace(stage.pyramid, shrink_factors=tuple(s for s, _ in lv),
                                                 smoothing_sigmas=tuple(g for _, g in lv)))
            method = sitk.ImageRegistrationMethod()
            if pipeline.reproducible:
                method.SetNumberOfWorkUnits(1)
            _set_metric(method, one)
            _set_sampling(method, one, f, seed)
            method.SetInterpolator(interpolator_id(one.interpolator))
            method.SetShrinkFactorsPerLevel([s for s, _ in lv])
            method.SetSmoothingSigmasPerLevel([g for _, g in lv])
            method.SetSmoothingSigmasAreSpecifiedInPhysicalUnits(stage.pyramid.sigmas_in_mm)
            if previous is not None:
                method.SetMovingInitialTransform(previous)
            builder = _TransformBuilder(one, f, tx)
            method.SetInitialTransform(builder.transform, inPlace=True)
            _set_optimizer(method, one, builder)
            method.Execute(f, m)
            tx = builder.transform
            if stage.transform.kind == "bspline" and k < len(runs) - 1:
                tx = refine_bspline(tx, f)
        composite.AddTransform(tx)
    return composite


def _lum(image):
    from regviewer.core.image import to_scalar_float32

    return to_scalar_float32(image)


def _plain_demons(stage: Stage, f, m, previous):
    from regviewer.core.demons import _level_image, _make_filter

    ident = sitk.Transform(f.GetDimension(), sitk.sitkIdentity)
    warped = sitk.Resample(m, f, previous or ident, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    warped = sitk.HistogramMatching(warped, f, 256, 15, True)
    field = None
    for s, g in zip(stage.pyramid.shrink_factors, stage.pyramid.smoothing_sigmas):
        fl, ml = _level_image(f, s, g, False), _level_image(warped, s, g, False)
        field = sitk.Image(fl.GetSize(), sitk.sitkVectorFloat64, f.GetDimension()) if field is None else \
            sitk.Resample(field, fl, ident, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
        if field.GetSize() == fl.GetSize():
            field.CopyInformation(fl)
        d = _make_filter(stage.transform.demons_variant)
        sp = float(np.mean(fl.GetSpacing()))
        d.SetNumberOfIterations(stage.optimizer.iterations)
        d.SetSmoothDisplacementField(stage.transform.field_smoothing_mm > 0)
        if stage.transform.field_smoothing_mm > 0:
            d.SetStandardDeviations(stage.transform.field_smoothing_mm / sp)
        d.SetSmoothUpdateField(stage.transform.update_smoothing_mm > 0)
        if stage.transform.update_smoothing_mm > 0:
            d.SetUpdateFieldStandardDeviations(stage.transform.update_smoothing_mm / sp)
        field = d.Execute(fl, ml, field)
    field = sitk.Resample(field, f, ident, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(field)


# --- one case (in its own process) ---------------------------------------------------
def run_case(name: str) -> dict:
    preset, kind, what = CASES[name]
    fixed, moving, true, points = make_pair(kind)
    pipeline = load_preset(preset)
    out: dict = {"case": name, "what": what, "preset": preset}
    if name == "symmetric-affine":
        for sym in (False, True):
            p = replace(pipeline, symmetric=sym)
            ab = register(fixed, moving, params=p).transform
            ba = register(moving, fixed, params=p).transform
            x = transform_points(true, points)
            ice = np.linalg.norm(transform_points(ab, transform_points(ba, x)) - x, axis=1)
            out["ice_symmetric" if sym else "ice_plain"] = [float(ice.mean()), float(ice.max())]
        out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return out
    n_events = [0]

    def progress(_p):
        n_events[0] += 1

    times, plain_times = [], []
    for _ in range(REPEAT):  # interleaved, best of REPEAT: the machine is shared
        t0 = time.perf_counter()
        result = register(fixed, moving, params=pipeline, progress=progress)
        times.append(time.perf_counter() - t0)
        if not out.get("rss_mb"):
            out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        plain = plain_simpleitk(pipeline, fixed, moving)
        plain_times.append(time.perf_counter() - t0)
    out["time_s"], out["plain_s"] = min(times), min(plain_times)
    err = tre(result.transform, true, points)
    out["tre"] = [float(err.mean()), float(np.percentile(err, 95)), float(err.max())]
    out["events"] = n_events[0] // REPEAT
    perr = tre(plain, true, points)
    out["plain_tre"] = [float(perr.mean()), float(perr.max())]
    out["elastix"] = _elastix(fixed, moving, true, points, deformable="bspline" in preset)
    out["ants"] = _ants(fixed, moving, true, points, deformable="bspline" in preset)
    return out


def _elastix(fixed, moving, true, points, deformable):
    try:
        import itk  # noqa: F401
        if not hasattr(itk, "elastix_registration_method"):
            return None
    except ImportError:
        return None
    return "installed but not wired in this script"  # not installed on the reference machine


def _ants(fixed, moving, true, points, deformable):
    try:
        import ants  # noqa: F401
    except ImportError:
        return None
    return "installed but not wired in this script"


# --- driver -----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one)))
        return
    rows = []
    for name in args.cases.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done: {name}", file=sys.stderr, flush=True)
    print("| case | preset | time | peak RSS | TRE mean / p95 / max | plain SimpleITK | overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "ice_plain" in r:
            print(f"| {r['what']} | {r['preset']} | — | {r['rss_mb']:.0f} MB | inverse-consistency error "
                  f"plain {r['ice_plain'][0]:.3f} / max {r['ice_plain'][1]:.3f} mm, symmetric "
                  f"{r['ice_symmetric'][0]:.1e} / max {r['ice_symmetric'][1]:.1e} mm | — | — |")
            continue
        t = r["tre"]
        print(f"| {r['what']} | {r['preset']} | {r['time_s']:.1f} s | {r['rss_mb']:.0f} MB | "
              f"{t[0]:.2f} / {t[1]:.2f} / {t[2]:.2f} mm | {r['plain_s']:.1f} s (TRE {r['plain_tre'][0]:.2f}) | "
              f"{r['time_s'] / r['plain_s']:.2f} |")
    skipped = [k for k in ("elastix", "ants") if all(r.get(k) is None for r in rows)]
    if skipped:
        print(f"\n{' and '.join(skipped)} not installed: skipped.")


if __name__ == "__main__":
    main()
