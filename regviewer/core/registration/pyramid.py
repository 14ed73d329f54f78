"""Pyramid images made once per run and shared by every stage and level.

ITK's ImageRegistrationMethod smooths the FULL-resolution fixed and moving images
again at every level of every Execute (and the metric then computes a gradient image
of the full moving image): on a 1 mm brain that is about 2 s per level before the
first iteration. Here each (shrink, sigma) level is smoothed (ITK's own
DiscreteGaussian, as the registration method does) and shrunk once; the engine then
runs every level at shrink 1, sigma 0 on these small images. The filters are
multi-threaded and deterministic, so reproducibility is unaffected.
"""

from __future__ import annotations

import SimpleITK as sitk


class PyramidCache:
    """Smoothed, shrunk copies of the run's images, keyed by (image, shrink, sigma, unit)."""

    def __init__(self) -> None:
        self._levels: dict[tuple, sitk.Image] = {}
        self._keep: dict[int, sitk.Image] = {}  # keeps each source alive so its id() stays unique

    def level(self, image: sitk.Image, shrink: int, sigma: float, sigma_in_mm: bool = False) -> sitk.Image:
        """`image` smoothed by `sigma` (voxels, or mm when `sigma_in_mm`) then shrunk by `shrink`."""
        shrink, sigma = int(shrink), float(sigma)
        if shrink == 1 and sigma == 0.0:
            return image
        key = (id(image), shrink, sigma, bool(sigma_in_mm))
        out = self._levels.get(key)
        if out is None:
            self._keep[id(image)] = image
            out = image
            if sigma > 0:
                out = sitk.DiscreteGaussian(out, variance=sigma * sigma, maximumKernelWidth=64, maximumError=0.01,
                                            useImageSpacing=bool(sigma_in_mm))
            if shrink > 1:
                out = sitk.Shrink(out, [min(shrink, s) for s in image.GetSize()])
            self._levels[key] = out
        return out

    def clear(self) -> None:
        self._levels.clear()
        self._keep.clear()


__all__ = ["PyramidCache"]
