"""Pyramid images made once per run and shared by every stage and level.

ITK's ImageRegistrationMethod smooths the full-size fixed and moving images again at
every level of every Execute (a DiscreteGaussian convolution, 1.3 s per image and level
on the 1 mm brain), while only its sampling grid is shrunk. Here each level's images
are made once per run: averaged down by half the level's shrink factor (so the images
keep twice the resolution of the level's sampling grid), then smoothed with ITK's
recursive Gaussian by what the averaging has not already removed. ITK then gets sigma
0 and the remaining shrink factor. Both filters are deterministic, so reproducibility
is unaffected.
"""

from __future__ import annotations

import math

import SimpleITK as sitk


class PyramidCache:
    """Per-level copies of the run's images, keyed by (image, shrink, sigma, unit)."""

    def __init__(self) -> None:
        self._levels: dict[tuple, sitk.Image] = {}
        self._keep: dict[int, sitk.Image] = {}  # keeps each source alive so its id() stays unique

    def level(self, image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool = False) -> tuple[sitk.Image, int]:
        """(the level's image, the shrink factor still to apply to the sampling grid).

        `sigma` is in voxels of `image` (or mm when `sigma_in_mm`), as in `PyramidParams`.
        """
        shrink, sigma = int(shrink), float(sigma)
        pre = max(1, shrink // 2)
        if sigma == 0.0 and pre == 1:
            return image, shrink
        key = (id(image), pre, sigma, bool(sigma_in_mm))
        out = self._levels.get(key)
        if out is None:
            self._keep[id(image)] = image
            out = sitk.BinShrink(image, [min(pre, s) for s in image.GetSize()]) if pre > 1 else image
            spacing = image.GetSpacing()
            # Averaging p voxels leaves a box blur of variance (p^2 - 1) / 12 voxels^2 per axis.
            sigmas = []
            for sp in spacing:
                target = sigma if sigma_in_mm else sigma * sp
                done = sp * math.sqrt((pre * pre - 1) / 12.0)
                sigmas.append(math.sqrt(max(target * target - done * done, 0.0)))
            if max(sigmas) > 0:
                out = sitk.SmoothingRecursiveGaussian(out, sigmas)
            self._levels[key] = out
        return out, max(1, shrink // pre)

    def clear(self) -> None:
        self._levels.clear()
        self._keep.clear()


__all__ = ["PyramidCache"]
