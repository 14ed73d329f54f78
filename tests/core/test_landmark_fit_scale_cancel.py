"""Large landmark sets (issue 16, case 10): the leverage-aware flags without n × n matrices,
the neighbour rule by KD-tree above a thousand pairs, and a fit that can be cancelled
between its leave-one-out folds."""

from __future__ import annotations

import numpy as np
import pytest

from regviewer.core.errors import LandmarkFitCancelled
from regviewer.core.landmarks import diagnostics, fitting
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet


def _pairs(n: int, seed: int = 3, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fixed = rng.uniform(0, 100, (n, 3))
    a = np.array([[1.02, 0.05, 0], [0, 0.98, 0.03], [0, 0, 1.01]])
    moving = fixed @ a.T + [3, 1, 2] + 2 * np.sin(fixed / 20) + rng.normal(0, noise, (n, 3))
    return fixed, moving


def _set(fixed: np.ndarray, moving: np.ndarray) -> LandmarkSet:
    return LandmarkSet(3, [LandmarkPair(f"L{i}", tuple(fixed[i]), tuple(moving[i])) for i in range(len(fixed))])


def test_studentised_residuals_of_20000_pairs_need_no_hat_matrix():
    # The (3n × 3n) hat matrix would be 29 GB here; its diagonal blocks are all that is needed.
    fixed, moving = _pairs(20000)
    weights = np.ones(len(fixed))
    a, b = fitting._solve_linear("affine", fixed, moving, weights)
    st = diagnostics.studentised("affine", fixed, moving, weights, a, b)
    assert st is not None and np.all(np.isfinite(st.chance))
    # for an affine, the leave-one-out error it derives is the exact one
    exact = diagnostics.linear_leave_one_out("affine", fixed, moving, weights)
    np.testing.assert_allclose(st.loo_mm, exact, rtol=1e-6)


@pytest.mark.parametrize("model", ["translation", "affine"])
def test_closed_form_linear_leave_one_out_equals_refits(model):
    fixed, moving = _pairs(60)
    weights = np.random.default_rng(1).uniform(0.5, 2, 60)
    refits = fitting._leave_one_out(model, fixed, moving, weights, None, 0.0)  # 60 < LOO_EXACT_MAX: refits
    np.testing.assert_allclose(diagnostics.linear_leave_one_out(model, fixed, moving, weights), refits, rtol=1e-9)


@pytest.mark.parametrize("model", ["tps", "bspline"])
def test_nearest_neighbour_rule_flags_the_mistake_like_the_whole_set_spline(model, monkeypatch):
    fixed, moving = _pairs(400, noise=0.3)
    moving[17] += (9.0, -8.0, 6.0)  # 13.5 mm off
    exact = fitting.fit(_set(fixed, moving), model)
    calls = []
    monkeypatch.setattr(diagnostics, "NEIGHBOUR_EXACT_MAX", 100)  # use the KD-tree rule at 400 pairs
    monkeypatch.setattr(fitting.warp, "tps_leave_one_out",
                        lambda *a, **k: calls.append(1) or np.full(len(a[0]), np.nan))
    local = fitting.fit(_set(fixed, moving), model)
    assert 17 in exact.flagged and 17 in local.flagged
    assert set(local.flagged) <= set(exact.flagged) | {17}
    assert len(calls) == (1 if model == "tps" else 0)  # only the fit's own leave-one-out, not the flags


def test_nearest_neighbour_rule_leaves_a_smooth_deformation_alone(monkeypatch):
    fixed, moving = _pairs(400, noise=0.3)
    moving += 6 * np.sin(fixed / 15)  # a large, smooth, real deformation: off the affine trend everywhere
    monkeypatch.setattr(diagnostics, "NEIGHBOUR_EXACT_MAX", 100)
    assert fitting.fit(_set(fixed, moving), "bspline").flagged == ()


@pytest.mark.parametrize("model, n", [("affine", 60), ("rigid", 500), ("bspline", 120), ("tps", 60)])
def test_a_progress_callback_returning_false_stops_the_fit(model, n):
    fixed, moving = _pairs(n)
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> bool:
        seen.append((done, total))
        return len(seen) < 5

    with pytest.raises(LandmarkFitCancelled):
        fitting.fit(_set(fixed, moving), model, progress=progress)
    assert len(seen) == 5  # never called again after it said stop
    assert all(total == n for _, total in seen)


def test_progress_reaches_the_total_and_a_fit_that_is_not_cancelled_is_unchanged():
    fixed, moving = _pairs(80)
    seen: list[int] = []
    with_progress = fitting.fit(_set(fixed, moving), "bspline", progress=lambda done, total: seen.append(done))
    plain = fitting.fit(_set(fixed, moving), "bspline")
    assert max(seen) == 80 and seen == sorted(seen)
    np.testing.assert_array_equal(with_progress.loo_errors_mm, plain.loo_errors_mm)
    assert with_progress.flagged == plain.flagged
