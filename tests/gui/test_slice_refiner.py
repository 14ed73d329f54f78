"""Moving slices under a B-spline: a coarse slice at once, the full one from a background
thread, and the final picture identical to the synchronous full-resolution one."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.slice_cache import compute_moving_slice


def _bspline(image: sitk.Image) -> sitk.Transform:
    bs = sitk.BSplineTransformInitializer(image, [3, 3, 3])
    bs.SetParameters(np.random.default_rng(0).normal(0, 3.0, bs.GetNumberOfParameters()).tolist())
    return bs


def test_bspline_slices_are_coarse_first_then_exact(qtbot, brain_window):
    """A new transform keeps the picture until the full slice arrives; a slice step
    draws a coarse slice at once, then the full one."""
    w = brain_window
    w._refiner.min_pixels = 0  # the demo's planes are small: make every slice go the background way
    axial = w.view("overlay", "axial")
    moving = w.moving_volume().sitk
    tx = _bspline(moving)
    before = axial.last_rgb.copy()
    w.show_preview_transform(tx)
    w.flush_preview()
    np.testing.assert_array_equal(axial.last_rgb, before)  # a snapshot keeps the picture until its slice arrives
    full = compute_moving_slice(moving, axial.plane, axial.depth, tx)
    coarse = compute_moving_slice(moving, axial.plane, axial.depth, tx, 4)
    drawn = w._slices.cached_moving(axial.plane, axial.depth)
    assert drawn is None or np.array_equal(drawn, full)  # not drawn yet, or already the exact one
    w.finish_slices()
    qtbot.waitUntil(lambda: w._slices.cached_moving(axial.plane, axial.depth) is not None, timeout=5000)
    np.testing.assert_array_equal(w._slices.cached_moving(axial.plane, axial.depth), full)
    assert not np.array_equal(coarse, full)
    # what is on screen is the full-resolution slice: the same picture as a synchronous redraw
    shown = axial.last_rgb.copy()
    w._refiner.min_pixels = 10**9
    w._slices.transform_changed()
    axial.refresh()
    np.testing.assert_array_equal(axial.last_rgb, shown)


def test_a_slice_of_a_replaced_transform_is_dropped(qtbot, brain_window):
    w = brain_window
    w._refiner.min_pixels = 0
    axial = w.view("overlay", "axial")
    moving = w.moving_volume().sitk
    first, second = _bspline(moving), sitk.TranslationTransform(3, (5.0, 0.0, 0.0))
    w.show_preview_transform(first)
    w.flush_preview()
    w.show_preview_transform(second)  # linear: drawn at once, synchronously
    w.flush_preview()
    w.finish_slices()
    qtbot.wait(50)
    np.testing.assert_array_equal(w._slices.cached_moving(axial.plane, axial.depth),
                                  compute_moving_slice(moving, axial.plane, axial.depth, second))


def test_linear_transforms_and_small_planes_stay_synchronous(brain_window):
    w = brain_window
    axial = w.view("overlay", "axial")
    assert not w._refiner.wanted(axial.plane, sitk.TranslationTransform(3, (1.0, 0.0, 0.0)))
    assert not w._refiner.wanted(axial.plane, _bspline(w.moving_volume().sitk))  # 98x116 < MIN_PIXELS


def test_a_slice_step_under_a_bspline_draws_a_coarse_slice_at_once(qtbot, brain_window):
    w = brain_window
    w._refiner.min_pixels = 0
    axial = w.view("overlay", "axial")
    moving = w.moving_volume().sitk
    tx = _bspline(moving)
    w.show_preview_transform(tx)
    w.flush_preview()
    w.finish_slices()
    axial.step_slice(1)
    np.testing.assert_array_equal(w._slices.cached_moving(axial.plane, axial.depth, 4),
                                  compute_moving_slice(moving, axial.plane, axial.depth, tx, 4))
    w.finish_slices()
    qtbot.waitUntil(lambda: w._slices.cached_moving(axial.plane, axial.depth) is not None, timeout=5000)
    np.testing.assert_array_equal(w._slices.cached_moving(axial.plane, axial.depth),
                                  compute_moving_slice(moving, axial.plane, axial.depth, tx))
