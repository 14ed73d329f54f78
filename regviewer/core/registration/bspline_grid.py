"""The B-spline control grid a stage starts on, and its exact refinement between pyramid levels."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def mesh_for_spacing(image: sitk.Image, spacing_mm: float) -> list[int]:
    """Control-grid cells per axis for a grid of about `spacing_mm` over `image`."""
    extent = [(sz - 1) * sp for sz, sp in zip(image.GetSize(), image.GetSpacing())]
    return [max(1, int(round(e / spacing_mm))) for e in extent]


def refine_bspline(tx: sitk.Transform, reference: sitk.Image) -> sitk.BSplineTransform:
    """The same cubic B-spline on a control grid twice as fine (exact: B-spline subdivision).

    Per axis, a coarse coefficient sequence c gives fine coefficients
    (c[k] + c[k+1]) / 2 at coarse mid-points and (c[k] + 6 c[k+1] + c[k+2]) / 8 at coarse
    nodes; the domain (from `reference`) is unchanged.
    """
    coarse = sitk.BSplineTransform(tx)
    images = coarse.GetCoefficientImages()
    mesh = [s - 3 for s in images[0].GetSize()]
    fine = sitk.BSplineTransformInitializer(reference, [2 * m for m in mesh], 3)
    params = []
    for img in images:
        c = sitk.GetArrayFromImage(img).astype(float)
        for axis in range(c.ndim):
            c = np.moveaxis(c, axis, 0)
            out = np.empty((2 * c.shape[0] - 3,) + c.shape[1:])
            out[0::2] = (c[:-1] + c[1:]) / 2.0
            out[1::2] = (c[:-2] + 6.0 * c[1:-1] + c[2:]) / 8.0
            c = np.moveaxis(out, 0, axis)
        params.append(c.ravel())
    fine.SetParameters(np.concatenate(params).tolist())
    return fine


__all__ = ["mesh_for_spacing", "refine_bspline"]
