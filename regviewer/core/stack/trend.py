"""Remove the slow trends that neighbour registration puts into a stack's section transforms.

Registering neighbours cannot tell a changing anatomy from a misplaced section: a brain
whose cross-section shrinks towards its top is shrunk section after section, an oblique
structure is "straightened", and the error adds up so that it grows with the distance
from the anchor (the "banana" effect), whatever joint fit is used (every pair sees the
same bias). What undoes it is an assumption about the cutting, not the images:

- **stretch** (default): each section's stretch and shear (cutting compression, mounting,
  the scanner) is its own, not shared with its neighbours, so the part of the solved
  stretch that varies SMOOTHLY along the stack is the registration following the
  anatomy's size and shape, and is taken out (a robust Gaussian-weighted local line over
  `sigma` sections, LOWESS-like, without the torn sections, so one does not spread). The random per-section stretch
  stays corrected. A section's stretch scatters little from section to section, so its
  trend is well determined.
- **pose** (opt-in, on top of stretch): sections are cut and mounted one by one, so their
  true angles and shifts have no trend along the stack; a quadratic in the section index
  (through the anchor: a steady drift and a bend, the banana) fitted to the solved angle
  and shift is taken out. The mounting scatter makes it uncertain (for +-15 px of random
  shift over 24 sections the slope is known to about 0.25 px per section only), so each
  coefficient b is shrunk by max(0, 1 - (2 se)^2 / b^2), se its standard error from the
  scatter around the fit (with 1 se instead of 2 it removed more noise than trend on
  loosely mounted stacks). It pays off for tightly mounted sections and long stacks; on
  short, loosely mounted stacks it adds about as much error as it removes.

Neither holds when the stack really was stretched or turned progressively (a block face
imaged by a camera that moved steadily): then use "off".

Symbols: A_k(x) = M_k x + t_k maps the output frame to section k (fixed -> moving); c is
the centre of the output grid; M_k = R(theta_k) S_k (polar decomposition, S_k symmetric);
u_k = R(theta_k)^T (A_k(c) - c) is the shift in the output frame. A drift applied on the
output side, A_k = A_true_k o E_k with E_k(x) = R(eps) S (x - c) + c + e, puts S into S_k,
eps into theta_k and (to first order) e into u_k, while random mounting adds independent
noise to theta_k and u_k only. The fitted E_k is removed as A_k o E_k^-1; the anchor keeps
its place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regviewer.core.stack.solve import Affine, nearest_rigid

TREND_MODES = ("off", "stretch", "pose")
ROBUST_ROUNDS = 2
# The pose trend's terms are shrunk as if their standard error were twice what the scatter
# says: a term must stand about 2 standard errors clear of noise to be (partly) removed.
POSE_CAUTION = 2.0
STRETCH_SIGMA = 4.0  # sections: the stretch trend is what varies more slowly than this


@dataclass(frozen=True)
class Trend:
    """What was taken out: the mode, the largest change of a section's area (fraction) and
    of its shift at the grid centre (output units), and the pose trend's slopes per section
    and curvatures per section squared (degrees, output units) when it was removed."""

    mode: str
    max_area_change: float = 0.0
    max_shift_change: float = 0.0
    slopes: tuple[float, float, float] = (0.0, 0.0, 0.0)
    curvatures: tuple[float, float, float] = (0.0, 0.0, 0.0)  # per section squared

    def to_dict(self) -> dict:
        return {"mode": self.mode, "max_area_change": self.max_area_change,
                "max_shift_change": self.max_shift_change, "slope_angle_deg": self.slopes[0],
                "slope_shift_x": self.slopes[1], "slope_shift_y": self.slopes[2],
                "curvature_angle_deg": self.curvatures[0], "curvature_shift_x": self.curvatures[1],
                "curvature_shift_y": self.curvatures[2]}


def mode_of(value) -> str:
    """A `remove_trend` value as a mode name (True = 'stretch', False/None = 'off')."""
    if value is True:
        return "stretch"
    if value is False or value is None:
        return "off"
    if value not in TREND_MODES:
        from regviewer.core.errors import ParameterError

        raise ParameterError(f"remove_trend must be one of {', '.join(TREND_MODES)} (or True/False), not {value!r}")
    return value


def pose(m: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(theta in radians, s_xx - 1, s_xy, s_yy - 1, u_x, u_y) of A(x) = m x + t about the
    centre c, where m = R(theta) S (polar decomposition, S symmetric)."""
    r = nearest_rigid(m)
    theta = float(np.arctan2(r[1, 0], r[0, 0]))
    stretch = r.T @ m
    u = r.T @ (m @ c + t - c)
    return np.array([theta, stretch[0, 0] - 1.0, 0.5 * (stretch[0, 1] + stretch[1, 0]), stretch[1, 1] - 1.0,
                     u[0], u[1]])


def remove_trend(transforms: dict[int, Affine], anchor: int, centre: np.ndarray, mode="stretch",
                 sigma: float = STRETCH_SIGMA, exclude: set[int] | frozenset = frozenset()
                 ) -> tuple[dict[int, Affine], Trend]:
    """The transforms (section index -> (M, t), output -> section) with the trend along the
    stack taken out (see the module docstring). `exclude`: sections (torn, failed) left out
    of the pose fit, though still corrected. The anchor is unchanged; fewer than 4
    sections are returned as they are."""
    mode = mode_of(mode)
    c = np.asarray(centre, float)
    keys = sorted(transforms)
    if mode == "off" or len(keys) < 4 or anchor not in transforms:
        return dict(transforms), Trend(mode)
    poses = np.array([pose(*transforms[k], c) for k in keys])
    used = [i for i, k in enumerate(keys) if k not in exclude]
    stretch = _local_linear(np.array(keys, float), poses[:, 1:4], sigma, used=used)
    stretch -= stretch[keys.index(anchor)]
    coefs = np.zeros((3, 2))  # (angle, u_x, u_y) x (linear, quadratic) in (k - anchor)
    if mode == "pose":
        pos = np.array([keys[i] for i in used], float) - anchor
        coefs = np.array([_shrunk_quadratic(pos, poses[used, p]) for p in (0, 4, 5)])
    out: dict[int, Affine] = {}
    worst_area = worst_shift = 0.0
    for i, k in enumerate(keys):
        eps, ex, ey = coefs @ np.array([k - anchor, (k - anchor) ** 2], float)
        sxx, sxy, syy = stretch[i]
        # E(x) = R(eps) S (x - c) + c + e;  A o E^-1 (x) = M S^-1 R(-eps) (x - c - e) + M c + t
        m, t = transforms[k]
        s_mat = np.array([[1.0 + sxx, sxy], [sxy, 1.0 + syy]])
        back = np.linalg.inv(s_mat) @ np.array([[np.cos(eps), np.sin(eps)], [-np.sin(eps), np.cos(eps)]])
        out[k] = (m @ back, m @ (c - back @ (c + np.array([ex, ey]))) + t)
        worst_area = max(worst_area, abs(float(np.linalg.det(s_mat)) - 1.0))
        worst_shift = max(worst_shift, float(np.hypot(ex, ey)))
    return out, Trend(mode, worst_area, worst_shift, (float(np.degrees(coefs[0, 0])), float(coefs[1, 0]),
                                                      float(coefs[2, 0])),
                      (float(np.degrees(coefs[0, 1])), float(coefs[1, 1]), float(coefs[2, 1])))


def _local_linear(k: np.ndarray, values: np.ndarray, sigma: float, rounds: int = ROBUST_ROUNDS,
                  used: list[int] | None = None) -> np.ndarray:
    """Each column of `values` smoothed along k by a Gaussian-weighted local straight line
    (a plain Gaussian would flatten a steady trend at the ends of the stack), made robust
    as LOWESS is (bisquare weights on the residuals, 6 MADs): a few sections whose stretch
    jumps (a failed pair, a torn section) do not bend the trend for the others. Rows not
    in `used` get a trend value but do not shape it."""
    out = np.empty_like(values)
    for col in range(values.shape[1]):
        v = values[:, col]
        robust = np.ones_like(v)
        if used is not None:
            robust[[i for i in range(len(v)) if i not in set(used)]] = 0.0
        for _ in range(rounds + 1):
            fit = np.empty_like(v)
            for i, ki in enumerate(k):
                d = k - ki
                w = np.exp(-0.5 * (d / sigma) ** 2) * robust
                x = np.stack([np.ones_like(d), d], axis=1) * np.sqrt(w)[:, None]
                fit[i] = np.linalg.lstsq(x, v * np.sqrt(w), rcond=None)[0][0]
            res = v - fit
            mad = float(np.median(np.abs(res[robust > 0]))) if np.any(robust > 0) else 0.0
            if mad <= 1e-12:
                break
            robust = np.where(robust > 0, np.clip(1.0 - (res / (6.0 * mad)) ** 2, 0.0, None) ** 2, 0.0)
        out[:, col] = fit
    return out


def _shrunk_quadratic(k: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(b1, b2) of values ~ a + b1 k + b2 k^2, each shrunk towards 0 by its own uncertainty
    (positive-part James-Stein: b (1 - s^2 / b^2) with s = POSE_CAUTION x se, 0 when the
    scatter cannot tell it from noise)."""
    if len(k) < 5:
        return np.zeros(2)
    x = np.stack([np.ones_like(k), k, k * k], axis=1)
    coef, *_ = np.linalg.lstsq(x, values, rcond=None)
    cov = float(np.sum((values - x @ coef) ** 2)) / (len(k) - 3) * np.linalg.pinv(x.T @ x)
    out = []
    for j in (1, 2):
        b, se2 = float(coef[j]), float(cov[j, j]) * POSE_CAUTION ** 2
        out.append(0.0 if b * b <= se2 else b * (1.0 - se2 / (b * b)))
    return np.array(out)


__all__ = ["Trend", "TREND_MODES", "STRETCH_SIGMA", "mode_of", "pose", "remove_trend"]
