"""One resampling helper: the moving image seen on the fixed grid through a transform.

`transform` maps FIXED points to MOVING points (LPS mm), which is exactly what ITK's
resampler needs: for each fixed voxel x it reads moving(transform(x)).
"""

from __future__ import annotations

import SimpleITK as sitk

from regviewer.core.errors import ParameterError

INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "gaussian": sitk.sitkGaussian,
    "lanczos": sitk.sitkLanczosWindowedSinc,
    "label": sitk.sitkLabelGaussian,
}


def interpolator_id(name: str) -> int:
    try:
        return INTERPOLATORS[name]
    except KeyError:
        raise ParameterError(f"interpolator '{name}' is unknown; choose one of {', '.join(INTERPOLATORS)}") from None


def resample_moving(moving, fixed, transform: sitk.Transform | None = None, interpolator: str = "linear",
                    default: float = 0.0, pixel_type: int | None = None) -> sitk.Image:
    """Resample `moving` onto `fixed`'s grid; RGB stays RGB, pixel type kept unless `pixel_type` is given.

    `moving` / `fixed` may be Volumes or SimpleITK images. `transform` is fixed -> moving
    (identity when None). Masks should use interpolator="nearest".
    """
    from regviewer.core.imaging.image import Volume

    mov = moving.sitk if isinstance(moving, Volume) else moving
    ref = fixed.sitk if isinstance(fixed, Volume) else fixed
    tx = transform if transform is not None else sitk.Transform(ref.GetDimension(), sitk.sitkIdentity)
    out_type = mov.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(mov, ref, tx, interpolator_id(interpolator), float(default), out_type)


__all__ = ["resample_moving", "interpolator_id", "INTERPOLATORS"]
