#!/usr/bin/env python
"""Benchmark the registration engine's presets on images with a known answer.

    .venv/bin/python scripts/bench_engine.py            # all cases, prints a markdown table
    .venv/bin/python scripts/bench_engine.py --cases affine-known,affine-bspline
    BENCH_TOOLS=elastix BENCH_PLAIN=0 .venv/bin/python scripts/bench_engine.py --cases affine-vs-elastix
    BENCH_TOOLS= .venv/bin/python scripts/bench_engine.py --cases photo     # the 2D photograph cases

Data: the 2 mm MNI T1 (fixed; the 1 mm original for the "-1mm" cases) and a T2-like image of the same anatomy (moving), warped by a
known fixed -> moving transform (regviewer.core.imaging.synthetic.brain_pair: affine 10 deg / ~11 mm /
5 % scale, plus a smooth warp of up to 3 mm for the deformable cases). Same-modality presets
(rigid, demons) get the T1 warped by the same transform. TRE = |estimated(p) - true(p)| at
2000 points inside the brain (GM+WM > 0.3). 2D cases ("photo"): the retina demo pair, and 741x500
RGB photographs (retina.jpg and camera.png, not the demo pair) under a known affine, with and without
a smooth warp, registered by `photo-2d` and by `auto`; TRE in px at 2000 points on the photograph.

Each case runs in its own process so the peak RSS is the case's own (measured after the
first regviewer run). "plain" is a plain SimpleITK script with the same settings and no
progress callback or history; the two alternate BENCH_REPEAT (3) times and the best time
of each is shown; "overhead" is regviewer time / plain time.

itk-elastix and antspyx (optional: `pip install itk-elastix antspyx`, not regviewer dependencies)
run on the same images in the same case process when installed, and are skipped otherwise:
elastix with its default "affine" map (then its default "bspline" map for deformable presets),
ANTs `registration` with "Affine" (or "SyN"), both with their own default threading. Each of
the BENCH_REPEAT rounds runs regviewer, the plain script, elastix and ANTs in turn, and the
best time of each is kept, so all tools see the same load; TRE is at the same points.
A second table prints their time, TRE and "regviewer / tool" = regviewer time / tool time, and
regviewer's first round alone (it also pays first-call costs; elastix's first round loads its
libraries, so only best-of times are compared). The wrong-optimum pose search is cached per pair
inside one process; every regviewer round starts with that cache emptied, so each round costs
what registering a pair for the first time costs (BENCH_KEEP_CACHE=1 keeps it, for the time of a
repeated run on the same pair).
BENCH_PLAIN=0 skips the plain script; BENCH_TOOLS=ants runs only ANTs (elastix's default
B-spline takes minutes per run at 2 mm). The 1 mm cases take minutes each on 2 cores.
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
DATA = Path(os.environ.get("REGVIEWER_DATA", "") or next(  # a worktree sits one level deeper than the checkout
    (p / "shared" / "data" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared" / "data").is_dir()),
    ROOT.parent / "shared" / "data"))

from regviewer.core.imaging import synthetic as syn  # noqa: E402
from regviewer.core.qa.tre import summarise  # noqa: E402
from regviewer.core.registration.engine import register  # noqa: E402
from regviewer.core.registration.bspline_grid import mesh_for_spacing, refine_bspline  # noqa: E402
from regviewer.core.registration.params import Pipeline, Stage, replace  # noqa: E402
from regviewer.core.registration.presets import load_preset  # noqa: E402
from regviewer.core.registration.search import clear_cache as clear_search_cache  # noqa: E402
from regviewer.core.transforms.resample import interpolator_id  # noqa: E402
from regviewer.core.transforms.ops import make_linear, transform_points  # noqa: E402

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
    # issue 13's 2D goal: a 741x500 RGB photograph, the affine default in <= 1 s (TRE in px)
    "photo-741": ("photo-2d", "photo741", "photograph 741x500 (RGB), known affine"),
    "photo-741-warp": ("photo-2d", "photo741-warp", "photograph 741x500 (RGB), affine + warp"),
    "camera-741-warp": ("photo-2d", "camera741-warp", "camera 741x500 (tinted RGB), affine + warp"),
    "photo-741-auto": ("auto", "photo741", "photograph 741x500 (RGB), known affine, auto"),
    "affine-known-1mm": ("affine-mi", "affine@1", "known affine (T1 -> T2-like), 1 mm"),
    "affine-bspline-1mm": ("affine-bspline-mi", "warp@1", "affine + smooth warp, 1 mm"),
    "affine-warp-1mm": ("affine-mi", "warp@1", "affine + smooth warp, affine only, 1 mm"),
}
# The affine preset against elastix's default affine at both resolutions (issue 13's affine row):
#   BENCH_TOOLS=elastix BENCH_PLAIN=0 python scripts/bench_engine.py --cases affine-vs-elastix
GROUPS = {"affine-vs-elastix": "affine-known,affine-warp,affine-known-1mm,affine-warp-1mm",
          "photo": "photo-2d,photo-741,photo-741-warp,camera-741-warp,photo-741-auto"}


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
    if kind.startswith(("photo741", "camera741")):
        return photo_741(kind)
    kind, _, mm = kind.partition("@")
    pair = syn.brain_pair(DATA, shrink=int(mm or 2), with_warp=kind.startswith("warp"))
    points = syn.brain_points(pair.mask, 2000)
    if kind.startswith("rigid"):
        centre = pair.fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in pair.fixed.GetSize()])
        true = syn.affine_transform(centre, rotation_deg=(4.0, -3.0, 9.0), translation_mm=(8.0, -6.0, 5.0))
        source = pair.fixed if kind == "rigid-same" else sitk.Resample(pair.moving, pair.fixed, pair.true)
        return pair.fixed, syn.warp_image(source, true), true, points
    if kind == "warp-same":
        return pair.fixed, syn.warp_image(pair.fixed, pair.true), pair.true, points
    return pair.fixed, pair.moving, pair.true, points


def photo_741(kind: str):
    """A 741x500 RGB photograph (pixel spacing 1) and a copy under a known affine (-9 deg, 6 % / -4 %
    scale, a shift), with a smooth warp of up to 6 px after it for the "-warp" kinds. "photo741":
    the fundus photograph (retina.jpg, its centre rows, resized); "camera741": camera.png
    enlarged, its centre rows, tinted so the three channels differ. Neither is the demo pair."""
    if kind.startswith("camera"):
        grey = sitk.ReadImage(str(DATA / "camera.png"), sitk.sitkFloat32)
        scale = grey.GetSize()[0] / 741.0  # 512 px -> 741 px; 500 centre rows of the 741 made
        grey = sitk.Resample(grey, [741, 500], sitk.Transform(), sitk.sitkLinear,
                             (0.0, (741 - 500) / 2.0 * scale), (scale, scale), grey.GetDirection(), 0.0)
        rgb = sitk.Compose([sitk.Cast(sitk.Clamp(grey * w, sitk.sitkFloat32, 0, 255), sitk.sitkUInt8)
                            for w in (1.0, 0.85, 0.6)])
        rgb.SetOrigin((0.0, 0.0))
        rgb.SetSpacing((1.0, 1.0))
        fixed = rgb
    else:
        retina = sitk.ReadImage(str(DATA / "retina.jpg"))  # 1411 x 1411
        rows = int(round(retina.GetSize()[1] * 500 / 741))
        top = (retina.GetSize()[1] - rows) // 2
        fixed = syn.photo_pair(retina[:, top:top + rows], size=741).fixed  # the resized photograph only
    assert tuple(fixed.GetSize()) == (741, 500), fixed.GetSize()
    centre = [(s - 1) / 2 for s in fixed.GetSize()]
    true = syn.affine_transform(centre, rotation_deg=(-9.0,), translation_mm=(-17.0, 11.0), scale=(1.06, 0.96))
    if kind.endswith("-warp"):
        true = sitk.CompositeTransform([true, syn.smooth_warp(fixed, max_mm=6.0, seed=3, mesh_size=3)])
    moving = syn.warp_image(fixed, true)
    lum = _lum(fixed)
    mask = sitk.BinaryErode(sitk.Cast(lum > 20, sitk.sitkUInt8), [10, 10])
    return fixed, moving, true, syn.brain_points(mask, 2000)


def tre(estimated, true, points) -> np.ndarray:
    return np.linalg.norm(transform_points(estimated, points) - transform_points(true, points), axis=1)


def _mean_p95_max(err: np.ndarray) -> list[float]:
    s = summarise(err)
    return [s.mean_mm, s.p95_mm, s.max_mm]


# --- a plain SimpleITK script with the same settings ----------------------------------
def plain_simpleitk(pipeline: Pipeline, fixed: sitk.Image, moving: sitk.Image, seed: int = 0) -> sitk.Transform:
    """What a user would write by hand: ITK's own pyramid, no callbacks."""
    from regviewer.core.registration.method_settings import set_metric, set_optimizer, set_sampling
    from regviewer.core.registration.stages import _TransformBuilder

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
            mesh = mesh_for_spacing(f, stage.transform.grid_spacing_mm)
            n = len(levels)
            tx = sitk.BSplineTransformInitializer(f, [max(1, round(x / 2 ** (n - 1))) for x in mesh], 3)
        for k, lv in enumerate(runs):
            one = replace(stage, pyramid=replace(stage.pyramid, shrink_factors=tuple(s for s, _ in lv),
                                                 smoothing_sigmas=tuple(g for _, g in lv)))
            method = sitk.ImageRegistrationMethod()
            if pipeline.reproducible:
                method.SetNumberOfWorkUnits(1)
            set_metric(method, one)
            if set_sampling(method, one, f, seed):  # as the engine: gradients at the sampled points only
                method.SetMetricUseFixedImageGradientFilter(False)
                method.SetMetricUseMovingImageGradientFilter(False)
            method.SetInterpolator(interpolator_id(one.interpolator))
            method.SetShrinkFactorsPerLevel([s for s, _ in lv])
            method.SetSmoothingSigmasPerLevel([g for _, g in lv])
            method.SetSmoothingSigmasAreSpecifiedInPhysicalUnits(stage.pyramid.sigmas_in_mm)
            if previous is not None:
                method.SetMovingInitialTransform(previous)
            builder = _TransformBuilder(one, f, tx)
            method.SetInitialTransform(builder.transform, inPlace=True)
            set_optimizer(method, one)
            method.Execute(f, m)
            tx = builder.transform
            if stage.transform.kind == "bspline" and k < len(runs) - 1:
                tx = refine_bspline(tx, f)
        composite.AddTransform(tx)
    return composite


def _lum(image):
    from regviewer.core.imaging.image import to_scalar_float32

    return to_scalar_float32(image)


def _plain_demons(stage: Stage, f, m, previous):
    from regviewer.core.registration.demons import _level_image, _make_filter

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
    out: dict = {"case": name, "what": what, "preset": preset,
                 "unit": "px" if fixed.GetDimension() == 2 else "mm"}  # 2D cases: pixel spacing 1
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

    times, plain_times, cpu_times = [], [], []
    tools: dict[str, list] = {"elastix": [], "ants": []}
    deformable = "bspline" in preset
    for _ in range(REPEAT):  # interleaved rounds, best of each: the machine is shared, so every tool
        # sees the same load in each round and the ratios hold even when the times do not
        if os.environ.get("BENCH_KEEP_CACHE") != "1":
            clear_search_cache()  # a user registers a pair once: no pose search saved from a previous round
        t0, c0 = time.perf_counter(), time.process_time()
        result = register(fixed, moving, params=pipeline, progress=progress)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)  # all threads: what a loaded machine cannot inflate much
        if not out.get("rss_mb"):
            out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if os.environ.get("BENCH_PLAIN", "1") != "0":
            t0 = time.perf_counter()
            plain = plain_simpleitk(pipeline, fixed, moving)
            plain_times.append(time.perf_counter() - t0)
        else:
            plain, plain_times = result.transform, [float("nan")]
        for key, run_tool in (("elastix", _elastix), ("ants", _ants)):
            if key not in os.environ.get("BENCH_TOOLS", "elastix,ants").split(","):
                continue
            if not any(r and r.get("time_s", 0) > 60 for r in tools[key]):  # one round of a very slow tool
                tools[key].append(run_tool(fixed, moving, true, points, deformable))
    out["time_s"], out["plain_s"] = min(times), min(plain_times)
    out["first_s"] = times[0]  # with first-call costs
    out["cpu_s"] = cpu_times[times.index(min(times))]
    err = tre(result.transform, true, points)
    out["tre"] = _mean_p95_max(err)
    out["events"] = n_events[0] // REPEAT
    perr = tre(plain, true, points)
    out["plain_tre"] = [float(perr.mean()), float(perr.max())]
    for key, runs in tools.items():
        ok = [r for r in runs if r is not None and "error" not in r]
        out[key] = (dict(min(ok, key=lambda r: r["time_s"]), runs=len(ok)) if ok
                    else next((r for r in runs if r is not None), None))
    return out


# --- other tools on the same data (optional; skipped when not installed) -----------------
def _scalar_float(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(image, sitk.sitkFloat32) if image.GetNumberOfComponentsPerPixel() == 1 else _lum(image)


def _best_time(run) -> tuple[float, object, int]:
    """One timed run (`run_case` interleaves the rounds and keeps the best)."""
    t0 = time.perf_counter()
    out = run()
    return time.perf_counter() - t0, out, 1


def _summary(seconds: float, runs: int, err: np.ndarray, method: str) -> dict:
    return {"time_s": seconds, "runs": runs, "method": method,
            "tre": _mean_p95_max(err)}


def _elastix(fixed, moving, true, points, deformable):
    """itk-elastix with its default parameter maps ("affine", then "bspline" when deformable).

    elastix's TransformParameters map FIXED points to MOVING points; they are written to files
    and read back with regviewer's own reader, so the TRE also checks that reader.
    """
    try:
        import itk
        if not hasattr(itk, "elastix_registration_method"):
            return None
    except ImportError:
        return None
    import tempfile

    from regviewer.core.transforms.io import read_transform

    def to_itk(image: sitk.Image):
        f = _scalar_float(image)
        out = itk.GetImageFromArray(np.ascontiguousarray(sitk.GetArrayFromImage(f)))
        out.SetOrigin(f.GetOrigin())
        out.SetSpacing(f.GetSpacing())
        d = f.GetDimension()
        out.SetDirection(itk.GetMatrixFromArray(np.array(f.GetDirection(), dtype=float).reshape(d, d)))
        return out

    try:
        f, m = to_itk(fixed), to_itk(moving)
        params = itk.ParameterObject.New()
        for kind in ("affine", "bspline") if deformable else ("affine",):
            params.AddParameterMap(params.GetDefaultParameterMap(kind))
        seconds, (_, result), runs = _best_time(
            lambda: itk.elastix_registration_method(f, m, parameter_object=params, log_to_console=False))
        with tempfile.TemporaryDirectory(prefix="bench_elastix_") as tmp:
            names = [str(Path(tmp) / f"TransformParameters.{i}.txt") for i in range(result.GetNumberOfParameterMaps())]
            for i, name in enumerate(names):
                pm = result.GetParameterMap(i)
                if i:  # chain the files as elastix does on disk; elastix 5 spells the key without the
                    # "s", regviewer's reader (elastix 4 files) with it: write both.
                    pm["InitialTransformParameterFileName"] = (names[i - 1],)
                    pm["InitialTransformParametersFileName"] = (names[i - 1],)
                itk.ParameterObject.WriteParameterFile(pm, name)
            estimated = read_transform(names[-1])
        return _summary(seconds, runs, tre(estimated, true, points),
                        "default " + " + ".join(("affine", "bspline") if deformable else ("affine",)))
    except Exception as exc:  # a benchmark row, not a crash: report what went wrong
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _ants(fixed, moving, true, points, deformable):
    """antspyx registration ("Affine", or "SyN" when deformable) with its defaults.

    ANTs works in ITK physical (LPS) coordinates. Checked on this data: its "fwdtransforms",
    applied to points with apply_transforms_to_points, map FIXED points to MOVING points
    (TRE ~0.1 mm affine); the "invtransforms" give ~28 mm.
    """
    try:
        import ants
        import pandas as pd
    except ImportError:
        return None
    import tempfile

    def to_ants(image: sitk.Image):
        f = _scalar_float(image)
        d = f.GetDimension()
        arr = sitk.GetArrayFromImage(f).transpose(*reversed(range(d)))  # ANTs arrays are x-first
        return ants.from_numpy(np.ascontiguousarray(arr), origin=f.GetOrigin(), spacing=f.GetSpacing(),
                               direction=np.array(f.GetDirection(), dtype=float).reshape(d, d))

    kind = "SyN" if deformable else "Affine"
    try:
        f, m = to_ants(fixed), to_ants(moving)
        dim = f.dimension
        pts = np.asarray(points, dtype=float)
        axes = "xyz"[:dim]
        with tempfile.TemporaryDirectory(prefix="bench_ants_") as tmp:
            seconds, reg, runs = _best_time(
                lambda: ants.registration(f, m, type_of_transform=kind, outprefix=str(Path(tmp) / "r_")))
            frame = pd.DataFrame({a: pts[:, i] for i, a in enumerate(axes)})
            moved = ants.apply_transforms_to_points(dim, frame, reg["fwdtransforms"],
                                                    whichtoinvert=[False] * len(reg["fwdtransforms"]))
            estimated = moved[list(axes)].to_numpy()
        err = np.linalg.norm(estimated - np.asarray(transform_points(true, points)), axis=1)
        return _summary(seconds, runs, err, f"{kind} defaults")
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


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
    for name in ",".join(GROUPS.get(c, c) for c in args.cases.split(",")).split(","):
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
              f"{t[0]:.2f} / {t[1]:.2f} / {t[2]:.2f} {r.get('unit', 'mm')} | {r['plain_s']:.1f} s "
              f"(TRE {r['plain_tre'][0]:.2f}) | "
              f"{r['time_s'] / r['plain_s']:.2f} |")
    cpu = [f"{r['case']} {r['cpu_s']:.2f} s" for r in rows if "cpu_s" in r]
    if cpu:
        print("\nCPU time of regviewer's best round (all threads): " + ", ".join(cpu))
    _print_tools(rows)


def _print_tools(rows: list[dict]) -> None:
    """Second table: elastix / ANTs on the same data; "ratio" is regviewer time / tool time."""
    tools = [(k, label) for k, label in (("elastix", "elastix"), ("ants", "ANTs"))
             if any(r.get(k) is not None for r in rows)]
    skipped = [label for k, label in (("elastix", "itk-elastix"), ("ants", "antspyx"))
               if all(r.get(k) is None for r in rows) and k in os.environ.get("BENCH_TOOLS", "elastix,ants")]
    if tools:
        head = "| case | regviewer time / TRE mean | regviewer first round |" + "".join(
            f" {label} method | {label} time | {label} TRE mean / p95 / max | regviewer / {label} time |"
            for _, label in tools)
        print("\n" + head)
        print("|---|---|---|" + "---|---|---|---|" * len(tools))
        for r in rows:
            if "tre" not in r:
                continue
            unit = r.get("unit", "mm")
            line = (f"| {r['what']} | {r['time_s']:.2f} s / {r['tre'][0]:.2f} {unit} | "
                    f"{r.get('first_s', float('nan')):.2f} s |")
            for k, _ in tools:
                x = r.get(k)
                if x is None:
                    line += " — | — | — | — |"
                elif "error" in x:
                    line += f" failed: {x['error'][:80]} | — | — | — |"
                else:
                    t = x["tre"]
                    line += (f" {x['method']} | {x['time_s']:.2f} s (best of {x['runs']}) | "
                             f"{t[0]:.2f} / {t[1]:.2f} / {t[2]:.2f} {unit} | {r['time_s'] / x['time_s']:.2f} |")
            print(line)
    if skipped:
        print(f"\n{' and '.join(skipped)} not installed: skipped.")


if __name__ == "__main__":
    main()
