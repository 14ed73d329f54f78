"""A joint least-squares fit of every section's transform from pairwise registrations.

Chaining neighbour registrations (section k+1 onto k onto k-1 ...) lets each small error
carry on to every later section: the stack drifts and a curved object straightens or
bends ("banana"). TrakEM2's answer, used here, is to register each section with more than
one neighbour (k+1 and k+2) and fit all transforms at once so that they agree with every
pair as well as possible; one bad pair is then outvoted, and robust re-weighting
(Huber, a few rounds) stops a torn section from pulling its neighbours.

Symbols (all 2D, physical units of each frame):
  A_k(x) = M_k x + t_k   output frame -> section k frame (what we solve for; A_anchor = I)
  P_kj(y) = Q y + q      section k frame -> section j frame (pairwise, fixed k, moving j)
  constraint             A_j(x_i) = P_kj(A_k(x_i)) at points x_i of the output frame
which is linear in (M, t), so one sparse least-squares solve gives all sections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

Affine = tuple[np.ndarray, np.ndarray]  # (2x2 matrix, 2-vector)


@dataclass(frozen=True)
class Pair:
    """A pairwise registration of section `fixed` (k) with section `moving` (j)."""

    fixed: int
    moving: int
    matrix: np.ndarray
    offset: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class Solution:
    """Per-section transforms (output -> section) and how well each pair agrees with them."""

    transforms: dict[int, Affine]
    pair_residuals: dict[tuple[int, int], float]  # RMS disagreement in the moving section's units
    pair_weights: dict[tuple[int, int], float]  # final robust weights


def chain(anchor: int, pairs: list[Pair], order: list[int]) -> dict[int, Affine]:
    """Transforms by composing nearest-neighbour pairs outward from `anchor` (the start of
    the joint fit, and the answer when only one path exists)."""
    by = {(p.fixed, p.moving): p for p in pairs}
    out: dict[int, Affine] = {anchor: (np.eye(2), np.zeros(2))}
    pos = order.index(anchor)
    for direction in (1, -1):
        i = pos
        while 0 <= i + direction < len(order):
            k, j = order[i], order[i + direction]
            p = by.get((k, j))
            if p is None:
                inv = by.get((j, k))
                if inv is None:
                    break
                qi = np.linalg.inv(inv.matrix)
                q, t = qi, -qi @ inv.offset
            else:
                q, t = p.matrix, p.offset
            m, c = out[k]
            out[j] = (q @ m, q @ c + t)
            i += direction
    return out


def _design(ids: dict[int, int], pairs: list[Pair], weights: np.ndarray, points: np.ndarray, anchor: int,
            prior: dict[int, Affine], prior_weight: float):
    """Sparse rows for every (pair, point, axis) plus a weak prior so the system is never singular."""
    rows, cols, vals, rhs = [], [], [], []
    r = 0

    def put(row, section, coef_m, coef_t):
        # unknowns per section: M (row-major m00 m01 m10 m11) then t0 t1
        base = 6 * ids[section]
        for c, v in coef_m:
            rows.append(row); cols.append(base + c); vals.append(v)
        for c, v in coef_t:
            rows.append(row); cols.append(base + 4 + c); vals.append(v)

    for p, w in zip(pairs, weights):
        if w <= 0:
            continue
        sw = np.sqrt(w)
        q, qo = p.matrix, p.offset
        for x in points:
            for a in range(2):  # residual component a: (M_j x + t_j)_a - (Q(M_k x + t_k) + q)_a
                b_const = qo[a]
                if p.moving != anchor:
                    put(r, p.moving, [(2 * a, sw * x[0]), (2 * a + 1, sw * x[1])], [(a, sw)])
                else:
                    b_const -= x[a]
                if p.fixed != anchor:
                    coef_m = []
                    for c in range(2):
                        coef_m += [(2 * c, -sw * q[a, c] * x[0]), (2 * c + 1, -sw * q[a, c] * x[1])]
                    put(r, p.fixed, coef_m, [(c, -sw * q[a, c]) for c in range(2)])
                else:
                    b_const += (q[a] @ x)
                rhs.append(sw * b_const)
                r += 1
    for section, (m, t) in prior.items():
        if section == anchor or section not in ids:
            continue
        target = np.concatenate([m.ravel(), t])
        scale = np.array([1, 1, 1, 1, 0, 0], float) * np.abs(points).max() + np.array([0, 0, 0, 0, 1, 1], float)
        for c in range(6):
            rows.append(r); cols.append(6 * ids[section] + c); vals.append(prior_weight * scale[c])
            rhs.append(prior_weight * scale[c] * target[c])
            r += 1
    a = sp.csr_matrix((vals, (rows, cols)), shape=(r, 6 * len(ids)))
    return a, np.asarray(rhs)


def _residual(p: Pair, tx: dict[int, Affine], points: np.ndarray) -> float:
    mk, tk = tx[p.fixed]
    mj, tj = tx[p.moving]
    pred = points @ (p.matrix @ mk).T + p.matrix @ tk + p.offset
    got = points @ mj.T + tj
    return float(np.sqrt(np.mean(np.sum((pred - got) ** 2, axis=1))))


def nearest_rigid(m: np.ndarray) -> np.ndarray:
    """The rotation closest to `m` (polar decomposition)."""
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def solve(anchor: int, pairs: list[Pair], order: list[int], points: np.ndarray, rigid: bool = False,
          rounds: int = 4, huber: float | None = None) -> Solution:
    """Fit A_k for every section in `order` (readable sections, cutting order).

    points: (n, 2) output-frame points where agreement is measured (a grid over the
    anchor section). `rigid` projects each matrix to the nearest rotation (about the
    points' centre) after the fit. `huber`: residual (section units) above which a pair's
    weight falls as huber / residual; default 3x the median residual, at least 1 unit.
    """
    pairs = sorted(pairs, key=lambda p: (p.fixed, p.moving))  # the same answer whatever order pairs finished in
    start = chain(anchor, [p for p in pairs if abs(order.index(p.moving) - order.index(p.fixed)) == 1], order)
    unknown = [k for k in order if k != anchor]
    ids = {k: i for i, k in enumerate(unknown)}
    weights = np.array([p.weight for p in pairs], float)
    tx = {k: start.get(k, (np.eye(2), np.zeros(2))) for k in order}
    if not unknown:
        return Solution(tx, {}, {})
    for _ in range(max(1, rounds)):
        a, b = _design(ids, pairs, weights, points, anchor, tx, 1e-3)
        sol = spla.lsqr(a, b, atol=1e-12, btol=1e-12, iter_lim=20000)[0]
        for k, i in ids.items():
            v = sol[6 * i: 6 * i + 6]
            tx[k] = (v[:4].reshape(2, 2), v[4:].copy())
        res = np.array([_residual(p, tx, points) for p in pairs])
        limit = huber if huber is not None else max(1.0, 3.0 * float(np.median(res)))
        new = np.array([p.weight * (1.0 if r <= limit else limit / r) for p, r in zip(pairs, res)])
        if np.allclose(new, weights, rtol=1e-3):
            break
        weights = new
    if rigid:
        centre = points.mean(axis=0)
        for k in unknown:
            m, t = tx[k]
            r = nearest_rigid(m)
            tx[k] = (r, m @ centre + t - r @ centre)
    residuals = {(p.fixed, p.moving): _residual(p, tx, points) for p in pairs}
    return Solution(tx, residuals, {(p.fixed, p.moving): float(w) for p, w in zip(pairs, weights)})


__all__ = ["Pair", "Solution", "solve", "chain", "nearest_rigid"]
