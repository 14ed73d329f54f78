"""Dense optical-flow stage for same-modality 2D images (OpenCV's DIS optical flow).

B-splines with a global metric stall on real photographic deformations (many local
motions, each small in area); DIS (Kroeger et al. 2016, "Fast optical flow using
dense inverse search") estimates a dense, variationally regularised flow in tens of
milliseconds at 512 x 512. The moving image is first resampled through the earlier
stages (`previous`) onto the fixed grid, both are brought to 8 bits by their own
robust ranges (so exposure changes between photographs do not matter), and the flow u
from fixed to the resampled moving image is the stage's displacement field:
full mapping x -> previous(x + u(x)), fixed -> moving, as for demons.

Regularisation: DIS's variational refinement (smoothness), a second pass on the
residual, and `field_smoothing_mm` (Gaussian on the final field; 0 keeps DIS's own).
The verification after the stage (`verify.py`) undoes it if it made things worse.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ParameterError, RegistrationFailed
from regviewer.core.registration.params import Stage
from regviewer.core.registration.run_state import RunState
from regviewer.core.transforms.ops import after

PASSES = 2  # a second DIS pass on the residual halves the error on large local motions


def _to_u8(a: np.ndarray) -> np.ndarray:
    finite = a[np.isfinite(a)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1.0
    return (np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _dis():
    try:
        import cv2
    except ImportError:
        raise ParameterError("The 'flow' stage needs OpenCV: pip install opencv-python-headless") from None
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setUseSpatialPropagation(True)
    return cv2, dis


def run_flow_stage(stage: Stage, fixed: sitk.Image, moving: sitk.Image, previous: sitk.Transform | None,
                   run: RunState) -> sitk.Transform:
    """Return a DisplacementFieldTransform on the fixed grid (applied before `previous`)."""
    if fixed.GetDimension() != 2:
        raise ParameterError(f"Stage '{stage.name}': the optical-flow stage is for 2D images; use 'bspline' or "
                             "'demons' for 3D")
    cv2, dis = _dis()
    identity = sitk.Transform(2, sitk.sitkIdentity)
    warped = sitk.Resample(moving, fixed, previous if previous is not None else identity, sitk.sitkLinear,
                           float("nan"), sitk.sitkFloat32)
    f_arr = sitk.GetArrayFromImage(fixed)
    m_arr = sitk.GetArrayFromImage(warped)
    outside = ~np.isfinite(m_arr)
    m_arr[outside] = np.nan
    f8, m8 = _to_u8(f_arr), _to_u8(m_arr)
    m8[outside] = f8[outside]  # no motion is sought where the moving image has no data
    rows, cols = f8.shape
    grid = np.stack(np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32)), axis=-1)
    flow = np.zeros((rows, cols, 2), np.float32)
    for k in range(PASSES):
        if run.cancelled:
            break
        current = m8 if k == 0 else cv2.remap(m8, grid + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        step = dis.calc(f8, current, None)
        # compose: x -> x + flow(x) then + step: flow_new(x) = step(x) + flow(x + step(x))
        flow = step + (cv2.remap(flow, grid + step, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                       if k else 0.0)
        if not np.all(np.isfinite(flow)):
            raise RegistrationFailed(f"Stage '{stage.name}': the optical flow did not converge (non-finite values)")
        run.record(0, 1, k, float(np.mean(np.abs(f8.astype(np.float32) - cv2.remap(
            m8, grid + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)))) / 255.0,
            (lambda f=flow.copy(): after(previous, _field_transform(f, fixed, 0.0))) if run.progress else None)
    tx = _field_transform(flow, fixed, stage.transform.field_smoothing_mm)
    run.stop_reasons.append(f"{stage.name}: DIS optical flow, {PASSES} passes, largest motion "
                            f"{float(np.max(np.hypot(flow[..., 0], flow[..., 1]))):.1f} px")
    return tx


def _field_transform(flow: np.ndarray, fixed: sitk.Image, smoothing_mm: float) -> sitk.DisplacementFieldTransform:
    """Pixel flow (x, y) on the fixed grid -> physical displacement field (mm, LPS), optionally smoothed."""
    spacing = np.asarray(fixed.GetSpacing())
    direction = np.asarray(fixed.GetDirection()).reshape(2, 2)
    physical = (flow.reshape(-1, 2).astype(np.float64) * spacing) @ direction.T
    field = sitk.GetImageFromArray(physical.reshape(flow.shape), isVector=True)
    field.CopyInformation(fixed)
    if smoothing_mm > 0:
        field = sitk.SmoothingRecursiveGaussian(field, float(smoothing_mm))
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))



__all__ = ["run_flow_stage"]
