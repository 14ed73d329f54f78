"""Trend removal (core.stack.trend): a drift planted in the pairwise estimates is taken out
by align_stack's remove_trend, and left in with remove_trend="off"."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import regviewer
from regviewer.core.errors import ParameterError
from regviewer.core.stack import pairwise
from regviewer.core.stack.trend import pose, remove_trend
from tests.stack_phantom import SIZE, block, cut, tissue_points

N = 20
CENTRE = np.array([(SIZE - 1) / 2.0, (SIZE - 1) / 2.0])


def _affine(tx: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) of a 2D linear transform, from three points."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    q = np.array([tx.TransformPoint(p.tolist()) for p in pts])
    return np.stack([q[1] - q[0], q[2] - q[0]], axis=1), q[0]


def _compose(a, b):  # a o b
    return a[0] @ b[0], a[0] @ b[1] + a[1]


def _power(step, d: int):
    out = (np.eye(2), np.zeros(2))
    for _ in range(d):
        out = _compose(step, out)
    return out


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    """N small sections, mounted within +-5 degrees and +-2 px (the pose trend is then
    well determined), and their true plane -> section transforms."""
    folder = tmp_path_factory.mktemp("trend_sections")
    truths = cut(block(N, seed=4), folder, seed=5, max_angle=5.0, max_shift=2.0)
    return folder, [_affine(t) for t in truths]


def _align_with_planted_drift(monkeypatch, folder, truths, step, mode, drift=None):
    """align_stack whose pairwise registrations return the truth plus `step` (a plane-frame
    affine) per section of distance: pair (k, j) = T_j o step^(j-k) o T_k^-1, the bias a
    changing anatomy gives neighbour registration (or T_j o D_j o D_k^-1 o T_k^-1 for a
    `drift` D_k given per section). No image is registered."""
    made: list[sitk.Image] = []
    real_normalise = pairwise.normalise

    def normalise(image):
        made.append(real_normalise(image))
        return made[-1]

    def fake_pair(fixed, moving, params, metric, initial, seed=0, cancel=None):
        k = next(i for i, m in enumerate(made) if m is fixed)
        j = next(i for i, m in enumerate(made) if m is moving)
        tk_inv = (np.linalg.inv(truths[k][0]), -np.linalg.inv(truths[k][0]) @ truths[k][1])
        if drift is None:
            bias = _power(step, j - k)
        else:
            dk = drift(k)
            bias = _compose(drift(j), (np.linalg.inv(dk[0]), -np.linalg.inv(dk[0]) @ dk[1]))
        m, t = _compose(truths[j], _compose(bias, tk_inv))
        return pairwise.PairResult(m, t, 0.9), 0.0

    monkeypatch.setattr(pairwise, "normalise", normalise)
    monkeypatch.setattr(pairwise, "timed_register_pair", fake_pair)
    return regviewer.align_stack(folder, remove_trend=mode)


def _worst_misplacement(result, truths) -> float:
    """Largest mean |T_k^-1(A_k(x)) - T_a^-1(x)| over the tissue, px (0 = no drift)."""
    a = result.anchor
    ta_inv = np.linalg.inv(truths[a][0])
    out_pts = tissue_points() @ truths[a][0].T + truths[a][1]
    worst = 0.0
    for k, s in enumerate(result.sections):
        seen = np.array([s.transform.TransformPoint(p.tolist()) for p in out_pts])
        tk_inv = np.linalg.inv(truths[k][0])
        err = (seen - truths[k][1]) @ tk_inv.T - (out_pts - truths[a][1]) @ ta_inv.T
        worst = max(worst, float(np.mean(np.linalg.norm(err, axis=1))))
    return worst


def _step(scale: float, shift: tuple[float, float]):
    """A plane-frame scale about the sections' centre, then a shift."""
    m = np.eye(2) * scale
    return m, CENTRE - m @ CENTRE + np.asarray(shift)


def test_stretch_drift_is_removed_by_default_and_kept_when_off(monkeypatch, sections):
    folder, truths = sections
    step = _step(1.02, (0.0, 0.0))  # the anatomy "shrinks" 2 % per section
    off = _align_with_planted_drift(monkeypatch, folder, truths, step, "off")
    assert _worst_misplacement(off, truths) > 3.0  # the planted drift: ~20 % at the stack's end
    default = _align_with_planted_drift(monkeypatch, folder, truths, step, True)
    assert default.details["trend"]["mode"] == "stretch"
    assert _worst_misplacement(default, truths) < 0.5
    anchor = default.sections[default.anchor].transform
    assert np.allclose(anchor.TransformPoint((10.0, 20.0)), (10.0, 20.0), atol=1e-9)  # the anchor keeps its place


def test_pose_drift_is_removed_only_in_pose_mode(monkeypatch, sections):
    folder, truths = sections
    step = _step(1.0, (0.5, -0.3))  # a structure 0.6 px per section oblique, "straightened"
    stretch = _align_with_planted_drift(monkeypatch, folder, truths, step, "stretch")
    assert _worst_misplacement(stretch, truths) > 4.0  # a shift trend is not a stretch
    posed = _align_with_planted_drift(monkeypatch, folder, truths, step, "pose")
    assert _worst_misplacement(posed, truths) < 1.0
    assert posed.details["trend"]["slope_shift_x"] == pytest.approx(0.5, abs=0.1)


def test_a_bent_pose_drift_is_removed_in_pose_mode(monkeypatch, sections):
    """The banana: both ends of the stack drift the same way (a quadratic in k)."""
    folder, truths = sections
    anchor = N // 2

    def drift(k):
        return np.eye(2), np.array([0.0, 0.05 * (k - anchor) ** 2])  # 5 px at the ends

    off = _align_with_planted_drift(monkeypatch, folder, truths, None, "stretch", drift=drift)
    assert _worst_misplacement(off, truths) > 4.0
    posed = _align_with_planted_drift(monkeypatch, folder, truths, None, "pose", drift=drift)
    assert _worst_misplacement(posed, truths) < 1.0
    assert posed.details["trend"]["curvature_shift_y"] == pytest.approx(0.05, abs=0.015)


def test_random_stretch_of_single_sections_stays_corrected():
    """A section stretched on its own (cutting, mounting) is not a trend: it is kept."""
    rng = np.random.default_rng(1)
    c = np.array([50.0, 50.0])
    tx = {k: (np.eye(2), np.zeros(2)) for k in range(15)}
    tx[9] = (np.diag([1.08, 0.95]), c - np.diag([1.08, 0.95]) @ c)
    for k in tx:
        if k not in (7, 9):
            s = np.diag(1 + rng.normal(0, 0.002, 2))
            tx[k] = (s, c - s @ c)
    out, trend = remove_trend(tx, 7, c, "stretch")
    assert np.allclose(out[7][0], np.eye(2)) and np.allclose(out[7][1], 0)
    assert pose(*out[9], c)[1] == pytest.approx(0.08, abs=0.02)  # its own stretch is kept
    assert trend.max_area_change < 0.03


def test_bad_trend_mode_is_a_parameter_error(sections):
    with pytest.raises(ParameterError, match="remove_trend"):
        regviewer.align_stack(sections[0], remove_trend="quadratic")
