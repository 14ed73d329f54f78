"""View-state numerics: coarse preview planes line up with the full plane; one slice
renders per role; the view state round-trips to JSON."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.imaging.composite import OverlaySettings
from regviewer.core.errors import ParameterError
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slicing import planes_for, reslice
from regviewer.core.workspace.view_state import (ViewState, adjust_window, expand_preview, preset_window, preview_plane,
                                       render_slice, slice_pair)


def _ramp_volume():
    z, y, x = np.indices((12, 10, 9), dtype=np.float32)
    img = sitk.GetImageFromArray(x + 10 * y + 100 * z)
    img.SetSpacing((1.5, 1.0, 2.0))
    img.SetOrigin((3.0, -4.0, 7.0))
    return Volume(img)


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_preview_plane_lines_up_with_the_full_plane(orientation):
    vol = _ramp_volume()
    plane = planes_for(vol)[orientation]
    depth = float(np.mean(plane.depth_range))
    full = reslice(vol.sitk, plane, depth)
    coarse = expand_preview(reslice(vol.sitk, preview_plane(plane, 2), depth), 2, plane.shape)
    assert coarse.shape == full.shape
    # a linear ramp sampled at block centres is off by half a pixel each way at most
    inside = (full > 0) & (coarse > 0)
    inside[-2:, :] = inside[:, -2:] = False
    step = np.abs(np.diff(full, axis=0)).max() + np.abs(np.diff(full, axis=1)).max()
    assert np.abs(coarse - full)[inside].max() <= 0.5 * step + 1e-3
    # and on average the blocks are centred (no half-pixel shift)
    assert abs(float(np.mean((coarse - full)[inside]))) < 1.0


def test_render_slice_roles_and_errors():
    vol = _ramp_volume()
    plane = planes_for(vol)["axial"]
    f, m = slice_pair(vol, vol, plane, 10.0, sitk.TranslationTransform(3, (1.5, 0.0, 0.0)))
    s = OverlaySettings()
    wl = (200.0, 100.0)
    for role in ("overlay", "fixed", "moving"):
        out = render_slice(role, f, m, wl, wl, s, plane.spacing)
        assert out.shape == plane.shape and out.dtype == np.uint8  # grey: no colour needed
    fused = render_slice("overlay", f, m, wl, wl, s.with_(mode="fusion"), plane.spacing)
    assert fused.shape == plane.shape + (3,)
    assert np.array_equal(render_slice("overlay", f, None, wl, wl, s, plane.spacing),
                          render_slice("fixed", f, m, wl, wl, s, plane.spacing))
    with pytest.raises(ParameterError):
        render_slice("sideways", f, m, wl, wl, s, plane.spacing)


def test_window_presets_and_drag():
    vol = _ramp_volume()
    assert preset_window(vol, "full range")[0] == pytest.approx(float(vol.array().max()))
    with pytest.raises(ParameterError):  # a ramp of 0.. is no CT: the CT windows are not offered
        preset_window(vol, "bone (CT)")
    with pytest.raises(ParameterError):
        preset_window(vol, "nope")
    w, l = adjust_window(100.0, 50.0, 10, -5, 2.0)
    assert (w, l) == (120.0, 40.0)
    assert adjust_window(1.0, 0.0, -100, 0, 1.0)[0] > 0


def test_view_state_round_trip():
    state = ViewState(layout="side_by_side", overlay=OverlaySettings(mode="fusion"), fixed_window=(10.0, 5.0),
                      cursor=(1.0, 2.0, 3.0))
    assert ViewState.from_json(state.to_json()) == state
    with pytest.raises(ParameterError):
        ViewState(layout="grid")
