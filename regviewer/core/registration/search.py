"""A starting alignment that survives large misalignment: centres, then a coarse pose search.

Gradient optimisers only find the nearest optimum; an image turned 90-180 degrees, or
moved far away, sends them to a wrong one. Before the first stage this module (the
`initializer: "search"` of a stage), in the spirit of FSL FLIRT's search and ANTs'
`antsAI`, does the following on small, smoothed, isotropic copies of both images
(about 64 pixels across in 2D, 32 voxels in 3D):

1. candidate centres: the header alignment, image centres and centres of mass;
2. a grid of rotations about the fixed centre (every 15 degrees in 2D, single-axis
   turns up to 180 degrees plus a +-60 degree Euler grid in 3D), and in 2D with a
   scale-capable model a few zooms; each scored by the run's fixed evaluation
   (mutual information with an "outside" bin, `verify.Evaluation`);
3. the best few refined by a short coarse rigid / similarity optimisation, and the
   best of those returned as the stage's starting transform (fixed -> moving).

Cost is bounded by construction (a few hundred evaluations on ~4 000 points plus a
handful of short optimisations, run side by side on the cores): well under a second in
2D, about a second in 3D. Steps 1-2 alone (`find_candidates`, a quarter of a second on the
2 mm brain) serve the wrong-optimum check (`pose_check.py`), which refines only the
candidates its result cannot rule out.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import RegistrationCancelled
from regviewer.core.registration.verify import Evaluation

ANGLES_2D = tuple(range(0, 360, 15))
SCALES_2D = (0.8, 1.0, 1.25)
REFINE = 4  # candidates refined by a short optimisation
VOXELS_PER_STEP = 2.0  # averaged voxels kept per step of a coarse copy (at least)
_CACHE: dict[tuple, "SearchResult | Candidates"] = {}  # a few recent pairs; runs in several threads share it
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SearchResult:
    """The chosen pose as p -> A (p - c) + c + t, with what was learned on the way."""

    matrix: np.ndarray
    translation: np.ndarray
    center: np.ndarray
    score: float  # evaluation (MI, nats) at the coarse scale
    correlation: float  # Pearson correlation there: near +1 same modality, near -1 inverted contrast
    candidates: int
    linearity: float = 1.0  # r² / eta² there: near 1 when a straight line explains the intensity relation

    def transform(self, kind: str) -> sitk.Transform:
        """The pose as a transform of the stage's model (the closest one the model can hold)."""
        return as_kind(self.matrix, self.translation, self.center, kind)


def coarse(image: sitk.Image, across: int, threads: int = 0) -> sitk.Image:
    """A smoothed isotropic copy about `across` voxels along its longest physical axis (`threads`: ITK
    threads per filter, 0 for ITK's default; the same numbers either way).

    Averaged down first (at least two voxels kept per coarse step), then smoothed by what the
    averaging has not removed, as the pyramid does (`pyramid._make_level`): smoothing the full
    1 mm brain took 0.34 s per pair on one core, every run, for a 32-voxel copy.
    """
    dim = image.GetDimension()
    spacing, n = image.GetSpacing(), image.GetSize()
    extent = [(k - 1) * s for k, s in zip(n, spacing)]
    step = max(max(extent) / across, min(spacing))
    small_axis = min(n) < 4  # ITK's recursive Gaussian needs 4 voxels along every axis
    smooth, pre = image, [1] * dim
    if step > 1.5 * min(spacing) and not small_axis:
        pre = [max(1, min(int(step / (VOXELS_PER_STEP * sp)), k // 4)) for sp, k in zip(spacing, n)]
        if max(pre) > 1:
            smooth = sitk.BinShrink(image, pre)
        # averaging p voxels leaves a box blur of variance (p^2 - 1) / 12 voxels^2 along that axis
        sigmas = [math.sqrt(max((step / 2.0) ** 2 - sp * sp * (p * p - 1) / 12.0, 0.0)) for sp, p in zip(spacing, pre)]
        gaussian = sitk.SmoothingRecursiveGaussianImageFilter()
        gaussian.SetSigma(sigmas)
        if threads > 0:
            gaussian.SetNumberOfThreads(threads)
        smooth = gaussian.Execute(smooth)
    size = [max(2, int(math.ceil(e / step)) + 1) for e in extent]
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(size)
    resampler.SetOutputOrigin(image.GetOrigin())
    resampler.SetOutputDirection(image.GetDirection())
    resampler.SetOutputSpacing([step] * dim)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    # the averaged copy's outer voxel centres lie up to half a bin inside the image's: no zeros at its edge
    resampler.SetUseNearestNeighborExtrapolator(max(pre) > 1)
    if threads > 0:
        resampler.SetNumberOfThreads(threads)
    return resampler.Execute(smooth)


@dataclass(frozen=True)
class Candidates:
    """The coarse grid's best distinct poses (score, A, t for p -> A (p - c) + c + t), not yet refined.

    `fixed`, `moving` and `evaluation` are the small smoothed copies the poses were scored on.
    """

    fixed: sitk.Image
    moving: sitk.Image
    evaluation: Evaluation
    center: np.ndarray
    chosen: tuple
    count: int  # poses scored
    model: str  # what a refinement optimises: "rigid", or "similarity" for zoomed 2D pairs

    def refine(self, index: int, should_stop: Callable[[], bool] | None = None) -> sitk.Transform:
        """Candidate `index` after the short coarse optimisation (fixed -> moving)."""
        _, matrix, shift = self.chosen[index]
        return _refine(self.fixed, self.moving, matrix, shift, self.center, self.model, should_stop)


def search_pose(fixed: sitk.Image, moving: sitk.Image, kind: str = "rigid",
                start: sitk.Transform | None = None, should_stop: Callable[[], bool] | None = None) -> SearchResult:
    """The best coarse pose of `moving` onto `fixed` (see the module docstring); cached per pair.

    `should_stop` (checked between candidates and at every refinement iteration) ends the search
    early with `RegistrationCancelled`; nothing is cached then.
    """
    key = _key(fixed, moving, kind, start)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    if _partial(fixed, moving, start):
        # The moving image covers part of the fixed one (a slab, a detail): judge poses on the moving
        # image's points, all of which have a partner, and invert. From the larger side, most points map
        # outside for every pose and a wrong pose can score by lining up "outside" with the background.
        back = search_pose(moving, fixed, kind, should_stop=should_stop)
        forward = _affine(back.matrix, back.translation, back.center).GetInverse()
        center = np.asarray(_center_of_mass(coarse(fixed, _across(fixed))))
        matrix, shift = _matrix_shift(forward, center)
        result = SearchResult(matrix, shift, center, back.score, back.correlation, back.candidates, back.linearity)
        return _remember(key, result)
    found = _candidates(fixed, moving, kind, start, should_stop, key)
    # Each refinement is one single-threaded (reproducible) optimisation, independent of the others:
    # run them side by side on the cores; the results, kept in candidate order, do not depend on it.
    indices = range(len(found.chosen))
    with ThreadPoolExecutor(max_workers=max(1, min(len(indices), os.cpu_count() or 1))) as pool:
        refinements = list(pool.map(lambda i: found.refine(i, should_stop), indices))
    _stop_if(should_stop)
    best = None
    for refined in refinements:
        score = found.evaluation.score(refined)
        if best is None or score > best[0]:
            best = (score, refined)
    matrix, shift = _matrix_shift(best[1], found.center)
    r, eta2 = found.evaluation.relation(best[1])
    linearity = r * r / eta2 if eta2 and np.isfinite(eta2) and np.isfinite(r) else 0.0
    return _remember(key, SearchResult(matrix, shift, found.center, best[0], r, found.count, float(linearity)))


def find_candidates(fixed: sitk.Image, moving: sitk.Image, kind: str = "rigid",
                    should_stop: Callable[[], bool] | None = None, threads: int = 0) -> Candidates | None:
    """The scored, unrefined candidates of `search_pose` (cached per pair); None for a moving image that
    covers only part of the fixed one, which `search_pose` searches the other way round. `threads`: ITK
    threads per filter (0: ITK's default); 1 keeps a background search off the core a registration uses."""
    if _partial(fixed, moving, None):
        return None
    return _candidates(fixed, moving, kind, None, should_stop, _key(fixed, moving, kind, None), threads)


def _candidates(fixed: sitk.Image, moving: sitk.Image, kind: str, start: sitk.Transform | None,
                should_stop: Callable[[], bool] | None, key: tuple, threads: int = 0) -> Candidates:
    """Steps 1 and 2 of the module docstring: every pose of the grid scored, the best distinct kept."""
    with _CACHE_LOCK:
        hit = _CACHE.get(key + ("candidates",))
    if hit is not None:
        return hit
    dim = fixed.GetDimension()
    scaled = dim == 2 and kind in ("similarity", "affine")
    f, m = coarse(fixed, _across(fixed), threads), coarse(moving, _across(fixed), threads)
    evaluation = Evaluation(f, m, None, max_samples=4000 if dim == 2 else 6000, threads=threads)
    center = np.asarray(_center_of_mass(f))
    shifts = _candidate_shifts(f, m, center, start)
    rotations = _rotations(dim)
    scales = SCALES_2D if scaled else (1.0,)
    scored = []
    for (shift, rot, s) in itertools.product(shifts, rotations, scales):
        _stop_if(should_stop)
        matrix = rot * s
        scored.append((evaluation.score(_affine(matrix, shift, center)), matrix, shift))
    scored.sort(key=lambda r: -r[0])
    found = Candidates(f, m, evaluation, center, tuple(_distinct(scored, REFINE)), len(scored),
                       "similarity" if scaled else "rigid")
    return _remember(key + ("candidates",), found)


def _key(fixed: sitk.Image, moving: sitk.Image, kind: str, start: sitk.Transform | None) -> tuple:
    """The cache key of a pair: the images themselves (hashing them costs a tenth of smoothing them
    down on the 1 mm brain), whether zoom is searched, and the start."""
    scaled = fixed.GetDimension() == 2 and kind in ("similarity", "affine")
    return _digest(fixed), _digest(moving), scaled, None if start is None else tuple(start.GetParameters())


def _across(image: sitk.Image) -> int:
    return 64 if image.GetDimension() == 2 else 32


def _partial(fixed: sitk.Image, moving: sitk.Image, start: sitk.Transform | None) -> bool:
    return start is None and _volume(moving) < 0.5 * _volume(fixed)


def _stop_if(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise RegistrationCancelled("pose search stopped")


def clear_cache() -> None:
    """Forget the poses found so far (a benchmark timing what a pair seen for the first time costs)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _remember(key: tuple, result: "SearchResult | Candidates") -> "SearchResult | Candidates":
    """Keep a search's outcome for the pair (a repeated run on one pair searches once)."""
    with _CACHE_LOCK:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = result
    return result


def _volume(image: sitk.Image) -> float:
    return float(np.prod([n * s for n, s in zip(image.GetSize(), image.GetSpacing())]))


def _digest(image: sitk.Image) -> str:
    # ITK hashes the pixels without a numpy view (no MakeUnique copy); MD5, not ITK's default SHA1: a cache
    # key, and 5x faster (40 against 205 ms on an 8-megapixel photograph, on the main thread before `photo-2d`)
    h = hashlib.sha1(sitk.Hash(image, sitk.HashImageFilter.MD5).encode())
    h.update(repr((image.GetSize(), image.GetPixelIDValue(), image.GetOrigin(), image.GetSpacing(),
                   image.GetDirection())).encode())
    return h.hexdigest()


def _center_of_mass(image: sitk.Image) -> tuple[float, ...]:
    a = sitk.GetArrayViewFromImage(image).astype(np.float64)
    w = np.clip(a - np.percentile(a, 5), 0, None)
    if w.sum() <= 0:
        return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in image.GetSize()])
    index = [float((w * g).sum() / w.sum()) for g in np.indices(a.shape)][::-1]  # numpy z,y,x -> ITK x,y,z
    return image.TransformContinuousIndexToPhysicalPoint(index)


def _geometric_center(image: sitk.Image) -> np.ndarray:
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in image.GetSize()]))


def _candidate_shifts(f: sitk.Image, m: sitk.Image, center: np.ndarray, start: sitk.Transform | None) -> list:
    """Translations t (for p -> R (p - c) + c + t): centres of mass, image centres, the header (or `start`)."""
    shifts = [np.asarray(_center_of_mass(m)) - center, _geometric_center(m) - _geometric_center(f),
              np.zeros(f.GetDimension()) if start is None else np.asarray(start.TransformPoint(tuple(center))) - center]
    unique: list[np.ndarray] = []
    for s in shifts:
        if all(np.linalg.norm(s - u) > 2 * f.GetSpacing()[0] for u in unique):
            unique.append(s)
    return unique


def _rotations(dim: int) -> list[np.ndarray]:
    if dim == 2:
        return [np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
                for a in (math.radians(d) for d in ANGLES_2D)]
    out = []
    grid = (-60, -30, 0, 30, 60)
    for ax, ay, az in itertools.product(grid, grid, grid):
        out.append(_euler(ax, ay, az))
    for axis in range(3):
        for d in (90, -90, 180, 120, -120, 150, -150):
            angles = [0, 0, 0]
            angles[axis] = d
            out.append(_euler(*angles))
    return out


def _euler(ax: float, ay: float, az: float) -> np.ndarray:
    tx = sitk.Euler3DTransform((0, 0, 0), math.radians(ax), math.radians(ay), math.radians(az))
    return np.asarray(tx.GetMatrix()).reshape(3, 3)


def _affine(matrix: np.ndarray, shift: np.ndarray, center: np.ndarray) -> sitk.AffineTransform:
    tx = sitk.AffineTransform(len(center))
    tx.SetCenter([float(c) for c in center])
    tx.SetMatrix([float(v) for v in np.ravel(matrix)])
    tx.SetTranslation([float(v) for v in shift])
    return tx


def _matrix_shift(tx: sitk.Transform, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, t) of a linear transform written as p -> A (p - c) + c + t."""
    dim = len(center)
    c = tuple(float(v) for v in center)
    origin = np.asarray(tx.TransformPoint(c))
    cols = [np.asarray(tx.TransformPoint(tuple(np.add(c, np.eye(dim)[i])))) - origin for i in range(dim)]
    return np.column_stack(cols), origin - center


def _distinct(scored: list, n: int) -> list:
    """The `n` best candidates that are not near-duplicates of a better one (differ in pose)."""
    chosen: list = []
    for score, matrix, shift in scored:
        if all(np.abs(matrix - m).max() > 0.2 or np.linalg.norm(shift - s) > 1e-6 for _, m, s in chosen):
            chosen.append((score, matrix, shift))
        if len(chosen) == n:
            break
    return chosen


def _refine(f: sitk.Image, m: sitk.Image, matrix: np.ndarray, shift: np.ndarray, center: np.ndarray,
            kind: str, should_stop: Callable[[], bool] | None = None) -> sitk.Transform:
    """A short coarse optimisation (Mattes MI, every voxel) from one candidate pose."""
    tx = as_kind(matrix, shift, center, kind)
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfWorkUnits(1)  # reproducible
    method.SetMetricAsMattesMutualInformation(24)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=60,
                                                    relaxationFactor=0.5)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(tx, inPlace=True)
    if should_stop is not None:
        method.AddCommand(sitk.sitkIterationEvent, lambda: should_stop() and method.StopRegistration())
    try:
        method.Execute(f, m)
    except RuntimeError:  # too little overlap for this candidate: keep it as it was
        return as_kind(matrix, shift, center, kind)
    return tx


def as_kind(matrix: np.ndarray, shift: np.ndarray, center: np.ndarray, kind: str) -> sitk.Transform:
    """p -> A (p - c) + c + t as a transform of model `kind` (rotation and scale kept where the model can)."""
    dim = len(center)
    c = [float(v) for v in center]
    t = [float(v) for v in shift]
    if kind == "translation":
        return sitk.TranslationTransform(dim, tuple(np.asarray(_affine(matrix, shift, center).TransformPoint(tuple(c))) - c))
    if kind == "affine":
        return _affine(matrix, shift, center)
    u, s, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # keep a proper rotation
        u[:, -1] *= -1
        rotation = u @ vt
    scale = float(np.exp(np.mean(np.log(s))))
    if dim == 2:
        angle = math.atan2(rotation[1, 0], rotation[0, 0])
        if kind == "similarity":
            return sitk.Similarity2DTransform(scale, angle, t, c)
        return sitk.Euler2DTransform(c, angle, t)
    if kind == "similarity":
        tx = sitk.Similarity3DTransform()
        tx.SetCenter(c)
        tx.SetMatrix([float(v) for v in np.ravel(rotation)])
        tx.SetScale(scale)
        tx.SetTranslation(t)
        return tx
    tx = sitk.VersorRigid3DTransform() if kind == "versor" else sitk.Euler3DTransform()
    tx.SetCenter(c)
    tx.SetMatrix([float(v) for v in np.ravel(rotation)])
    tx.SetTranslation(t)
    return tx


__all__ = ["search_pose", "find_candidates", "Candidates", "SearchResult", "as_kind", "coarse"]
