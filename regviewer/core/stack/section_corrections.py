"""Hand corrections of aligned sections: a drag, a nudge or a landmark fit, as one 2D
linear map on the output grid, and the resampling that shows them.

Space and direction. Everything is in the output (aligned) frame, physical mm. A correction
C moves a section's content: what the aligned section showed at q it shows at C(q)
afterwards. The section's output -> section transform T becomes T o C^-1, the same
fixed -> moving convention as every other transform. Corrections are kept as 3x3
homogeneous matrices so that many small drag steps compose into one matrix (not a chain
of hundreds of transforms) and undo is a copy of a few numbers.

A landmark fit F maps points on the neighbour (fixed, output mm) to the same anatomy on
section k as it is shown (moving, output mm): F(p) ~ q. The correction that puts q onto p
is C = F^-1.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import LandmarkFitError
from regviewer.core.landmarks.fitting import LandmarkFit, fit
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet

FIT_MODELS = ("rigid", "similarity", "affine")


def rigid_matrix(centre: Sequence[float], angle_deg: float, dx: float, dy: float) -> np.ndarray:
    """The correction 'turn by angle_deg about centre, then shift by (dx, dy) mm'."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    c = np.asarray(centre, float)
    out = np.eye(3)
    out[:2, :2] = rot
    out[:2, 2] = c - rot @ c + (dx, dy)
    return out


def matrix_of(transform: sitk.Transform) -> np.ndarray:
    """The 3x3 homogeneous matrix of a 2D linear SimpleITK transform (read off three points)."""
    o = np.array(transform.TransformPoint((0.0, 0.0)))
    ex = np.array(transform.TransformPoint((1.0, 0.0))) - o
    ey = np.array(transform.TransformPoint((0.0, 1.0))) - o
    out = np.eye(3)
    out[:2, 0], out[:2, 1], out[:2, 2] = ex, ey, o
    return out


def as_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    tx = sitk.AffineTransform(2)
    tx.SetMatrix(tuple(float(v) for v in matrix[:2, :2].ravel()))
    tx.SetTranslation(tuple(float(v) for v in matrix[:2, 2]))
    return tx


def corrected(base: sitk.Transform, correction: np.ndarray) -> sitk.Transform:
    """T o C^-1: the output -> section transform of a section corrected by C."""
    if np.allclose(correction, np.eye(3)):
        return base
    return sitk.CompositeTransform([base, as_transform(np.linalg.inv(correction))])


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, float).reshape(-1, 2)
    return pts @ matrix[:2, :2].T + matrix[:2, 2]


def fit_correction(pairs: Sequence[LandmarkPair], model: str) -> tuple[np.ndarray, LandmarkFit]:
    """Fit `model` (rigid, similarity or affine) to pairs of (neighbour point, section k
    point as shown), both output mm; return the correction C = F^-1 and the fit (its
    residuals and flags are those of F, in mm on the neighbour's side)."""
    if model not in FIT_MODELS:
        raise LandmarkFitError(f"a section correction is {', '.join(FIT_MODELS)}, not {model!r}")
    result = fit(LandmarkSet(2, pairs), model)
    return np.linalg.inv(matrix_of(result.transform)), result


def resample_sections(jobs: Sequence[tuple[int, int, sitk.Image, sitk.Transform]], grid: sitk.Image,
                      stop: Callable[[], bool] = lambda: False) -> dict[int, tuple[int, np.ndarray]] | None:
    """Resample each (index, version, section image, output -> section transform) onto the
    output grid; {index: (version, float32 array)}. Returns None as soon as `stop()` is
    true (a newer correction made this work moot). Safe to run off the GUI thread: it
    reads its arguments only."""
    out: dict[int, tuple[int, np.ndarray]] = {}
    for index, version, image, transform in jobs:
        if stop():
            return None
        moved = sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        out[index] = (version, sitk.GetArrayFromImage(moved))
    return out


__all__ = ["FIT_MODELS", "as_transform", "corrected", "fit_correction", "map_points", "matrix_of",
           "resample_sections", "rigid_matrix"]
