"""`align_stack`: put a stack of serial sections back into one volume.

Two modes:
- **neighbours** (no reference): each section is registered with its next `neighbours`
  sections (k+1, k+2), outward from an anchor (the middle one by default); one joint
  least-squares fit over all pairs (`solve.py`) gives every section's transform, which
  keeps random drift down; the trend that the changing anatomy puts into the fit (the
  "banana" effect) is then removed (`trend.py`); the anchor's frame is the output frame.
- **reference**: each section is registered to its own reference plane (a blockface
  photograph, or a plane cut from a 3D volume); the reference frame is the output frame,
  and neighbours only serve as a consistency check.

Either way a jump detector (`jumps.py`) flags sections that fit neither neighbour.
Transforms map OUTPUT points to SECTION points (fixed -> moving).
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, IncompatibleImagesError, RegistrationCancelled
from regviewer.core.registration.params import Pipeline
from regviewer.core.stack import pairwise
from regviewer.core.stack.jumps import jump_flags
from regviewer.core.stack.reference import reference_planes, scaled_start
from regviewer.core.stack.refine import bspline_only, linear_only, refine_on_neighbours
from regviewer.core.stack.result import SectionResult, StackResult, affine_from, resample_section, volume_of
from regviewer.core.stack.sections import Section, read_sections
from regviewer.core.stack.solve import Pair, solve
from regviewer.core.stack.trend import mode_of, remove_trend


# Pairs k, k+2 (and k+3) pull on the fit with this weight (divided by d-1): between
# neighbours 2 sections apart the anatomy has changed more, so their registration is
# more biased than the nearest pair's; they matter when the nearest pairs through a torn
# or missing section are down-weighted by the robust fit, which is what they are for.
BRIDGE_WEIGHT = 0.1


@dataclass(frozen=True)
class StackProgress:
    """One step of a stack alignment: `done` of `total` registrations, about `section`.

    `index`/`image` carry a section just aligned on the output grid (the window shows the
    volume filling in), else None."""

    done: int
    total: int
    section: str
    message: str
    index: int | None = None
    image: sitk.Image | None = None


def align_stack(sections, reference=None, preset: str | None = "auto", params: Pipeline | None = None, *,
                spacing: Sequence[float] | None = None, anchor: int | None = None, neighbours: int = 2,
                deformable: bool = False, rigid: bool = False, reference_planes: Sequence[int] | None = None,
                max_side: int = 2048, seed: int = 0, progress: Callable[[StackProgress], None] | None = None,
                cancel=None, executor=None, remove_trend: str | bool = "stretch") -> StackResult:
    """Align serial sections; return a `StackResult` (volume, one transform per section, flags).

    sections: a folder (natural order), a list of paths, a multi-page TIFF, a 3D image
    path or a 3D SimpleITK image. reference: None, a folder / list of 2D reference images
    (one per section, same order), or a 3D image (path or SimpleITK) whose z planes
    `reference_planes` (default: all of them when the counts match, else evenly spaced)
    match the sections. preset: 'auto' (rigid then affine, tuned for sections) or a preset
    name; `params` (a Pipeline) overrides it. spacing: (x, y[, z]) mm for sections without
    geometry (z is the section spacing in the volume). anchor: index of the section whose
    frame is the output (neighbours mode). neighbours: how many following sections each
    one is registered with (1 = a plain chain; 2 or 3 keeps drift down). rigid: solve for
    rigid section transforms only. max_side: larger pyramidal TIFFs are registered at a
    pyramid level of at most this many px per side. executor: a `concurrent.futures`
    executor (a process pool, or a Dask client's `get_executor()`) to register the
    neighbour pairs in parallel (without a reference). remove_trend (without a reference):
    what neighbour registration gets wrong along the stack, removed after the joint fit
    (`trend.py`): 'stretch' (default; each section's stretch is its own, so its smooth
    trend along the stack is the anatomy's size change and is taken out), 'pose' (also a
    quadratic trend of angle and shift: sections are mounted independently) or 'off' (keep
    everything; for a stack that was really stretched or turned progressively).
    True = 'stretch', False = 'off'.

    Raises `ImageReadError` when nothing can be read, `RegistrationCancelled` on cancel.
    A section that cannot be read or registered is reported in its status, never raised.
    """
    trend_mode = mode_of(remove_trend)  # a bad value fails before any reading
    secs = read_sections(sections, spacing, max_side)
    if not any(s.ok for s in secs):
        first = next((s.error for s in secs if s.error), "")
        raise ImageReadError(str(sections), f"none of its {len(secs)} sections could be read. {first}")
    report = progress or (lambda p: None)
    z_spacing = float(spacing[2]) if spacing is not None and len(spacing) > 2 else None
    if reference is None:
        return _neighbours_mode(secs, preset, params, anchor, neighbours, deformable, rigid, z_spacing, seed,
                                report, cancel, executor, trend_mode)
    return _reference_mode(secs, reference, preset, params, reference_planes, spacing, max_side, deformable, rigid,
                           z_spacing, seed, report, cancel)


def _check_cancel(cancel) -> None:
    if cancel is not None and cancel.cancelled:
        raise RegistrationCancelled("Stack alignment cancelled")


def _neighbours_mode(secs: list[Section], preset, params, anchor, neighbours, deformable, rigid, z_spacing, seed,
                     report, cancel, executor=None, trend_mode: str = "stretch") -> StackResult:
    order = [i for i, s in enumerate(secs) if s.ok]
    if anchor is None:
        anchor = order[len(order) // 2]
    elif not 0 <= anchor < len(secs):
        raise IncompatibleImagesError(f"anchor {anchor} is outside the stack (sections 0 to {len(secs) - 1})")
    elif not secs[anchor].ok:
        raise IncompatibleImagesError(f"the anchor section {anchor} ('{secs[anchor].name}') cannot be read: "
                                      f"{secs[anchor].error}")
    norm = {i: pairwise.normalise(secs[i].image) for i in order}
    pipeline = pairwise.pipeline_for(preset, params, norm[anchor], "correlation", deformable)
    # Pairs are registered with the linear stages; deformable ones refine at the end (refine.py).
    pair_pipeline = linear_only(pipeline) or pairwise.stack_pipeline(norm[anchor], "correlation")
    seconds = {i: 0.0 for i in range(len(secs))}
    pairs: list[Pair] = []
    failures: dict[int, list[str]] = {i: [] for i in order}
    pos = order.index(anchor)
    # Outward from the anchor: pairs nearest the anchor first, so progress shows the volume growing from its middle.
    todo = [(i, d) for d in range(1, max(1, neighbours) + 1) for i in range(len(order) - d)]
    todo.sort(key=lambda t: (min(abs(t[0] - pos), abs(t[0] + t[1] - pos)), t[1]))
    done_pairs: dict[tuple[int, int], pairwise.PairResult] = {}
    chained = {anchor: (np.eye(2), np.zeros(2))}  # provisional transforms, for a live view only
    report(StackProgress(0, len(todo), secs[anchor].name, "anchor", index=anchor, image=secs[anchor].image))
    def record(n: int, i: int, d: int, r: pairwise.PairResult, spent: float) -> None:
        k, j = order[i], order[i + d]
        seconds[j] += spent
        done_pairs[(k, j)] = r
        if r.ok:
            pairs.append(Pair(k, j, r.matrix, r.offset, weight=1.0 if d == 1 else BRIDGE_WEIGHT / (d - 1)))
            if d == 1:
                _report_chained(chained, k, j, r, secs, report, n, len(todo))
        else:
            failures[k].append(f"{secs[j].name}: {r.error}")
            failures[j].append(f"{secs[k].name}: {r.error}")

    if executor is None:
        for n, (i, d) in enumerate(todo):
            _check_cancel(cancel)
            k, j = order[i], order[i + d]
            report(StackProgress(n, len(todo), secs[j].name, f"registering {secs[j].name} with {secs[k].name}"))
            r, spent = pairwise.timed_register_pair(norm[k], norm[j], pair_pipeline, "correlation",
                                                    _composed_initial(done_pairs, order, i, d), seed, cancel)
            record(n, i, d, r, spent)
    else:  # all k+1 pairs at once, then the k+2 pairs (which start from the composed k+1 results), ...
        n = 0
        for d in range(1, max(1, neighbours) + 1):
            batch = [(i, dd) for i, dd in todo if dd == d]
            futures = [executor.submit(pairwise.timed_register_pair, norm[order[i]], norm[order[i + d]], pair_pipeline,
                                       "correlation", _composed_initial(done_pairs, order, i, d), seed)
                       for i, _ in batch]
            for (i, _), future in zip(batch, futures):
                _wait_or_cancel(future, futures, cancel)
                r, spent = future.result()
                report(StackProgress(n, len(todo), secs[order[i + d]].name,
                                     f"registered {secs[order[i + d]].name} with {secs[order[i]].name}"))
                record(n, i, d, r, spent)
                n += 1
    _check_cancel(cancel)
    grid = secs[anchor].image
    points = _grid_points(grid)
    pairs, poor = _distrust_poor_pairs(pairs, done_pairs, order)
    solution = solve(anchor, pairs, order, points, rigid=rigid)
    torn = _torn(pairs, poor)
    solved, trend = remove_trend(solution.transforms, anchor, points.mean(axis=0), trend_mode, exclude=torn)
    transforms = {k: affine_from(m, t, points.mean(axis=0)) for k, (m, t) in solved.items()}
    deformable_stages = bspline_only(pipeline)
    if deformable_stages is not None:
        report(StackProgress(len(todo), len(todo), "", "deformable refinement on the neighbours' mean"))
        transforms = refine_on_neighbours(order, anchor, norm, transforms, grid, deformable_stages, seed, cancel)
        _check_cancel(cancel)  # a refinement cut short is not a finished stack
    report(StackProgress(len(todo), len(todo), "", "assembling the volume"))
    result = _assemble(secs, transforms, grid, z_spacing or 1.0, 0.0, None, norm, None, seconds, report)
    # A poor pair's disagreement says that pair's section is bad (a jump), not its partner.
    trusted = {key: r for key, r in solution.pair_residuals.items() if key not in poor}
    flags = jump_flags(order, result.details["neighbour_ncc"], trusted, min(grid.GetSpacing()))
    for s in result.sections:
        if s.status == "missing":
            continue
        s.flags.extend(flags.get(s.index, []))
        paired = sum(1 for p in pairs if s.index in (p.fixed, p.moving))
        if paired == 0 and len(order) > 1:
            s.status = "failed"
            s.flags.append("no registration with any neighbour succeeded: " + "; ".join(failures[s.index])[:300])
        elif s.flags:
            s.status = "flagged"
    result.anchor = anchor
    result.details.update(pair_residuals=solution.pair_residuals, pair_weights=solution.pair_weights,
                          pipeline=pipeline.to_dict(), trend=trend.to_dict())
    return result


def _torn(pairs: list[Pair], poor: set) -> set[int]:
    """Sections more than half of whose pairs are poor (torn, foreign): the trend is fitted
    without them."""
    count: dict[int, list[int]] = {}
    for p in pairs:
        for k in (p.fixed, p.moving):
            count.setdefault(k, [0, 0])[0] += 1
            count[k][1] += (p.fixed, p.moving) in poor
    return {k for k, (n, bad) in count.items() if 2 * bad > n}


def _wait_or_cancel(future, futures: list, cancel, poll_s: float = 0.1) -> None:
    """Wait for `future`, looking at `cancel` every `poll_s`: on a cancel the pairs not yet
    started are dropped and `RegistrationCancelled` is raised at once (the caller that owns
    the executor stops the pairs already running, e.g. by ending its worker processes)."""
    from concurrent.futures import wait

    while True:
        if cancel is not None and cancel.cancelled:
            for f in futures:
                f.cancel()
            _check_cancel(cancel)
        if future.done():
            return
        wait([future], timeout=poll_s)


def _distrust_poor_pairs(pairs: list[Pair], done: dict, order: list[int]) -> tuple[list[Pair], set]:
    """Pairs whose correlation after registration is far below that of the other pairs the
    same distance apart (a torn or foreign section) keep 1 % of their weight: the section
    is still placed by them, but the k+2 pairs around it decide where its neighbours go."""
    from regviewer.core.stack.jumps import robust_low

    by_gap: dict[int, dict[tuple[int, int], float]] = {}
    for p in pairs:
        gap = order.index(p.moving) - order.index(p.fixed)
        by_gap.setdefault(gap, {})[(p.fixed, p.moving)] = done[(p.fixed, p.moving)].ncc
    poor = set().union(*(robust_low(values) for values in by_gap.values())) if by_gap else set()
    return [Pair(p.fixed, p.moving, p.matrix, p.offset, p.weight * (0.01 if (p.fixed, p.moving) in poor else 1.0))
            for p in pairs], poor


def _report_chained(chained: dict, k: int, j: int, r, secs, report, done: int, total: int) -> None:
    """Chain the new nearest-neighbour pair onto the provisional transforms and show the
    newly reached section (the joint fit later replaces these)."""
    if k in chained and j not in chained:
        m, t = chained[k]
        chained[j] = (r.matrix @ m, r.matrix @ t + r.offset)
        new = j
    elif j in chained and k not in chained:
        qi = np.linalg.inv(r.matrix)
        m, t = chained[j]
        chained[k] = (qi @ m, qi @ (t - r.offset))
        new = k
    else:
        return
    grid = secs[next(iter(chained))].image
    image = resample_section(secs[new].image, grid, affine_from(*chained[new]))
    report(StackProgress(done, total, secs[new].name, "chained", index=new, image=image))


def _composed_initial(done: dict, order: list[int], i: int, d: int) -> sitk.Transform | None:
    """Start pair (k, k+d) from the composition of the finished (k, k+1), ..., pairs."""
    if d == 1:
        return None
    m, t = np.eye(2), np.zeros(2)
    for s in range(i, i + d):
        r = done.get((order[s], order[s + 1]))
        if r is None or not r.ok:
            return None
        m, t = r.matrix @ m, r.matrix @ t + r.offset
    return affine_from(m, t)


def _grid_points(grid: sitk.Image, n: int = 5) -> np.ndarray:
    """An n x n grid of physical points over the inner 80 % of `grid`."""
    w, h = grid.GetSize()
    xs, ys = np.linspace(0.1 * (w - 1), 0.9 * (w - 1), n), np.linspace(0.1 * (h - 1), 0.9 * (h - 1), n)
    return np.array([grid.TransformContinuousIndexToPhysicalPoint((float(x), float(y))) for y in ys for x in xs])


def _assemble(secs, transforms: dict[int, sitk.Transform], grid: sitk.Image, z_spacing: float, z_origin: float,
              direction3, norm: dict[int, sitk.Image], reference_ncc: dict[int, float] | None,
              seconds: dict[int, float], report) -> StackResult:
    """Resample every section onto the grid, measure neighbour agreement, build the result."""
    aligned: list[sitk.Image | None] = []
    aligned_norm: dict[int, sitk.Image] = {}
    results = []
    for i, s in enumerate(secs):
        tx = transforms.get(i)
        if not s.ok or tx is None:
            aligned.append(None)
            results.append(SectionResult(i, s.name, s.source, "missing", None, None,
                                         [s.error or "not read"], seconds.get(i, 0.0)))
            continue
        img = resample_section(s.image, grid, tx)
        aligned.append(img)
        aligned_norm[i] = resample_section(norm[i], grid, tx)
        report(StackProgress(i, len(secs), s.name, "aligned", index=i, image=img))
        results.append(SectionResult(i, s.name, s.source, "ok", tx, None, [], seconds.get(i, 0.0),
                                     None if reference_ncc is None else reference_ncc.get(i)))
    order = sorted(aligned_norm)
    neighbour_ncc = {}
    for a, b in zip(order, order[1:]):
        neighbour_ncc[(a, b)] = pairwise.ncc(aligned_norm[a], aligned_norm[b], None)
    for r in results:
        around = [v for key, v in neighbour_ncc.items() if r.index in key]
        if around:
            r.metric = max(around)
        elif r.reference_metric is not None:
            r.metric = r.reference_metric
    volume = volume_of(aligned, grid, z_spacing, z_origin, direction3)
    return StackResult(results, volume, grid, None, "neighbours", [s.slide for s in secs],
                       {"neighbour_ncc": neighbour_ncc}, images=[s.image for s in secs])


def _reference_mode(secs, reference, preset, params, planes, spacing, max_side, deformable, rigid, z_spacing, seed,
                    report, cancel) -> StackResult:
    refs, ref_dz, z0, direction = reference_planes(reference, len(secs), planes, spacing, max_side)
    grid_ref = next((r for r in refs if r.ok), None)
    if grid_ref is None:
        raise ImageReadError(str(reference), "none of the reference images could be read")
    grid = grid_ref.image
    metric = "mattes"
    pipeline = pairwise.pipeline_for(preset, params, pairwise.normalise(grid), metric, deformable)
    if rigid:
        pipeline = dataclasses.replace(pipeline, stages=pipeline.stages[:1])
    norm = {i: pairwise.normalise(s.image) for i, s in enumerate(secs) if s.ok}
    transforms, seconds, ref_ncc, failed = {}, {}, {}, {}
    for i, s in enumerate(secs):
        _check_cancel(cancel)
        if not s.ok:
            continue
        ref = refs[i]
        if not ref.ok:
            failed[i] = f"its reference image cannot be read: {ref.error}"
            continue
        report(StackProgress(i, len(secs), s.name, f"registering {s.name} to {ref.name}"))
        t0 = time.perf_counter()
        fixed = pairwise.normalise(ref.image)
        start = scaled_start(fixed, norm[i], metric)
        r = pairwise.register_pair(fixed, norm[i], pipeline, metric, initial=start, seed=seed, cancel=cancel)
        seconds[i] = time.perf_counter() - t0
        if not r.ok:
            failed[i] = r.error or "registration failed"
            continue
        tx = r.transform if r.transform is not None else affine_from(r.matrix, r.offset)
        # Output frame = the first reference's frame; reference photos share the camera's frame.
        transforms[i] = tx
        ref_ncc[i] = r.ncc
    _check_cancel(cancel)
    report(StackProgress(len(secs), len(secs), "", "assembling the volume"))
    result = _assemble(secs, transforms, grid, z_spacing or ref_dz, z0, direction, norm, ref_ncc, seconds, report)
    order = [i for i in transforms]
    flags = jump_flags(order, result.details["neighbour_ncc"])
    low_ref = pairwise_low(ref_ncc)
    for s in result.sections:
        if s.index in failed and secs[s.index].ok:
            s.status = "failed"
            s.flags.append(f"registration to the reference failed: {failed[s.index]}")
            continue
        if s.status == "missing":
            continue
        s.flags.extend(flags.get(s.index, []))
        if s.index in low_ref:
            s.flags.append(f"poor match with its reference plane (correlation {ref_ncc[s.index]:.2f})")
        if s.flags:
            s.status = "flagged"
    result.mode = "reference"
    result.references = [None if not r.ok else sitk.Resample(r.image, grid, sitk.Transform(2, sitk.sitkIdentity),
                                                             sitk.sitkLinear, 0.0, sitk.sitkFloat32) for r in refs]
    result.details.update(reference_ncc=ref_ncc, pipeline=pipeline.to_dict())
    return result


def pairwise_low(values: dict[int, float]) -> set[int]:
    from regviewer.core.stack.jumps import robust_low

    return robust_low(values)


__all__ = ["align_stack", "StackProgress"]
