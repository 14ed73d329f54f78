"""Is a result stuck in a wrong optimum? The coarse pose search answers, refining only what can tell.

A pipeline that starts from image centres alone (every named preset but photo-2d; `auto` and
photo-2d start from the pose search itself) may land in a wrong optimum, e.g. an image turned
180 degrees, and look converged. The coarse pose search (`search.py`) scores a grid of poses and refines its best
few distinct ones by a short coarse optimisation; one that then clearly beats the result shows
the result is wrong (`verify.StageVerifier.compare_alternative`).

The refinements are most of the search's cost (a quarter of a second each on the 2 mm brain),
and on a good result each of them only climbs back to the result. So a candidate is refined
only when the straight path from it to the result does not climb all the way: scored on the
coarse images at evenly spaced poses between the two (rotation interpolated as a rotation,
the rest of the matrix and the shift linearly), every pose must score higher than the one
before and the result highest of all. Such a candidate lies on the result's own slope. Any
dip or plateau on the way, a pose there scoring above the result, a candidate scoring at least
as well as the result: the candidate is refined as before. A wrong optimum 15 degrees from
the right pose (rigid-25-3d under `affine-mi`, before its levels regrew a creeping step) shows
such a bump on the path from the right candidate. A result with a deformable stage is judged
by its linear stages (`linear_part`); one without any has every candidate refined.

The grid is scored on the second core while the stages run. Once the result is known, the
candidates that need refining are refined side by side on both cores and read best first, until
one clearly beats the result (the verdict: wrong optimum) or none is left; the rest stop. Nothing
is refined in advance: on a good result every such refinement would be thrown away, and it would
take the core the stages' own background work (pyramid levels, evaluation) runs on. Which candidates
count, and in which order, is decided from the result alone and every refinement is deterministic,
so the verdict and its figures do not depend on timing.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from regviewer.core.errors import RegistrationCancelled
from regviewer.core.registration.pyramid import in_background
from regviewer.core.registration.search import (Candidates, SearchResult, _affine, _matrix_shift, find_candidates,
                                                search_pose)

PATH_STEPS = 6  # poses scored between a candidate and the result


class WrongOptimumCheck:
    """Started with a run (`fixed`, `moving` as the stages see them); asked at its end with the result."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, should_stop: Callable[[], bool]) -> None:
        self.kind = "similarity" if fixed.GetDimension() == 2 else "rigid"
        self._should_stop = should_stop
        # Candidates; a SearchResult for a partial field of view; None when ITK refused the images
        self.future = in_background(self._find, fixed, moving)

    def alternative_to(self, result: sitk.Transform, beats: Callable[[sitk.Transform], bool]) -> sitk.Transform | None:
        """The first candidate, best first, whose refinement `beats` the result (fixed -> moving); None when
        none does or needs refining, the run was cancelled or ITK refused the images."""
        found = self.future.result()
        if found is None or self._should_stop():
            return None
        if isinstance(found, SearchResult):  # a partial field of view: the whole search's pose
            pose = found.transform(self.kind)
            return pose if beats(pose) else None
        wanted = needs_refining(found, result)
        if not wanted:
            return None
        done = threading.Event()  # set once the verdict is in: refinements still queued or running stop

        def refine(index: int) -> sitk.Transform | None:
            stop = lambda: done.is_set() or self._should_stop()  # noqa: E731
            tx = None if stop() else found.refine(index, stop)
            return None if stop() else tx

        # Each refinement is one single-threaded (reproducible) optimisation; the stages are done, so
        # they run side by side on the cores, and are read best first whatever finishes first.
        with ThreadPoolExecutor(max_workers=max(1, min(len(wanted), os.cpu_count() or 1))) as pool:
            jobs = [pool.submit(refine, i) for i in wanted]
            try:
                for job in jobs:
                    refined = job.result()
                    if refined is None:  # cancelled on the way
                        return None
                    if beats(refined):
                        return refined
            finally:
                done.set()
        return None

    def result(self) -> "Candidates | SearchResult | None":
        """Wait for the background search, as for a future: a run waits for it before it returns (a
        thread still inside ITK when the process exits aborts it)."""
        return self.future.result()

    def _find(self, fixed: sitk.Image, moving: sitk.Image) -> Candidates | SearchResult | None:
        try:
            found = find_candidates(fixed, moving, self.kind, self._should_stop, threads=1)
            if found is None:  # a partial field of view is searched the other way round, in full
                found = search_pose(fixed, moving, self.kind, should_stop=self._should_stop)
        except (RuntimeError, RegistrationCancelled):  # RuntimeError: a degenerate image ITK refuses to smooth
            return None
        return found


def needs_refining(found: Candidates, result: sitk.Transform) -> list[int]:
    """Indices of the candidates that do not lie on `result`'s own slope (see the module docstring)."""
    everything = list(range(len(found.chosen)))
    pose = linear_part(result)
    if pose is None:
        return everything
    evaluation, center = found.evaluation, found.center
    top = evaluation.score(pose)
    matrix, shift = _matrix_shift(pose, center)
    return [i for i, (score, m, t) in enumerate(found.chosen)
            if not climbs_to(evaluation.score, (m, t), (matrix, shift), center, score, top)]


def linear_part(result: sitk.Transform) -> sitk.Transform | None:
    """The pose of a result: itself when linear; for a composite of linear stages and deformable ones
    (affine then B-spline), its linear stages alone, in order, since a deformable stage only bends
    the pose locally and cannot move a result out of a wrong optimum of the pose. None when the result
    has no linear stage (a deformable stage alone: no pose to judge, every candidate is refined)."""
    if result.IsLinear():
        return result
    linear = [t for t in _parts(result) if t.IsLinear() and t.GetName() != "IdentityTransform"]
    if not linear:
        return None
    pose = sitk.CompositeTransform(result.GetDimension())
    for t in linear:  # the same order: ITK applies the last added first
        pose.AddTransform(t)
    return pose


def _parts(tx: sitk.Transform) -> list[sitk.Transform]:
    """A transform's leaves, nested composites opened, in the composite's order."""
    if tx.GetName() != "CompositeTransform":
        return [tx]
    composite = sitk.CompositeTransform(tx)
    return [leaf for i in range(composite.GetNumberOfTransforms()) for leaf in _parts(composite.GetNthTransform(i))]


def climbs_to(score: Callable[[sitk.Transform], float], start: tuple, end: tuple, center: np.ndarray,
              start_score: float, end_score: float, steps: int = PATH_STEPS) -> bool:
    """True when poses p -> A (p - c) + c + t on the straight path from `start` = (A, t) to `end` score
    strictly higher step by step, the end highest."""
    if start_score >= end_score:
        return False
    path = _path(start, end, steps)
    if path is None:
        return False
    previous = start_score
    for matrix, shift in path:
        value = score(_affine(matrix, shift, center))
        if not value > previous:
            return False
        previous = value
    return end_score > previous


def _path(start: tuple, end: tuple, steps: int) -> list | None:
    """`steps` poses evenly between two (rotation by its angle, the rest linearly); None for a reflection."""
    (a0, t0), (a1, t1) = start, end
    (r0, s0), (r1, s1) = _polar(a0), _polar(a1)
    if r0 is None or r1 is None:
        return None
    relative = r0.T @ r1
    out = []
    for k in range(1, steps + 1):
        f = k / (steps + 1)
        out.append((r0 @ _rotation_part(relative, f) @ ((1 - f) * s0 + f * s1), (1 - f) * t0 + f * t1))
    return out


def _rotation_part(relative: np.ndarray, f: float) -> np.ndarray:
    """The rotation `relative` turned only the fraction `f` of its angle."""
    if len(relative) == 2:
        a = f * math.atan2(relative[1, 0], relative[0, 0])
        return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return Rotation.from_rotvec(f * Rotation.from_matrix(relative).as_rotvec()).as_matrix()


def _polar(matrix: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """(R, S) with matrix = R S, R a rotation and S symmetric; R is None for a reflection."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, dtype=float))
    rotation = u @ vt
    return (rotation if np.linalg.det(rotation) > 0 else None), vt.T @ np.diag(s) @ vt


__all__ = ["WrongOptimumCheck", "needs_refining", "climbs_to"]
