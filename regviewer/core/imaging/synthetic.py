"""Image pairs with a known ground truth, for the demo, the tests and the benchmarks.

A "T2-like" image is synthesised from tissue maps (bright CSF, mid grey matter,
dark white matter: a non-monotonic remap of a T1, so only mutual information can
align the two). A moving image is made by warping with a known transform `true`
that maps FIXED points to MOVING points: moving(true(p)) == fixed(p). A registration
that recovers `true` is scored by the target registration error at brain points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.transforms.storable import elementary_transforms


def t2_like(t1: sitk.Image, gm: sitk.Image, wm: sitk.Image) -> sitk.Image:
    """uint8 T2-like contrast from a T1 (for the head outline) and GM/WM probability maps (0–255)."""
    t1a = sitk.GetArrayFromImage(sitk.Cast(t1, sitk.sitkFloat32))
    g = sitk.GetArrayFromImage(sitk.Cast(gm, sitk.sitkFloat32)) / 255.0
    w = sitk.GetArrayFromImage(sitk.Cast(wm, sitk.sitkFloat32)) / 255.0
    head = (t1a > 0.06 * t1a.max()).astype(np.float32)
    csf = np.clip(head - g - w, 0.0, 1.0)
    t2 = 220.0 * csf + 120.0 * g + 40.0 * w
    out = sitk.GetImageFromArray(np.clip(t2, 0, 255).astype(np.uint8))
    out.CopyInformation(t1)
    return out


def affine_transform(
    center: Sequence[float],
    rotation_deg: Sequence[float] = (0.0, 0.0, 10.0),
    translation_mm: Sequence[float] = (8.0, -6.0, 5.0),
    scale: Sequence[float] = (1.0, 1.0, 1.0),
) -> sitk.AffineTransform:
    """A fixed→moving affine about `center`: rotations (about x, y, z in 3D; one angle in
    2D), per-axis scale, then translation."""
    dim = len(center)
    if dim == 2:
        a = np.deg2rad(rotation_deg[-1])
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    else:
        rx, ry, rz = np.deg2rad(rotation_deg)
        mx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
        my = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
        mz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
        rot = mz @ my @ mx
    matrix = rot @ np.diag(np.asarray(scale[:dim], dtype=float))
    tx = sitk.AffineTransform(dim)
    tx.SetCenter([float(c) for c in center])
    tx.SetMatrix(matrix.ravel().tolist())
    tx.SetTranslation([float(t) for t in translation_mm[:dim]])
    return tx


def smooth_warp(reference: sitk.Image, max_mm: float = 3.0, seed: int = 0, mesh_size: int = 4) -> sitk.BSplineTransform:
    """A smooth random B-spline deformation over the reference's extent whose control-point
    displacements are at most `max_mm` (the field itself stays below that)."""
    dim = reference.GetDimension()
    tx = sitk.BSplineTransformInitializer(reference, [mesh_size] * dim, order=3)
    rng = np.random.default_rng(seed)
    n = len(tx.GetParameters())
    coeffs = rng.uniform(-1.0, 1.0, n) * max_mm
    # Zero the outer ring of control points so the border stays still.
    grid = np.array(tx.GetCoefficientImages()[0].GetSize())
    mask = np.zeros(tuple(grid[::-1]), dtype=bool)
    inner = tuple(slice(1, g - 1) for g in grid[::-1])
    mask[inner] = True
    coeffs = coeffs.reshape(dim, -1) * mask.ravel()[None, :]
    tx.SetParameters(coeffs.ravel().tolist())
    return tx


def _flatten(transform: sitk.Transform) -> list[sitk.Transform]:
    """The transforms of a composite in the order they are APPLIED to a point."""
    return elementary_transforms(transform)[::-1]  # ITK applies the last-added transform first


def invert(transform: sitk.Transform, reference: sitk.Image) -> sitk.Transform:
    """The inverse of `transform`: analytic for linear parts, by fixed-point iteration of
    the displacement field on `reference`'s grid for deformable parts."""
    inverses: list[sitk.Transform] = []
    for part in _flatten(transform):
        try:
            inverses.append(part.GetInverse())
        except RuntimeError:
            field = sitk.TransformToDisplacementField(
                part, sitk.sitkVectorFloat64, reference.GetSize(), reference.GetOrigin(), reference.GetSpacing(), reference.GetDirection()
            )
            inv_field = sitk.InvertDisplacementField(field, maximumNumberOfIterations=50, meanErrorToleranceThreshold=1e-4, maxErrorToleranceThreshold=0.01)
            inverses.append(sitk.DisplacementFieldTransform(inv_field))
    # inverse = parts inverted in reverse order of application; a composite applies its last first
    return sitk.CompositeTransform(inverses) if len(inverses) > 1 else inverses[0]


def warp_image(image: sitk.Image, true_fixed_to_moving: sitk.Transform, default_value: float = 0.0) -> sitk.Image:
    """The moving image for a fixed `image`: moving(true(p)) == image(p), on the same grid."""
    inverse = invert(true_fixed_to_moving, image)
    return sitk.Resample(image, image, inverse, sitk.sitkLinear, default_value, image.GetPixelID())


def target_registration_error(estimated: sitk.Transform, true: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Distance in mm between estimated(p) and true(p) for each fixed-space point p."""
    est = np.array([estimated.TransformPoint([float(x) for x in p]) for p in points])
    ref = np.array([true.TransformPoint([float(x) for x in p]) for p in points])
    return np.linalg.norm(est - ref, axis=1)


def brain_points(mask: sitk.Image, n: int = 2000, seed: int = 0) -> np.ndarray:
    """`n` random physical points (LPS mm) at the centres of nonzero voxels of `mask`."""
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr > 0)
    rng = np.random.default_rng(seed)
    pick = idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)]
    return np.array([mask.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in pick])


@dataclass
class KnownPair:
    fixed: sitk.Image
    moving: sitk.Image
    true: sitk.Transform  # fixed → moving
    true_affine: sitk.Transform
    mask: sitk.Image  # on the fixed grid


def brain_pair(data: str | Path, shrink: int = 2, warp_mm: float = 3.0, seed: int = 0, with_warp: bool = True,
               grid: str = "1mm") -> KnownPair:
    """MNI T1 (fixed) and a T2-like moving image misaligned by a known affine (10°, ~11 mm,
    5 % scale) and, optionally, a mild smooth warp; both on a `shrink`-times coarser grid.
    `data` holds `mni152_2009a_{t1,gm,wm}_<grid>.nii.gz` (the 1 mm templates, or the 4 mm
    copies the tests ship in `tests/data/`)."""
    d = Path(data)
    t1, gm, wm = (sitk.ReadImage(str(d / f"mni152_2009a_{k}_{grid}.nii.gz")) for k in ("t1", "gm", "wm"))
    if shrink > 1:
        t1, gm, wm = (sitk.BinShrink(img, [shrink] * 3) for img in (t1, gm, wm))
    t2 = t2_like(t1, gm, wm)
    mask_arr = (sitk.GetArrayFromImage(gm).astype(np.float32) + sitk.GetArrayFromImage(wm)) / 255.0 > 0.3
    mask = sitk.GetImageFromArray(mask_arr.astype(np.uint8))
    mask.CopyInformation(t1)
    centre = t1.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in t1.GetSize()])
    affine = affine_transform(centre, rotation_deg=(4.0, -3.0, 9.0), translation_mm=(8.0, -6.0, 5.0), scale=(1.05, 1.0, 0.97))
    true: sitk.Transform = affine
    if with_warp:
        warp = smooth_warp(t1, max_mm=warp_mm, seed=seed)
        true = sitk.CompositeTransform([affine, warp])  # warp applied first, then the affine
    moving = warp_image(t2, true)
    return KnownPair(fixed=t1, moving=moving, true=true, true_affine=affine, mask=mask)


def photo_pair(rgb: sitk.Image, size: int = 480, warp_px: float = 6.0, seed: int = 0) -> KnownPair:
    """A colour photograph resized to `size` px (spacing 1, origin 0) and a rotated (12°),
    scaled (1.08), shifted and gently warped copy of it."""
    in_size = rgb.GetSize()
    factor = in_size[0] / size
    out_size = [size, int(round(in_size[1] / factor))]
    smooth = sitk.Compose([sitk.SmoothingRecursiveGaussian(sitk.VectorIndexSelectionCast(rgb, c, sitk.sitkFloat32), factor * rgb.GetSpacing()[0] * 0.5) for c in range(3)])
    resized = sitk.Resample(
        smooth, out_size, sitk.Transform(), sitk.sitkLinear, rgb.GetOrigin(),
        [sp * factor for sp in rgb.GetSpacing()], rgb.GetDirection(), 0.0, sitk.sitkVectorFloat32,
    )
    arr = np.clip(sitk.GetArrayFromImage(resized), 0, 255).astype(np.uint8)
    fixed = sitk.GetImageFromArray(arr, isVector=True)  # spacing 1, origin 0
    centre = [(s - 1) / 2 for s in fixed.GetSize()]
    affine = affine_transform(centre, rotation_deg=(12.0,), translation_mm=(14.0, -9.0), scale=(1.08, 1.08))
    warp = smooth_warp(fixed, max_mm=warp_px, seed=seed, mesh_size=3)
    true = sitk.CompositeTransform([affine, warp])
    moving = warp_image(fixed, true)
    mask = sitk.GetImageFromArray((arr.mean(axis=2) > 20).astype(np.uint8))
    return KnownPair(fixed=fixed, moving=moving, true=true, true_affine=affine, mask=mask)
