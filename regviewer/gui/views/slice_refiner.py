"""Full-resolution moving slices under a costly transform, computed off the GUI thread.

Reslicing one 1 mm slice through a B-spline takes 25-65 ms; with three views redrawn
for every live snapshot and every slice step, that was most of the GUI thread's time
during a run. For such slices the window draws a coarse one at once (`COARSE_FACTOR`
times coarser: 1/16 of the points) and asks this class for the full one: one background
job per view (`gui.background.LatestResult`, so the newest request wins), and the view
redraws from the cache when the slice arrives, if it still shows that slice under that
transform. Linear transforms and small planes stay synchronous: they cost ~1 ms.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import SimpleITK as sitk
from PyQt6 import QtCore

from regviewer.core.imaging.slice_cache import SliceCache, compute_moving_slice
from regviewer.core.transforms.ops import is_linear
from regviewer.gui.background import LatestResult

log = logging.getLogger(__name__)

COARSE_FACTOR = 4  # the immediate slice: a quarter of the resolution each way
MIN_PIXELS = 20_000  # smaller planes (a 2 mm brain's) reslice fast enough on the GUI thread
SHARE = 0.25  # of one core at most for these slices, so a live run's engine keeps the CPU


class SliceRefiner(QtCore.QObject):
    """See the module docstring; `wanted` decides, `request` starts the full slice.

    The background work is kept under `share` of a core (a batch that took c seconds is
    not followed by another for c / share seconds): during a live run the engine keeps
    the CPU, the views show coarse slices of the newest snapshot meanwhile, and the last
    request of each view is always computed."""

    def __init__(self, background: LatestResult, cache: SliceCache, min_pixels: int = MIN_PIXELS,
                 share: float = SHARE, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.background = background
        self.cache = cache
        self.min_pixels = min_pixels
        self.share = share
        self._linear: tuple[int, Any, bool] = (-1, None, True)  # (cache version, transform, is linear)
        self._waiting: dict[int, tuple] = {}  # view id -> (key, view, plane, depth, transform), not started
        self._in_flight: dict[int, tuple] = {}  # view id -> key of its job running now
        self._next_start = 0.0
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start_waiting)
        self.kinds: set[str] = set()

    def wanted(self, plane: Any, transform: sitk.Transform) -> bool:
        """True when this plane under this transform is worth computing in the background."""
        if plane.shape[0] * plane.shape[1] < self.min_pixels:
            return False
        version = self.cache.version
        if self._linear[0] != version or self._linear[1] is not transform:
            self._linear = (version, transform, is_linear(transform))
        return not self._linear[2]

    def request(self, view: Any, plane: Any, depth: float, transform: sitk.Transform) -> None:
        """Compute the full slice in the background, then redraw `view` if it still shows it."""
        key = (self.cache.version, plane, round(float(depth), 6))
        if self._in_flight.get(id(view)) == key:
            return  # already on its way (a redraw of the same slice, e.g. an overlay change)
        self._waiting[id(view)] = (key, view, plane, float(depth), transform)
        if not self._timer.isActive():
            self._timer.start(max(0, int(1000 * (self._next_start - time.perf_counter()))))

    def _start_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for key, view, plane, depth, transform in waiting.values():
            if key[0] == self.cache.version:
                self._submit(key, view, plane, depth, transform)

    def _submit(self, key: tuple, view: Any, plane: Any, depth: float, transform: sitk.Transform) -> None:
        version = key[0]
        moving = self.cache.moving.sitk
        self._in_flight[id(view)] = key

        def work() -> Any:
            start = time.perf_counter()
            # one ITK thread: the other core stays with the engine and the GUI thread
            return compute_moving_slice(moving, plane, depth, transform, threads=1), time.perf_counter() - start

        def done(result: Any, error: BaseException | None) -> None:
            if self._in_flight.get(id(view)) == key:
                del self._in_flight[id(view)]
            if error is not None:
                log.warning("a moving slice could not be computed: %s", error)
                return
            slice_, cost = result
            self._next_start = max(self._next_start, time.perf_counter() + cost / self.share)
            if self.cache.put_moving(plane, depth, version, slice_) and view.plane == plane \
                    and abs(float(view.depth) - depth) < 1e-6:
                view.refresh()

        kind = f"slice-{id(view)}"
        self.kinds.add(kind)
        self.background.submit(kind, work, done)

    def wait(self, timeout: float = 30.0) -> None:
        """Start what waits for its turn, then block until every requested slice has
        arrived and been drawn (tests, screenshots)."""
        self._timer.stop()
        self._start_waiting()
        for kind in sorted(self.kinds):
            self.background.wait(kind, timeout)
