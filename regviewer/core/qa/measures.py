"""Measures of registration quality: pure functions over SimpleITK images and numpy.

Conventions: every `transform` maps FIXED points to MOVING points (ITK's resampling
direction), all maps are computed on the FIXED image's grid (the `reference`), and
distances are physical millimetres (LPS). Label-map overlap (Dice, Hausdorff) is in `labels`.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import IncompatibleImagesError
from regviewer.core.qa.tre import summarise
from regviewer.core.imaging.image import Volume, to_scalar_float32

# Histogram bins for mutual information: enough to resolve tissue classes, few enough
# that the joint histogram of a 1M-voxel volume is well populated.
MI_BINS = 32
SIMILARITY_MAX_VOXELS = 2_000_000


def _as_sitk(image) -> sitk.Image:
    return image.sitk if isinstance(image, Volume) else image


def _grid_of(reference) -> sitk.Image:
    """An image carrying only the fixed grid (size, origin, spacing, direction)."""
    return _as_sitk(reference)


# --- deformation ------------------------------------------------------------------
def displacement_field(transform: sitk.Transform, reference) -> sitk.Image:
    """u(x) = T(x) - x sampled at every fixed voxel centre x (vector float64, LPS mm)."""
    ref = _grid_of(reference)
    return sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, ref.GetSize(), ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection()
    )


def jacobian_determinant(transform: sitk.Transform, reference) -> sitk.Image:
    """det(dT/dx) at every voxel of the fixed grid (float32, same geometry as `reference`).

    1 means volume preserved, > 1 local expansion of the fixed region in the moving
    image, <= 0 folding (the transform is not invertible there). Computed with
    SimpleITK's displacement-field Jacobian filter (central differences). Two details
    make it exact for any affine everywhere: the field is extended by one voxel on
    every side by linear extrapolation (so border voxels get one-sided differences
    instead of the filter's zero-flux boundary, and the transform is never sampled
    outside the image, where a B-spline's support may end), and, since the filter
    differentiates along the index axes and ignores the direction cosines, the vectors
    are first rotated into the index frame (det(I + D^T G D) = det(I + G) for the
    physical gradient G).
    """
    return deformation_maps(transform, reference)[0]


def _extend_linearly(a: np.ndarray, n_axes: int) -> np.ndarray:
    """Grow the first `n_axes` axes by one sample each side: 2*a[0] - a[1] (edge copy if length 1)."""
    for axis in range(n_axes):
        first = np.take(a, [0], axis=axis)
        last = np.take(a, [-1], axis=axis)
        if a.shape[axis] > 1:
            first = 2 * first - np.take(a, [1], axis=axis)
            last = 2 * last - np.take(a, [-2], axis=axis)
        a = np.concatenate([first, a, last], axis=axis)
    return a


# Voxels per slab of `deformation_maps`: its float64 temporaries stay near 10 MB per
# copy whatever the image size (a 4M-voxel field at once took ~400 MB at its peak).
SLAB_VOXELS = 150_000


def deformation_maps(transform: sitk.Transform, reference, slab_voxels: int = SLAB_VOXELS) -> tuple[sitk.Image, sitk.Image]:
    """(Jacobian determinant, displacement magnitude in mm) on the fixed grid, from ONE
    evaluation of the transform (the costly part for B-splines and fields).

    Computed slab by slab along the slowest axis, each slab with a one-voxel halo of
    real neighbours (linear extrapolation only at the image's own borders), so the
    central differences, and hence the numbers, are those of the whole field at once
    while the memory is that of one slab."""
    ref = _grid_of(reference)
    dim = ref.GetDimension()
    direction = np.array(ref.GetDirection(), dtype=float).reshape(dim, dim)
    rotate = not np.allclose(direction, np.eye(dim))
    size = ref.GetSize()
    n_slow = size[-1]  # numpy axis 0
    per_slice = int(np.prod(size[:-1]))
    step = max(1, int(slab_voxels) // max(per_slice, 1))
    jac_out = np.empty(tuple(reversed(size)), np.float32)
    mag_out = np.empty(tuple(reversed(size)), np.float32)
    for z0 in range(0, n_slow, step):
        z1 = min(z0 + step, n_slow)
        a, b = max(z0 - 1, 0), min(z1 + 1, n_slow)
        origin = ref.TransformIndexToPhysicalPoint((0,) * (dim - 1) + (a,))
        field = sitk.TransformToDisplacementField(
            transform, sitk.sitkVectorFloat64, tuple(size[:-1]) + (b - a,), origin, ref.GetSpacing(), ref.GetDirection()
        )
        vectors = sitk.GetArrayFromImage(field)  # (b - a, ..., dim), the slab and its halo
        del field
        inner = slice(z0 - a, z0 - a + (z1 - z0))
        mag_out[z0:z1] = np.sqrt(np.sum(vectors[inner] ** 2, axis=-1))
        if rotate:
            vectors = vectors @ direction  # row vector u^T D == (D^T u)^T
        jac_out[z0:z1] = _jacobian_of_slab(vectors, ref.GetSpacing(), dim, extend_start=a == z0, extend_end=b == z1)
        del vectors
    jac = sitk.GetImageFromArray(jac_out)
    del jac_out  # one copy of each map at a time
    jac.CopyInformation(ref)
    magnitude = sitk.GetImageFromArray(mag_out)
    del mag_out
    magnitude.CopyInformation(ref)
    return jac, magnitude


def _jacobian_of_slab(vectors: np.ndarray, spacing, dim: int, extend_start: bool, extend_end: bool) -> np.ndarray:
    """det(I + grad u) (float32) of the slab inside its halo: vectors in the index frame,
    axis 0 carrying one halo slice at each end that is not an image border, where it is
    extended linearly instead (as the other axes always are)."""
    if extend_start or extend_end:
        grown = _extend_linearly(vectors, 1)
        vectors = grown[(0 if extend_start else 1):(len(grown) if extend_end else len(grown) - 1)]
    extended = np.moveaxis(_extend_linearly(np.moveaxis(vectors, 0, -2), dim - 1), -2, 0) if dim > 1 else vectors
    image = sitk.GetImageFromArray(np.ascontiguousarray(extended), isVector=True)
    del extended
    image.SetSpacing(spacing)
    jac = sitk.DisplacementFieldJacobianDeterminant(image, True)
    del image
    return sitk.GetArrayViewFromImage(jac)[(slice(1, -1),) * dim].astype(np.float32)


def mask_on_grid(mask, like: sitk.Image) -> np.ndarray | None:
    """A boolean (z, y, x) array of `mask` (> 0 is inside) on the grid of `like`,
    resampled nearest-neighbour when the grids differ; None when `mask` is None."""
    if mask is None:
        return None
    m = _as_sitk(mask)
    if m.GetNumberOfComponentsPerPixel() > 1:
        m = to_scalar_float32(m)
    same = (
        m.GetSize() == like.GetSize()
        and np.allclose(m.GetOrigin(), like.GetOrigin(), atol=1e-4)
        and np.allclose(m.GetSpacing(), like.GetSpacing(), atol=1e-6)
        and np.allclose(m.GetDirection(), like.GetDirection(), atol=1e-6)
    )
    if not same:
        if m.GetDimension() != like.GetDimension():
            raise IncompatibleImagesError(
                f"The mask is {m.GetDimension()}D but the image it should cover is {like.GetDimension()}D"
            )
        m = sitk.Resample(m, like, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    return sitk.GetArrayViewFromImage(m) > 0


def jacobian_stats(jac_image: sitk.Image, mask=None) -> dict:
    """min, max, mean of the Jacobian determinant and the % of voxels <= 0 (folding),
    inside `mask` (any image; > 0 is inside) when given. Also the counts behind the %."""
    values = sitk.GetArrayViewFromImage(jac_image)
    inside = mask_on_grid(mask, jac_image)
    v = values[inside] if inside is not None else values.ravel()
    if v.size == 0:
        return {"min": None, "max": None, "mean": None, "folding_percent": None, "folding_voxels": 0, "n_voxels": 0}
    folding = int(np.count_nonzero(v <= 0))
    return {
        "min": float(v.min()),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "folding_percent": 100.0 * folding / v.size,
        "folding_voxels": folding,
        "n_voxels": int(v.size),
    }


def displacement_magnitude(transform: sitk.Transform, reference) -> sitk.Image:
    """|T(x) - x| in mm at every voxel of the fixed grid (float32)."""
    mag = sitk.VectorMagnitude(displacement_field(transform, reference))
    return sitk.Cast(mag, sitk.sitkFloat32)


def displacement_stats(magnitude: sitk.Image, mask=None) -> dict:
    """mean, p95 and max displacement (mm) inside `mask`."""
    values = sitk.GetArrayViewFromImage(magnitude)
    inside = mask_on_grid(mask, magnitude)
    v = values[inside] if inside is not None else values.ravel()
    s = summarise(v).as_dict(none_for_nan=True)
    return {"mean": s["mean_mm"], "p95": s["p95_mm"], "max": s["max_mm"]}


# --- inverse consistency ----------------------------------------------------------
def inverse_consistency_error(
    forward: sitk.Transform, backward: sitk.Transform, reference, mask=None
) -> dict:
    """||backward(forward(x)) - x|| in mm for x on the fixed grid (inside `mask`).

    `forward` maps fixed -> moving, `backward` maps moving -> fixed (e.g. the result of
    registering the images the other way round). A perfectly consistent pair gives 0.
    Returns mean, p95 and max.
    """
    round_trip = sitk.CompositeTransform([backward, forward])  # the last listed is applied first
    magnitude = displacement_magnitude(round_trip, reference)
    return displacement_stats(magnitude, mask)


# --- image similarity -------------------------------------------------------------
def _overlap_values(fixed, moving, transform: sitk.Transform | None, mask) -> tuple[np.ndarray, np.ndarray]:
    """Fixed and resampled-moving intensities at fixed voxels whose T(x) lies in the moving image."""
    f = to_scalar_float32(_as_sitk(fixed))
    m = _as_sitk(moving)
    if m.GetNumberOfComponentsPerPixel() > 1:  # RGB: its luminance; a grey image is resampled as it is,
        m = to_scalar_float32(m)  # straight to float32 (the same numbers as a cast first, without a copy)
    if f.GetDimension() != m.GetDimension():
        raise IncompatibleImagesError(
            f"The fixed image is {f.GetDimension()}D and the moving image {m.GetDimension()}D; similarity needs both the same"
        )
    tx = transform if transform is not None else sitk.Transform(f.GetDimension(), sitk.sitkIdentity)
    # NaN outside the moving image marks the fixed voxels whose T(x) falls outside it.
    warped = sitk.GetArrayFromImage(sitk.Resample(m, f, tx, sitk.sitkLinear, float("nan"), sitk.sitkFloat32))
    inside = ~np.isnan(warped)
    region = mask_on_grid(mask, f)
    if region is not None:
        inside = inside & region
    return sitk.GetArrayViewFromImage(f)[inside], warped[inside]


def mutual_information(a: np.ndarray, b: np.ndarray, bins: int = MI_BINS) -> float:
    """Mutual information (nats) of two paired samples from their joint histogram.

    The histogram is that of `np.histogram2d(a, b, bins)` (equal bins between each
    sample's min and max), counted in chunks: the same counts, without the ~40 bytes
    per sample numpy's binning takes at once."""
    if a.size < 2:
        return 0.0
    edges = [_bin_edges(a, bins), _bin_edges(b, bins)]
    joint = np.zeros((bins, bins))
    for start in range(0, a.size, CHUNK):
        joint += np.histogram2d(a[start:start + CHUNK], b[start:start + CHUNK], bins=edges)[0]
    p = joint / joint.sum()
    pa = p.sum(axis=1, keepdims=True)
    pb = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))


CHUNK = 262_144  # samples per pass in the chunked sums above and below


def _bin_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """The edges `np.histogram2d` takes for an integer number of bins."""
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r in float64, summed in chunks (no float64 copies of whole samples)."""
    n = a.size
    mean_a, mean_b = float(np.mean(a, dtype=np.float64)), float(np.mean(b, dtype=np.float64))
    sab = saa = sbb = 0.0
    for start in range(0, n, CHUNK):
        da = a[start:start + CHUNK].astype(np.float64) - mean_a
        db = b[start:start + CHUNK].astype(np.float64) - mean_b
        sab += float(da @ db)
        saa += float(da @ da)
        sbb += float(db @ db)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0


def subsample_grid(image: sitk.Image, max_voxels: int) -> sitk.Image:
    """Every k-th voxel along each axis (same physical region, spacing x k), so at most
    about `max_voxels` remain; the image itself when it is small enough. No interpolation."""
    n = int(np.prod(image.GetSize()))
    if n <= max_voxels:
        return image
    k = int(np.ceil((n / max_voxels) ** (1.0 / image.GetDimension())))
    return image[(slice(None, None, k),) * image.GetDimension()]


def similarity(fixed, moving, transform: sitk.Transform | None, mask=None, max_voxels: int = SIMILARITY_MAX_VOXELS) -> dict:
    """Image similarity after mapping the moving image onto the fixed grid with `transform`
    (fixed -> moving; None = identity, i.e. "before registration").

    mutual_information: nats from a 32-bin joint histogram (higher is better, works
    across modalities); correlation: Pearson's r of the intensities (same-modality
    check; -1..1); overlap_percent: share of fixed (masked) voxels that map inside the
    moving image, the region both numbers are computed on. A fixed image above
    `max_voxels` is sampled at every k-th voxel along each axis (no interpolation).
    MI from a histogram depends a little on the number of samples (about 2 % between
    30 k and 240 k brain voxels), so compare before/after values of one image pair.
    """
    f = subsample_grid(_as_sitk(fixed), max_voxels)
    if f is _as_sitk(fixed):
        # An object of its own (at most `max_voxels`): reading pixels from numpy swaps the object's
        # buffer (MakeUnique), and the window's thread may be reading the same image object meanwhile.
        f = sitk.Image(f)
    a, b = _overlap_values(f, moving, transform, mask)
    region = mask_on_grid(mask, f)
    n_total = int(np.count_nonzero(region)) if region is not None else int(np.prod(f.GetSize()))
    if a.size < 2 or float(a.std()) == 0.0 or float(b.std()) == 0.0:
        corr = 0.0
    else:
        corr = pearson(a, b)
    return {
        "mutual_information": mutual_information(a, b),
        "correlation": corr,
        "overlap_percent": 100.0 * a.size / n_total if n_total else 0.0,
    }


def finite_or_none(value):
    """JSON has no inf/NaN: map them to None, leave other numbers as plain floats."""
    if value is None:
        return None
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


def json_ready(obj):
    """Recursively turn numpy numbers / inf / NaN / int keys into plain JSON values."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return finite_or_none(obj)


__all__ = [
    "displacement_field",
    "mask_on_grid",
    "jacobian_determinant",
    "jacobian_stats",
    "displacement_magnitude",
    "deformation_maps",
    "subsample_grid",
    "displacement_stats",
    "inverse_consistency_error",
    "mutual_information",
    "similarity",
    "json_ready",
]
