"""The slice cache: fixed slices survive transform changes, moving ones do not."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.slice_cache import SliceCache
from regviewer.core.imaging.slicing import planes_for, reslice


def test_fixed_slices_are_kept_and_moving_slices_follow_the_transform():
    img = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8))
    vol = Volume(img)
    cache = SliceCache(fixed_slices=2, moving_slices=2)
    cache.set_images(vol, vol)
    plane = planes_for(vol)["axial"]
    a = cache.fixed_slice(plane, 2.0)
    assert cache.fixed_slice(plane, 2.0) is a
    shift = sitk.TranslationTransform(3, (1.0, 0.0, 0.0))
    m = cache.moving_slice(plane, 2.0, shift)
    assert np.array_equal(m, reslice(img, plane, 2.0, shift))
    assert cache.moving_slice(plane, 2.0, shift) is m
    cache.transform_changed()
    assert cache.moving_slice(plane, 2.0, shift) is not m
    assert cache.fixed_slice(plane, 2.0) is a
    cache.fixed_slice(plane, 3.0)
    cache.fixed_slice(plane, 4.0)  # bounded: the oldest goes
    assert cache.fixed_slice(plane, 2.0) is not a
    coarse = cache.moving_slice(plane, 2.0, shift, coarse_factor=2)
    assert coarse.shape == plane.shape
    cache.set_images(vol, None)
    assert cache.moving_slice(plane, 2.0, shift) is None


def test_one_thread_slices_are_the_same_pixels_as_the_default_threads():
    """The window reslices on one ITK thread (a small plane waits less for busy cores)."""
    rng = np.random.default_rng(3)
    img = sitk.GetImageFromArray(rng.random((20, 37, 41)).astype(np.float32))
    vol = Volume(img)
    plane = planes_for(vol)["coronal"]
    tx = sitk.Euler3DTransform((20.0, 18.0, 10.0), 0.1, -0.05, 0.2, (1.5, -0.7, 0.3))
    one, default = SliceCache(), SliceCache(threads=None)
    assert one.threads == 1
    for cache in (one, default):
        cache.set_images(vol, vol)
    assert np.array_equal(one.fixed_slice(plane, 9.3), default.fixed_slice(plane, 9.3))
    assert np.array_equal(one.moving_slice(plane, 9.3, tx), default.moving_slice(plane, 9.3, tx))
