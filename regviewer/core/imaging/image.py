"""The image model: a `Volume` wraps one SimpleITK image (2D or 3D, scalar or RGB).

Physical space is ITK's: LPS millimetres, origin/spacing/direction honoured. Index
order in SimpleITK calls is (x, y, z); numpy arrays from `array()` are (z, y, x).
The wrapped image keeps its file's pixel type (a uint8 brain stays uint8); a float32
scalar copy for metrics is made once, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import UnsupportedImageError

Point = tuple[float, ...]

# ITU-R BT.601 luma: the channel metrics see for an RGB image.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(eq=False)
class Volume:
    """One image and where it came from.

    `sitk` is the image as read (RGB stays a 3-component vector image for display);
    `scalar()` is the float32 single-channel image registration metrics use.
    """

    sitk: sitk.Image
    path: str | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.sitk.GetDimension() not in (2, 3):
            raise UnsupportedImageError(self.path or "<image>", f"it has {self.sitk.GetDimension()} dimensions; only 2D and 3D images are supported")
        if any(s <= 0 for s in self.sitk.GetSpacing()):
            raise UnsupportedImageError(self.path or "<image>", f"its voxel spacing {tuple(self.sitk.GetSpacing())} has a zero or negative value")
        self._scalar: sitk.Image | None = None
        self._window_level: tuple[float, float] | None = None

    # --- geometry -----------------------------------------------------------------
    @property
    def name(self) -> str:
        if not self.path:
            return "image"
        from pathlib import Path

        return Path(self.path).name

    @property
    def dimension(self) -> int:
        return self.sitk.GetDimension()

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.sitk.GetSize())

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(self.sitk.GetSpacing())

    @property
    def origin(self) -> tuple[float, ...]:
        return tuple(self.sitk.GetOrigin())

    @property
    def direction(self) -> np.ndarray:
        """Direction cosines as a (dim, dim) matrix; column i is index axis i in LPS."""
        d = self.dimension
        return np.array(self.sitk.GetDirection(), dtype=float).reshape(d, d)

    @property
    def n_components(self) -> int:
        return self.sitk.GetNumberOfComponentsPerPixel()

    @property
    def is_rgb(self) -> bool:
        return self.n_components in (3, 4)

    def index_to_physical(self, index: Sequence[float]) -> Point:
        """Continuous (x, y[, z]) voxel index → physical LPS point in mm."""
        return tuple(self.sitk.TransformContinuousIndexToPhysicalPoint([float(i) for i in index]))

    def physical_to_index(self, point: Sequence[float]) -> Point:
        """Physical LPS point in mm → continuous (x, y[, z]) voxel index."""
        return tuple(self.sitk.TransformPhysicalPointToContinuousIndex([float(p) for p in point]))

    def corners_physical(self) -> np.ndarray:
        """The physical positions of the 2^dim corner voxel centres, shape (2^dim, dim)."""
        d = self.dimension
        size = self.size
        corners = []
        for bits in range(2**d):
            idx = [(size[a] - 1) if (bits >> a) & 1 else 0 for a in range(d)]
            corners.append(self.index_to_physical(idx))
        return np.array(corners)

    def center_physical(self) -> Point:
        """The physical centre of the voxel grid (what ITK's geometry initialiser uses)."""
        return self.index_to_physical([(s - 1) / 2.0 for s in self.size])

    def contains(self, point: Sequence[float]) -> bool:
        idx = self.physical_to_index(point)
        return all(-0.5 <= i <= s - 0.5 for i, s in zip(idx, self.size))

    # --- pixels -------------------------------------------------------------------
    def array(self) -> np.ndarray:
        """A read-only numpy view (z, y, x[, c]) of the pixels: no copy."""
        return sitk.GetArrayViewFromImage(self.sitk)

    def scalar(self) -> sitk.Image:
        """Float32 single-channel image for metrics (luminance for RGB), cached."""
        if self._scalar is None:
            self._scalar = without_non_finite(to_scalar_float32(self.sitk))[0]
        return self._scalar

    def value_at(self, point: Sequence[float]) -> float | tuple[float, ...] | None:
        """The nearest voxel's value at a physical point, or None outside the image."""
        idx = self.physical_to_index(point)
        nearest = [int(round(i)) for i in idx]
        if any(n < 0 or n >= s for n, s in zip(nearest, self.size)):
            return None
        value = self.sitk.GetPixel(nearest)
        return tuple(float(v) for v in value) if isinstance(value, tuple) else float(value)

    def default_window_level(self) -> tuple[float, float]:
        """Robust (window, level) from the 0.5th–99.5th percentiles, as ITK-SNAP does.

        Computed on at most ~1M voxels (a strided subsample) so a large image costs
        milliseconds, not a full sort.
        """
        if self._window_level is None:
            values = self.array()
            if self.is_rgb:
                return (255.0, 127.5)
            flat = values.reshape(-1)
            step = max(1, flat.size // 1_000_000)
            sample = flat[::step]
            lo, hi = np.percentile(sample, [0.5, 99.5]).astype(float)
            if hi <= lo:
                lo, hi = float(sample.min()), float(sample.max())
                if hi <= lo:
                    hi = lo + 1.0
            self._window_level = (hi - lo, (hi + lo) / 2.0)
        return self._window_level

    def __repr__(self) -> str:
        kind = "RGB" if self.is_rgb else "scalar"
        return f"Volume({self.name!r}, {self.dimension}D {kind}, size={self.size}, spacing={self.spacing})"


def to_scalar_float32(image: sitk.Image) -> sitk.Image:
    """Float32 single channel: luminance of RGB(A), a plain cast otherwise."""
    n = image.GetNumberOfComponentsPerPixel()
    if n == 1:
        if image.GetPixelID() == sitk.sitkFloat32:
            return image
        return sitk.Cast(image, sitk.sitkFloat32)
    if n in (3, 4):
        channels = [sitk.VectorIndexSelectionCast(image, c, sitk.sitkFloat32) for c in range(3)]
        lum = channels[0] * _LUMA_WEIGHTS[0] + channels[1] * _LUMA_WEIGHTS[1] + channels[2] * _LUMA_WEIGHTS[2]
        lum.CopyInformation(image)
        return lum
    raise UnsupportedImageError("<image>", f"it has {n} components per pixel; only grey (1) and RGB(A) (3 or 4) are supported")


def without_non_finite(image: sitk.Image) -> tuple[sitk.Image, int]:
    """The image with NaN and Inf voxels set to 0, and how many there were. ITK's
    filters (the centre-of-mass initialiser above all) loop forever or return nonsense on
    them, so they never reach the engine."""
    if image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64, sitk.sitkVectorFloat32, sitk.sitkVectorFloat64):
        return image, 0
    view = sitk.GetArrayViewFromImage(image)
    bad = ~np.isfinite(view)
    count = int(np.count_nonzero(bad))
    if not count:
        return image, 0
    clean = np.where(bad, 0, view)
    out = sitk.GetImageFromArray(clean, isVector=image.GetNumberOfComponentsPerPixel() > 1)
    out.CopyInformation(image)
    return out, count


def as_volume(image: "Volume | sitk.Image | str") -> Volume:
    """Accept a Volume, a SimpleITK image or a path (read from disk)."""
    if isinstance(image, Volume):
        return image
    if isinstance(image, sitk.Image):
        return Volume(image)
    from regviewer.core.imaging.io import read_image

    return read_image(image)


def non_finite_note(count: int) -> str:
    return (f"{count} voxel(s) are NaN or infinite; they are set to 0 and left out of the intensity range "
            "(registration treats them as background)")
