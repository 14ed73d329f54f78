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
