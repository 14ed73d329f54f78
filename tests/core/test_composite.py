"""Overlay modes as pure functions: shapes, dtypes and the pixels they must pick."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regviewer.core.imaging import composite as c
from regviewer.core.errors import ParameterError


def _pair(shape=(6, 8)):
    fixed = np.full(shape, 200, np.uint8)
    moving = np.full(shape, 50, np.uint8)
    return fixed, moving


def test_window_level_maps_the_ramp_ends():
    values = np.array([[0.0, 50.0, 100.0, 150.0]])
    out = c.window_level(values, window=100, level=50)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 128, 255, 255]] or out.tolist() == [[0, 127, 255, 255]]


def test_window_level_passes_rgb_through():
    rgb = np.full((2, 2, 3), 300.0)
    out = c.window_level(rgb, 1, 0)
    assert out.shape == (2, 2, 3) and out.max() == 255


def test_blend_weights():
    f, m = _pair()
    assert (c.blend(f, m, 0.0) == 200).all()
    assert (c.blend(f, m, 1.0) == 50).all()
    assert (c.blend(f, m, 0.5) == 125).all()
    assert c.blend(f, m).shape == (6, 8, 3)


def test_checkerboard_alternates_and_starts_with_fixed():
    f, m = _pair((8, 8))
    out = c.checkerboard(f, m, 2)
    assert out[0, 0] == 200 and out[0, 2] == 50 and out[2, 0] == 50 and out[2, 2] == 200
    assert out[1, 1] == 200 and out[1, 3] == 50


def test_checkerboard_works_on_volumes_and_rgb():
    vol_f, vol_m = np.zeros((4, 4, 4)), np.ones((4, 4, 4))
    out = c.checkerboard(vol_f, vol_m, 2, colour=False)
    assert out[0, 0, 0] == 0 and out[2, 0, 0] == 1 and out[2, 2, 0] == 0 and out[2, 2, 2] == 1
    rgb_f, rgb_m = np.zeros((4, 4, 3)), np.ones((4, 4, 3))
    out = c.checkerboard(rgb_f, rgb_m, 2)
    assert (out[0, 0] == 0).all() and (out[0, 2] == 1).all()


def test_checkerboard_rejects_bad_square():
    with pytest.raises(ParameterError):
        c.checkerboard_mask((4, 4), 0)


def test_difference_and_fusion():
    f, m = _pair()
    assert (c.difference(f, m) == 150).all()
    fused = c.fusion(f, m)
    assert fused.shape == (6, 8, 3)
    assert fused[0, 0].tolist() == [200, 50, 200]
    # identical images fuse to grey
    same = c.fusion(f, f)
    assert (same[..., 0] == same[..., 1]).all()


def test_curtain_splits_at_position():
    f, m = _pair((4, 10))
    out = c.curtain(f, m, 0.3)
    assert (out[:, :3] == 200).all() and (out[:, 3:] == 50).all()
    out = c.curtain(f, m, 0.5, vertical=False)
    assert (out[:2] == 200).all() and (out[2:] == 50).all()


def test_flicker_frame_toggles_at_rate():
    assert c.flicker_frame(0.0, 2.0) == "fixed"
    assert c.flicker_frame(0.6, 2.0) == "moving"
    assert c.flicker_frame(1.1, 2.0) == "fixed"
    with pytest.raises(ParameterError):
        c.flicker_frame(1.0, 0)


def test_size_mismatch_is_a_typed_error():
    with pytest.raises(ParameterError, match="differ in size"):
        c.blend(np.zeros((3, 3)), np.zeros((4, 4)))


def test_settings_round_trip_and_dispatch():
    s = c.OverlaySettings(mode="checkerboard", square_mm=4)
    assert c.OverlaySettings.from_json(s.to_json()) == s
    with pytest.raises(ParameterError):
        c.OverlaySettings(mode="nope")
    f, m = _pair((8, 8))
    for mode in c.OVERLAY_MODES:
        out = c.composite(f, m, s.with_(mode=mode), pixel_spacing_mm=(2.0, 2.0), flicker_shows="moving")
        assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    out = c.composite(f, m, s, pixel_spacing_mm=(2.0, 2.0))
    assert out[0, 0, 0] == 200 and out[0, 2, 0] == 50  # 4 mm squares = 2 px


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 7), st.floats(0, 1))
def test_checkerboard_and_blend_only_mix_the_inputs(h, w, sq, alpha):
    f = np.full((h, w), 10, np.uint8)
    m = np.full((h, w), 240, np.uint8)
    board = c.checkerboard(f, m, sq)
    assert set(np.unique(board)) <= {10, 240}
    mixed = c.blend(f, m, alpha)
    assert mixed.min() >= 10 and mixed.max() <= 240


def test_grey_output_matches_the_rgb_output():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    m = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    for mode in c.OVERLAY_MODES:
        s = c.OverlaySettings(mode=mode, alpha=0.3, square_mm=2, curtain_position=0.4)
        rgb = c.composite(f, m, s, (1.0, 1.0), "moving")
        grey = c.composite(f, m, s, (1.0, 1.0), "moving", grey_ok=True)
        if mode == "fusion":
            assert grey.ndim == 3
        else:
            assert grey.ndim == 2 and np.array_equal(c.to_rgb(grey), rgb), mode
