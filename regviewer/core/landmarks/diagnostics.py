"""Which landmark pairs look misplaced, and which directions the pairs cannot pin down.

Flags (`flag_pairs`)
  Linear models: the externally studentised residual of each pair, generalised to a
  d-dimensional point (Cook & Weisberg 1982, ch. 2; the model linearised at the fit for
  rigid and similarity). A pair at the edge of the cloud (high leverage h_ii) pulls the
  fit towards itself, so its own residual is small and its leave-one-out error large
  whether it is right or wrong; dividing by (I - H_ii) and by the scatter of the OTHER
  pairs puts every pair on one scale. Under isotropic Gaussian clicking noise the
  statistic T_i = r_i / (d s_(i)^2) follows F(d, nd - p - d); a pair is flagged when its
  chance is below ALPHA / n (Bonferroni: about one clean set in fifty gets a flag)
  and it is at least MIN_FLAG_MM off. One pair at a time, worst first, like Grubbs'
  test; at most a fifth of the pairs.
  tps / bspline: an interpolating spline has no residuals, so a pair is flagged when
  it is far off both from the overall affine trend (the test above, for the affine part)
  and from where its neighbours place it (its thin-plate-spline leave-one-out error over
  NEIGHBOUR_TIMES the median of the others'). A smooth real deformation fails the first
  test but passes the second; an isolated mistake fails both. Above NEIGHBOUR_EXACT_MAX
  pairs "its neighbours" are its NEIGHBOURS nearest (a KD-tree and a small local spline),
  and "the others" a spread sample of NEIGHBOUR_SAMPLE pairs.

Memory and time are linear in the number of pairs: no n × n matrix is formed (the hat
matrix's diagonal blocks come from the thin design basis, O(n p²)).

Warnings (`geometry_warnings`)
  Pairs whose fixed points lie close to one plane (3D) or one line leave the motion
  across it to the noise: a sentence says so, and what to add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.02  # family-wise chance that a clean set gets a flag (Bonferroni over its pairs)
MIN_FLAG_MM = 1e-3  # below this nobody clicked wrong: floating-point noise on exact data
THIN = 0.1  # a cloud thinner than this fraction of its spread leaves that direction a guess
NEIGHBOUR_TIMES = 2.0  # tps/bspline: a flagged pair is this many times further from its neighbours' prediction
_LINEAR = ("translation", "rigid", "similarity", "affine")
NEIGHBOUR_EXACT_MAX = 1000  # above this many pairs, "its neighbours" are its NEIGHBOURS nearest (KD-tree)
NEIGHBOURS = 30  # pairs in each local spline above NEIGHBOUR_EXACT_MAX
NEIGHBOUR_SAMPLE = 300  # pairs whose local error sets the typical value above NEIGHBOUR_EXACT_MAX


@dataclass(frozen=True)
class Flag:
    position: int  # into the arrays given to `flag_pairs`
    reason: str


# --- leverage-aware test for linear models -----------------------------------------------------
def _jacobian(model: str, centred: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(n, d, p): derivative of each predicted moving point with respect to the model's
    parameters at the fit (translation, then rotation, scale or matrix entries)."""
    n, d = centred.shape
    eye = np.broadcast_to(np.eye(d), (n, d, d))
    if model == "translation":
        return np.array(eye)
    if model == "affine":
        # d(A x)/dA_kl = e_k x_l
        blocks = np.einsum("ik,nl->nikl", np.eye(d), centred).reshape(n, d, d * d)
        return np.concatenate([eye, blocks], axis=2)
    v = centred @ a.T  # rotated (and scaled) positions about the centre
    if d == 2:
        rot = np.stack([-v[:, 1], v[:, 0]], axis=1)[:, :, None]
    else:  # d(exp([w]x) v)/dw = -[v]x
        rot = np.zeros((n, 3, 3))
        rot[:, 0, 1], rot[:, 0, 2] = v[:, 2], -v[:, 1]
        rot[:, 1, 0], rot[:, 1, 2] = -v[:, 2], v[:, 0]
        rot[:, 2, 0], rot[:, 2, 1] = v[:, 1], -v[:, 0]
    parts = [eye, rot] + ([v[:, :, None]] if model == "similarity" else [])
    return np.concatenate(parts, axis=2)


@dataclass(frozen=True)
class Studentised:
    loo_mm: np.ndarray  # |(I - H_ii)^-1 e_i|: how far the others' fit misses pair i
    chance: np.ndarray  # per-pair tail probability of the statistic (NaN when untestable)
    scatter_mm: np.ndarray  # RMS 3D (or 2D) clicking error of the other pairs, s_(i) sqrt(d)


def studentised(model: str, fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray,
                a: np.ndarray, b: np.ndarray) -> Studentised | None:
    """Externally studentised residuals of the fit moving ≈ A fixed + b (None: too few pairs)."""
    n, d = fixed.shape
    w = weights / weights.mean()
    centre = (w / w.sum()) @ fixed
    centred = fixed - centre
    jac = _jacobian(model, centred, a)
    radius = float(np.sqrt(np.mean(np.sum(centred**2, axis=1)))) or 1.0
    jac[:, :, d:] /= radius  # rotation/matrix columns on the translation's scale (p and H do not change)
    jac = jac * np.sqrt(w)[:, None, None]
    flat = jac.reshape(n * d, jac.shape[2])
    # Parameter directions the points barely determine (an affine's through-plane stretch
    # when the points lie near one plane) are left out: they would fit each pair's noise
    # exactly and hide a mistake. p counts the directions kept.
    values, vectors = np.linalg.eigh(flat.T @ flat)
    keep = values > (THIN**2) * values.max()
    p = int(keep.sum())
    dof = n * d - p - d
    if dof < 1:
        return None
    # The hat matrix H = basis basisᵀ is (nd × nd): 1.8 GB at 5000 3D pairs. Only its
    # d × d diagonal blocks and products with a vector are needed, so it is never formed.
    basis = (flat @ vectors[:, keep] / np.sqrt(values[keep])).reshape(n, d, p)
    if model == "affine" or model == "translation":  # linear in its parameters: the residual within the kept space
        y = moving * np.sqrt(w)[:, None]
        resid = y - np.einsum("ndp,p->nd", basis, np.einsum("ndp,nd->p", basis, y))
    else:
        resid = (moving - (fixed @ a.T + b)) * np.sqrt(w)[:, None]
    rss = float(np.sum(resid**2))
    blocks = np.eye(d) - np.einsum("nip,njp->nij", basis, basis)  # I - H_ii for every pair at once
    try:
        loo = np.linalg.solve(blocks, resid[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:  # some pair alone determines a direction: NaN for it only
        loo = np.full((n, d), np.nan)
        for i in range(n):
            try:
                loo[i] = np.linalg.solve(blocks[i], resid[i])
            except np.linalg.LinAlgError:
                pass
    r = np.einsum("nd,nd->n", resid, loo)
    rest = np.maximum(rss - r, 0.0)
    s2 = rest / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r / (d * s2)
        chance = np.where(np.isfinite(t), stats.f.sf(t, d, dof), np.nan)
    unweighted_loo = np.linalg.norm(loo, axis=1) / np.sqrt(w)
    return Studentised(unweighted_loo, chance, np.sqrt(s2 * d))


def linear_leave_one_out(model: str, fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Exact leave-one-out errors of a weighted least-squares translation or affine, all at
    once: without pair k the fit misses it by e_k / (1 - h_k) (e: residual, h: leverage)."""
    n, dim = fixed.shape
    if model == "translation":  # moving - fixed ≈ b
        x, y = np.ones((n, 1)), moving - fixed
    else:
        x, y = np.hstack([fixed - fixed.mean(axis=0), np.ones((n, 1))]), moving
    w = weights / weights.sum()
    gram_inv = np.linalg.pinv((x * w[:, None]).T @ x)
    beta = gram_inv @ ((x * w[:, None]).T @ y)
    lever = np.einsum("ij,jk,ik->i", x, gram_inv, x) * w
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = np.linalg.norm(y - x @ beta, axis=1) / (1 - lever)
    loo[~np.isfinite(loo) | (lever > 1 - 1e-9)] = math.nan  # nothing else determines that pair
    return loo


def _linear_flags(model, fixed, moving, weights, solve, check) -> list[Flag]:
    active = np.arange(len(fixed))
    flags: list[Flag] = []
    while len(flags) < max(1, len(fixed) // 5):
        check()
        a, b = solve(model, fixed[active], moving[active], weights[active])
        st = studentised(model, fixed[active], moving[active], weights[active], a, b)
        if st is None:
            break
        m = len(active)
        adjusted = np.minimum(st.chance * m, 1.0)  # Bonferroni over the pairs tested
        candidates = np.flatnonzero((adjusted < ALPHA) & (st.loo_mm >= MIN_FLAG_MM))
        if not len(candidates):
            break
        k = int(candidates[np.argmin(adjusted[candidates])])
        flags.append(Flag(int(active[k]), _reason(st.loo_mm[k], m - 1, st.scatter_mm[k], adjusted[k], "place it")))
        active = np.delete(active, k)
    return flags


def _reason(off_mm: float, others: int, scatter_mm: float, adjusted: float, verb: str) -> str:
    odds = f"1 in {_round_odds(1.0 / adjusted)}" if adjusted > 0 else "less than 1 in a million"
    return (f"{off_mm:.1f} mm from where the other {others} pairs {verb}; their clicking scatter is "
            f"{scatter_mm:.1f} mm, so a correct pair this far off is a {odds} chance")


def _round_odds(x: float) -> str:
    if x >= 1e6:
        return "a million"
    digits = max(0, int(math.floor(math.log10(max(x, 1.0)))) - 1)
    return f"{int(round(x, -digits)):,}"


# --- tps / bspline ---------------------------------------------------------------------------------
def _spline_flags(fixed, moving, weights, solve, tps_loo, check) -> list[Flag]:
    active = np.arange(len(fixed))
    flags: list[Flag] = []
    while len(flags) < max(1, len(fixed) // 5):
        check()
        m = len(active)
        a, b = solve("affine", fixed[active], moving[active], weights[active])
        st = studentised("affine", fixed[active], moving[active], weights[active], a, b)
        if st is None:
            break
        adjusted = np.minimum(st.chance * m, 1.0)
        k = int(np.nanargmin(adjusted)) if np.any(np.isfinite(adjusted)) else -1
        if k < 0 or not adjusted[k] < ALPHA:
            break  # every pair is within the scatter of the overall trend
        if m <= NEIGHBOUR_EXACT_MAX:
            loo = tps_loo(fixed[active], moving[active])
            others = np.delete(loo, k)
        else:
            loo, others = _local_loo(fixed[active], moving[active], k)
        typical = float(np.median(others[np.isfinite(others)])) if np.any(np.isfinite(others)) else math.nan
        if not (loo[k] > max(NEIGHBOUR_TIMES * typical, MIN_FLAG_MM)):
            break  # off the trend, but where its neighbours are too: a real local deformation
        flags.append(Flag(int(active[k]),
                          f"{loo[k]:.1f} mm from where its neighbours place it (typical {typical:.1f} mm) and off "
                          f"the overall trend of the other {m - 1} pairs (a 1 in {_round_odds(1.0 / max(adjusted[k], 1e-6))} "
                          f"chance for a correct pair)"))
        active = np.delete(active, k)
    return flags


def _local_loo(fixed: np.ndarray, moving: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each pair's NEIGHBOURS nearest neighbours place it (a thin-plate spline through
    them, the pair itself left out), for pair `k` and an evenly spread sample of
    NEIGHBOUR_SAMPLE others: (errors indexed like `fixed`, NaN where not computed; the
    sample's errors). The whole-set spline's leave-one-out needs an n × n system; this
    needs a KD-tree and small local systems, so 100,000 pairs cost what 1000 do."""
    from scipy.interpolate import RBFInterpolator
    from scipy.spatial import cKDTree

    n = len(fixed)
    sample = np.unique(np.linspace(0, n - 1, NEIGHBOUR_SAMPLE).round().astype(int))
    sample = sample[sample != k]
    rows = np.concatenate([[k], sample])
    tree = cKDTree(fixed)
    _, near = tree.query(fixed[rows], k=min(NEIGHBOURS + 1, n))
    loo = np.full(n, math.nan)
    for row, neighbours in zip(rows, near):
        others = neighbours[neighbours != row][:NEIGHBOURS]
        try:
            spline = RBFInterpolator(fixed[others], moving[others], kernel="thin_plate_spline", degree=1)
            loo[row] = float(np.linalg.norm(spline(fixed[row:row + 1])[0] - moving[row]))
        except (np.linalg.LinAlgError, ValueError):
            continue  # the neighbours are degenerate (e.g. on one plane): no estimate here
    return loo, loo[sample]


def flag_pairs(model: str, fixed: np.ndarray, moving: np.ndarray, weights: np.ndarray, solve, tps_loo,
               check=lambda: None) -> list[Flag]:
    """Likely misplaced pairs, each with a sentence saying why. `solve(model, fixed, moving,
    weights) -> (A, b)` is the linear least-squares fit; `tps_loo(fixed, moving)` the
    thin-plate spline's leave-one-out errors; `check()` runs before each test (it raises
    to abandon the fit)."""
    if model in _LINEAR:
        return sorted(_linear_flags(model, fixed, moving, weights, solve, check), key=lambda f: f.position)
    return sorted(_spline_flags(fixed, moving, weights, solve, tps_loo, check), key=lambda f: f.position)


# --- directions the pairs cannot constrain -----------------------------------------------------------
def geometry_warnings(model: str, fixed: np.ndarray) -> list[str]:
    """Plain sentences about directions the fixed points leave undetermined: all near one
    plane (3D; affine, tps, bspline: through-plane stretch and shear are a guess) or near
    one line (any model but translation: rotation about it, or stretch across it)."""
    n, d = fixed.shape
    if model == "translation" or n < 2:
        return []
    centred = fixed - fixed.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    if s[0] <= 0:
        return []
    extent = float(np.ptp(centred @ vt[0]))
    out = []
    # near one line: everything within a thin tube about the main axis
    across_line = float(np.max(np.linalg.norm(centred - np.outer(centred @ vt[0], vt[0]), axis=1)))
    if across_line < THIN * extent and (d == 3 or model in ("affine", "tps", "bspline")):
        what = "rotation about that line" if model in ("rigid", "similarity") and d == 3 else "stretch and shear across it"
        out.append(f"The {n} fixed points lie within {across_line:.1f} mm of one line ({extent:.0f} mm long): "
                   f"{what} is a guess. Add pairs away from the line.")
    elif d == 3 and model in ("affine", "tps", "bspline"):
        through = float(np.max(np.abs(centred @ vt[2])))
        if through < THIN * extent:
            out.append(f"The {n} fixed points lie within {through:.1f} mm of one plane while spreading "
                       f"{extent:.0f} mm across it: stretch and tilt through that plane are a guess, so "
                       f"through-plane alignment may be off. Add pairs above and below it (other slices).")
    return out


__all__ = ["ALPHA", "Flag", "Studentised", "flag_pairs", "geometry_warnings", "linear_leave_one_out", "studentised"]
