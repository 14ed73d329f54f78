"""One Jacobian histogram for the QA panel and the report."""

from __future__ import annotations

import numpy as np

from regviewer.core.qa.histogram import jacobian_histogram


def test_histogram_keeps_no_change_in_range_and_every_finite_value():
    values = np.r_[np.full(1000, 1.02), np.linspace(0.95, 1.05, 100), [np.nan, np.inf, -3.0]]
    centres, counts, width = jacobian_histogram(values, 40)
    assert len(centres) == 40 and np.isclose(width, centres[1] - centres[0])
    assert centres[0] - width / 2 <= -3.0 and centres[-1] + width / 2 >= 1.1
    assert counts.sum() == 1101  # NaN and inf left out; -3 (a fold) kept
    assert jacobian_histogram(np.array([np.nan]), 10)[1].size == 0
