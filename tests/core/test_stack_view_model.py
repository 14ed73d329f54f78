"""StackViewModel: what the stack window shows, without Qt."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.composite import OVERLAY_MODES, OverlaySettings
from regviewer.core.stack.view_model import StackViewModel
from tests.stack_phantom import block


def _model(n: int = 4) -> StackViewModel:
    planes = block(n, seed=12)
    model = StackViewModel(n, planes[0])
    for k, p in enumerate(planes):
        if k != 2:  # section 2 is missing
            model.set_section(k, p, f"s{k}")
            model.images[k] = p
            model.transforms[k] = sitk.Euler2DTransform()
    return model


def test_overlay_planes_and_missing_section():
    m = _model()
    for mode in OVERLAY_MODES:
        assert m.overlay(3, OverlaySettings(mode=mode)).shape == (96, 96, 3)
    assert m.below(3)[1] == "s1"  # the nearest aligned section before it (s2 is missing)
    planes = m.planes(1, row=48, col=48)
    assert planes["rows"].shape == (4, 96) and planes["cols"].shape == (4, 96)
    assert not planes["rows"][2].any() and planes["rows"][1].any()
    assert "s1: aligned" in m.status_text(1)


def test_correction_moves_the_section_and_the_later_ones():
    m = _model()
    before = [None if a is None else a.copy() for a in m.aligned]
    changed = m.correct(1, 5.0, 0.0, 0.0)
    assert changed == [1, 3]
    assert np.array_equal(m.aligned[0], before[0])
    for k in (1, 3):  # content moved 5 px to the right (x increases with the column)
        assert np.allclose(m.aligned[k][:, 30:60], before[k][:, 25:55], atol=1e-3)
    assert np.allclose(m.transforms[1].TransformPoint((40.0, 40.0)), (35.0, 40.0))  # output -> section
    m.correct(0, 0.0, 0.0, 90.0, propagate=False)
    assert np.allclose(m.aligned[0], np.rot90(before[0], -1), atol=1e-2) or \
        np.allclose(m.aligned[0], np.rot90(before[0], 1), atol=1e-2)


def test_a_model_grown_for_more_sections_keeps_what_it_showed():
    grid = sitk.Image([8, 6], sitk.sitkFloat32)
    model = StackViewModel(2, grid)
    model.set_section(1, grid + 1.0, "s1")
    bigger = model.grown(5)
    assert bigger.n == 5 and bigger.names[1] == "s1" and bigger.aligned[1] is not None
    assert bigger.aligned[4] is None and bigger.statuses[4] == "waiting"
    assert model.grown(1) is model


def test_landmark_fit_moves_the_section_onto_its_neighbour_and_the_later_ones_follow():
    from regviewer.core.stack.section_corrections import fit_correction, rigid_matrix

    m = _model()
    # Section 1 as shown is section 0 turned by 4 degrees and shifted: pick the same anatomy on both.
    truth = rigid_matrix((47.5, 47.5), 4.0, 3.0, -2.0)  # neighbour point p -> section-1 point q
    points = [(30.0, 30.0), (65.0, 32.0), (60.0, 70.0), (28.0, 62.0)]
    for p in points:
        m.place_landmark(1, "fixed", p)
    for p in points:
        q = truth[:2, :2] @ p + truth[:2, 2]
        m.place_landmark(1, "moving", q)
    assert [name for name, f, q in m.landmarks(1)] == ["L1", "L2", "L3", "L4"]
    before = [None if a is None else a.copy() for a in m.aligned]
    correction, result = fit_correction(m.landmark_pairs(1), "rigid")
    assert result.rms_mm < 1e-6 and np.allclose(correction, np.linalg.inv(truth))
    changed = m.apply_correction(1, correction)
    assert changed == [1, 3] and np.array_equal(m.aligned[0], before[0])
    for k in (1, 3):
        assert not np.array_equal(m.aligned[k], before[k])
    # The picked section-1 points now sit on their neighbour points (they move with the section).
    for name, fixed, shown in m.landmarks(1):
        assert np.allclose(fixed, shown, atol=1e-6)
    m.undo()
    assert np.allclose(m.aligned[1], before[1], atol=1e-3) and np.allclose(m.aligned[3], before[3], atol=1e-3)
    assert not m.can_undo


def test_deferred_correction_resamples_only_when_the_job_runs_and_a_newer_job_wins():
    m = _model()
    before = m.aligned[3].copy()
    m.correct(1, 2.0, 0.0, 0.0, deferred=True)
    assert np.array_equal(m.aligned[3], before) and m.dirty == {1, 3}
    old_job = m.resample_job(first=1)
    m.correct(1, 2.0, 0.0, 0.0, deferred=True)
    assert old_job() is None  # a newer correction was asked for: the old job stops at once
    new_job = m.resample_job(first=1)
    assert sorted(m.accept(new_job())) == [1, 3] and not m.dirty
    assert np.allclose(m.aligned[3][:, 30:60], before[:, 26:56], atol=1e-3)  # 2 + 2 px


def test_volume_planes_in_3d():
    m = _model()
    planes = m.volume_planes(1)
    assert set(planes) == {"section", "rows", "cols"}
    geometry, depth, rgb = planes["rows"]
    assert rgb.shape == (4, 96, 3) and geometry.shape == (4, 96)
    last = np.asarray(geometry.to_physical(0, 3, depth))  # the last section is the farthest back
    assert np.isclose(last[1], m.volume_corners()[:, 1].max())
    geometry, depth, rgb = planes["section"]
    top_left, bottom_left = geometry.to_physical(0, 0, depth), geometry.to_physical(0, 95, depth)
    assert top_left[2] > bottom_left[2] and np.isclose(top_left[1], bottom_left[1])  # rows run down


def test_picked_pairs_stay_on_their_anatomy_when_an_earlier_section_is_corrected():
    """Section 3's pairs were fitted to zero; correcting section 1 moves 1 and 3 together, so the
    pairs still agree (before, the neighbour's points stayed put and the fit asked for -5 mm)."""
    from regviewer.core.stack.section_corrections import fit_correction

    m = _model()
    for p in [(30.0, 30.0), (65.0, 32.0), (60.0, 70.0), (28.0, 62.0)]:
        m.place_landmark(3, "fixed", p)
        m.place_landmark(3, "moving", p)
    m.correct(1, 5.0, 0.0, 0.0)
    correction, result = fit_correction(m.landmark_pairs(3), "rigid")
    assert result.rms_mm < 1e-6 and np.allclose(correction, np.eye(3), atol=1e-9)


def test_a_landmark_fit_on_the_first_section_moves_it_alone():
    """Section 0 is compared with section 1, after it: if 1 and the rest followed, nothing would change
    between them."""
    from regviewer.core.stack.section_corrections import rigid_matrix

    m = _model()
    before = [None if a is None else a.copy() for a in m.aligned]
    changed = m.apply_landmark_correction(0, rigid_matrix((47.5, 47.5), 0.0, 4.0, 0.0))
    assert changed == [0] and np.array_equal(m.aligned[1], before[1])
    assert m.apply_landmark_correction(3, rigid_matrix((47.5, 47.5), 0.0, 4.0, 0.0)) == [3]
    assert m.apply_landmark_correction(1, rigid_matrix((47.5, 47.5), 0.0, 4.0, 0.0)) == [1, 3]
