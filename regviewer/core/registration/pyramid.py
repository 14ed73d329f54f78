"""Pyramid images made once per run and shared by every stage and level.

ITK's ImageRegistrationMethod smooths the full-size fixed and moving images again at
every level of every Execute (a DiscreteGaussian convolution, 1.3 s per image and level
on the 1 mm brain), while only its sampling grid is shrunk. Here each level's images
are made once per run: averaged down by half the level's shrink factor (so the images
keep twice the resolution of the level's sampling grid), then smoothed with ITK's
recursive Gaussian by what the averaging has not already removed. ITK then gets sigma
0 and the remaining shrink factor. Both filters are deterministic, so reproducibility
is unaffected.

The next level's images are made in the background (`prefetch`) while the optimiser
works on the current one: reproducible Mattes MI runs on one thread, so the second
core is otherwise idle. Same filters, same numbers; only the timing changes.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import Future
from typing import Callable

import SimpleITK as sitk


# The CLI leaves with os._exit while a thread of this name is alive after an interrupt (a normal
# interpreter exit would kill it inside ITK and abort the process): background work counts as such.
BACKGROUND_THREAD_NAME = "regviewer-work"
# Added to a background thread's nice value (Linux, where a nice value belongs to a thread; capped at
# 19, the lowest): the run's own optimisation, which everything else waits for, gets a core first when
# more threads than cores are runnable, and so does the window when the engine runs in its own process;
# the background work finishes while the run waits for it anyway. Measured, alternating in one process,
# `affine-mi` on the 2 mm brain, median of 10: 0.500 / 0.497 / 0.460 s at +0 / +5 / +19 (and again
# 0.496 / 0.491 / 0.459 s); live / headless on the 1 mm brain 1.09 / 1.09x at +19 against 1.11 / 1.13x at +5.
BACKGROUND_NICE = 19


def in_background(fn: Callable, *args) -> Future:
    """Run `fn(*args)` on a new daemon thread; the Future holds its result or exception.

    SimpleITK releases the GIL while a filter or a registration runs, so this overlaps
    with the caller's own ITK work. A daemon thread, so a cancelled run that no longer
    waits for its result never keeps the process alive.

    Each image argument is handed over as a new SimpleITK image object sharing the same
    pixels (made here, on the calling thread): reading an image's pixels from numpy calls
    its `MakeUnique`, which swaps that object's buffer, and two threads doing so on one
    object (the verification and the pose search reading the fixed image at once) crashed
    the process now and then. With one object per thread a swap touches only its own.
    """
    future: Future = Future()
    own = [sitk.Image(a) if isinstance(a, sitk.Image) else a for a in args]

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        _lower_this_thread(BACKGROUND_NICE)
        try:
            result = fn(*own)
        except BaseException as exc:  # handed to whoever waits for the result
            own.clear()
            future.set_exception(exc)
            return
        # The copies go before the waiter is told: once it has the result the process may exit, and
        # a thread still freeing pixels in C++ at that moment aborts it.
        own.clear()
        future.set_result(result)

    threading.Thread(target=target, name=BACKGROUND_THREAD_NAME, daemon=True).start()
    return future


def _lower_this_thread(nice: int) -> None:
    if nice <= 0 or not sys.platform.startswith("linux"):  # elsewhere setpriority would renice the process
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:  # not allowed here: the work still runs, only without the lower priority
        pass


class PyramidCache:
    """Per-level copies of the run's images, keyed by (image, shrink, sigma, unit)."""

    def __init__(self) -> None:
        self._levels: dict[tuple, sitk.Image | Future] = {}
        self._keep: dict[int, sitk.Image] = {}  # keeps each source alive so its id() stays unique
        self._lock = threading.Lock()

    def level(self, image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool = False) -> tuple[sitk.Image, int]:
        """(the level's image, the shrink factor still to apply to the sampling grid).

        `sigma` is in voxels of `image` (or mm when `sigma_in_mm`), as in `PyramidParams`.
        """
        key, pre = self._key(image, shrink, sigma, sigma_in_mm)
        rest = max(1, int(shrink) // pre)
        if key is None:
            return image, int(shrink)
        with self._lock:
            out = self._levels.get(key)
        if isinstance(out, Future):
            out = out.result()
        if out is None:
            out = _make_level(image, pre, float(sigma), bool(sigma_in_mm))
        with self._lock:
            self._keep[id(image)] = image
            self._levels[key] = out
        return out, rest

    def prefetch(self, image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool = False) -> None:
        """Start making a level's image in the background; `level` then waits for it."""
        key, pre = self._key(image, shrink, sigma, sigma_in_mm)
        if key is None:
            return
        with self._lock:
            if key in self._levels:
                return
            self._keep[id(image)] = image
            self._levels[key] = in_background(_make_level, image, pre, float(sigma), bool(sigma_in_mm))

    def pending(self) -> list[Future]:
        """Levels still being made in the background."""
        with self._lock:
            return [f for f in self._levels.values() if isinstance(f, Future)]

    @staticmethod
    def _key(image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool) -> tuple[tuple | None, int]:
        pre = max(1, int(shrink) // 2)
        if float(sigma) == 0.0 and pre == 1:
            return None, pre
        return (id(image), pre, float(sigma), bool(sigma_in_mm)), pre

    def clear(self) -> None:
        with self._lock:
            self._levels.clear()
            self._keep.clear()


def _make_level(image: sitk.Image, pre: int, sigma: float, sigma_in_mm: bool) -> sitk.Image:
    """Average down by `pre`, then smooth by what the averaging has not already removed."""
    out = sitk.BinShrink(image, [min(pre, s) for s in image.GetSize()]) if pre > 1 else image
    # Averaging p voxels leaves a box blur of variance (p^2 - 1) / 12 voxels^2 per axis.
    sigmas = []
    for sp in image.GetSpacing():
        target = sigma if sigma_in_mm else sigma * sp
        done = sp * math.sqrt((pre * pre - 1) / 12.0)
        sigmas.append(math.sqrt(max(target * target - done * done, 0.0)))
    if max(sigmas) > 0:
        out = sitk.SmoothingRecursiveGaussian(out, sigmas)
    return out


__all__ = ["PyramidCache", "in_background"]
