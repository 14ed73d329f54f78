"""Finding the section that does not fit its neighbours (torn, folded, missing tissue).

After alignment, consecutive sections of one block look alike: their correlation on the
output grid is high and nearly constant along the stack. A torn or folded section, or
one from elsewhere, correlates poorly with *both* neighbours, while those two still
correlate with each other. A section is flagged when its best neighbour correlation is
far below the stack's typical value (median - 4 x MAD, and at least 0.15 below), or when
the pairwise registrations through it disagree with the joint fit (see `solve.py`) by
more than 3 pixels and far more than the others.
"""

from __future__ import annotations

import numpy as np


def robust_low(values: dict[int, float], k: float = 4.0, floor: float = 0.15) -> set[int]:
    """Keys whose value lies far below the others (median - k * 1.4826 * MAD, and `floor` below)."""
    if len(values) < 4:
        return set()
    v = np.array(list(values.values()), float)
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    limit = min(med - k * mad, med - floor)
    return {key for key, value in values.items() if value < limit}


def robust_high(values: dict[int, float], k: float = 4.0, floor: float = 1.0) -> set[int]:
    """Keys whose value lies far above the others (median + k * 1.4826 * MAD, and `floor` above)."""
    if len(values) < 4:
        return set()
    v = np.array(list(values.values()), float)
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med)))
    limit = max(med + k * mad, med + floor)
    return {key for key, value in values.items() if value > limit}


def jump_flags(order: list[int], neighbour_ncc: dict[tuple[int, int], float],
               pair_residuals: dict[tuple[int, int], float] | None = None, pixel: float = 1.0) -> dict[int, list[str]]:
    """Flags per section from neighbour correlations on the output grid.

    order: readable sections in cutting order. neighbour_ncc[(k, j)]: correlation of the
    aligned sections k and j (any order of the key). pair_residuals: joint-fit
    disagreement per pair (section units); a section is only called inconsistent beyond
    3 pixels (`pixel`: the output pixel size), since neighbouring sections differ in
    anatomy and their registrations disagree by a pixel or so even when all is well."""
    def get(a: int, b: int) -> float | None:
        return neighbour_ncc.get((a, b), neighbour_ncc.get((b, a)))

    best: dict[int, float] = {}
    for i, k in enumerate(order):
        around = [get(k, order[j]) for j in (i - 1, i + 1) if 0 <= j < len(order)]
        around = [v for v in around if v is not None]
        if around:
            best[k] = max(around)
    flags: dict[int, list[str]] = {k: [] for k in order}
    typical = float(np.median(list(best.values()))) if best else 0.0
    for k in robust_low(best):
        flags[k].append(f"jump: fits neither neighbour (correlation {best[k]:.2f}, typical {typical:.2f})")
    if pair_residuals:
        # A bad section spoils all of its pairs, a good neighbour of it only one: the median over
        # a section's pairs, or the smaller of two (an end section has only two, and one poor
        # pair there says no more about it than about its partner).
        through: dict[int, list[float]] = {}
        for (a, b), r in pair_residuals.items():
            for s in (a, b):
                through.setdefault(s, []).append(r)
        per_section = {k: float(np.median(v) if len(v) > 2 else np.min(v)) for k, v in through.items() if k in flags}
        med = float(np.median(list(per_section.values()))) if per_section else 0.0
        for k in robust_high(per_section, floor=max(3.0 * pixel, 3.0 * med)):
            flags[k].append(f"inconsistent: its pairwise registrations disagree by {per_section[k]:.1f} units "
                            f"(typical {med:.1f})")
    return flags


__all__ = ["jump_flags", "robust_low", "robust_high"]
