"""Manual alignment: the numbers behind the sliders, fields and mouse drags.

The user moves the *moving image as seen in the fixed frame*. `ManualAlignment`
stores that visible motion M (translation in mm, rotation in degrees about LPS axes,
isotropic scale, about a centre point in fixed space):

    M(x) = s · R · (x − centre) + centre + translation          (fixed space → fixed space)

A displayed moving pixel at fixed point p shows moving(T(p)); moving the overlay by
M means T = base ∘ M⁻¹, so `transform_fixed_to_moving(base)` returns that
(fixed→moving, ITK's resampling direction). `base` is whatever transform was current
when manual editing began (identity, a landmark fit, a registration result): manual
alignment nudges it rather than replacing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.image import Volume
from regviewer.core.transforms.ops import from_matrix, matrix_offset

Vec3 = tuple[float, float, float]
_ZERO: Vec3 = (0.0, 0.0, 0.0)


# --- rotation helpers (small and local: importing scipy.spatial costs ~1 s at start-up) ---------
def euler_xyz_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Extrinsic rotations about LPS x, then y, then z: R = Rz · Ry · Rx."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_euler_xyz(r: np.ndarray) -> Vec3:
    """Inverse of `euler_xyz_matrix` (degrees); at gimbal lock the z angle is set to 0."""
    sy = -float(np.clip(r[2, 0], -1.0, 1.0))
    ay = np.arcsin(sy)
    if abs(np.cos(ay)) > 1e-9:
        ax = np.arctan2(r[2, 1], r[2, 2])
        az = np.arctan2(r[1, 0], r[0, 0])
    else:
        az = 0.0
        ax = np.arctan2(-r[1, 2], r[1, 1])  # R = Ry·Rx here, for either sign of sin(ay)
    return tuple(float(np.degrees(a)) for a in (ax, ay, az))  # type: ignore[return-value]


def axis_angle_matrix(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    """Right-handed rotation by `angle_rad` about the unit vector `axis` (Rodrigues)."""
    k = np.asarray(axis, dtype=float)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * (kx @ kx)


def matrix_to_versor(r: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a rotation matrix: ITK's versor order."""
    t = np.trace(r)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q)
    return tuple(float(v) for v in q)  # type: ignore[return-value]


def _vec3(values: Sequence[float]) -> Vec3:
    v = [float(x) for x in values]
    if len(v) == 2:
        v.append(0.0)
    if len(v) != 3:
        raise ParameterError(f"Expected a 2D or 3D point or vector, got {values!r}")
    return (v[0], v[1], v[2])


@dataclass(frozen=True)
class ManualAlignment:
    """The visible motion of the moving image (see the module docstring).

    Vectors are always 3 long (LPS mm / degrees); a 2D pair uses x, y of
    `translation` and `centre` and only `rotation_deg[2]` (in-plane rotation).
    Rotation angles are extrinsic rotations about the LPS x, then y, then z axes.
    """

    dimension: int = 3
    translation: Vec3 = _ZERO
    rotation_deg: Vec3 = _ZERO
    scale: float = 1.0
    centre: Vec3 = _ZERO

    def __post_init__(self) -> None:
        if self.dimension not in (2, 3):
            raise ParameterError(f"Manual alignment is 2D or 3D, not {self.dimension}D")
        if not self.scale > 0:
            raise ParameterError(f"Scale must be positive, got {self.scale}")
        object.__setattr__(self, "translation", _vec3(self.translation))
        object.__setattr__(self, "rotation_deg", _vec3(self.rotation_deg))
        object.__setattr__(self, "centre", _vec3(self.centre))

    # --- the motion M as a matrix --------------------------------------------------------
    def rotation_matrix(self) -> np.ndarray:
        """R (3×3); for 2D, the in-plane rotation embedded in 3×3."""
        if self.dimension == 2:
            return euler_xyz_matrix((0.0, 0.0, self.rotation_deg[2]))
        return euler_xyz_matrix(self.rotation_deg)

    def motion(self, point: Sequence[float]) -> tuple[float, ...]:
        """M(point): where the overlay moves a fixed-space point."""
        x = np.asarray(_vec3(point))
        c, t = np.asarray(self.centre), np.asarray(self.translation)
        y = self.scale * self.rotation_matrix() @ (x - c) + c + t
        return tuple(float(v) for v in y[: self.dimension])

    def is_identity(self) -> bool:
        return (
            np.allclose(self.translation, 0)
            and np.allclose(self.rotation_deg, 0)
            and np.isclose(self.scale, 1.0)
        )

    # --- the transform the rest of regviewer uses --------------------------------------------
    def inverse_motion_transform(self) -> sitk.Transform:
        """M⁻¹ as a SimpleITK similarity transform (fixed → fixed)."""
        r_inv = self.rotation_matrix().T
        inv_scale = 1.0 / self.scale
        c, t = np.asarray(self.centre), np.asarray(self.translation)
        t_inv = -inv_scale * (r_inv @ t)  # M⁻¹(y) = (1/s) Rᵀ (y − c) + c − (1/s) Rᵀ t
        if self.dimension == 2:
            angle = -np.deg2rad(self.rotation_deg[2])
            return sitk.Similarity2DTransform(inv_scale, float(angle), tuple(t_inv[:2]), tuple(c[:2]))
        tx = sitk.Similarity3DTransform()
        tx.SetCenter(tuple(c))
        tx.SetRotation(matrix_to_versor(r_inv))
        tx.SetScale(inv_scale)
        tx.SetTranslation(tuple(t_inv))
        return tx

    def transform_fixed_to_moving(self, base: sitk.Transform | None = None) -> sitk.Transform:
        """T = base ∘ M⁻¹: maps FIXED points to MOVING points."""
        inner = self.inverse_motion_transform()
        if base is None or _is_identity_transform(base):
            return inner
        return compose(base, inner)

    # --- edits (each returns a new alignment) ------------------------------------------------
    def with_centre(self, centre: Sequence[float]) -> "ManualAlignment":
        """Same motion M, expressed about a new centre (so later rotations pivot there)."""
        c_new, c_old = np.asarray(_vec3(centre)), np.asarray(self.centre)
        t = np.asarray(self.translation)
        t_new = self.scale * self.rotation_matrix() @ (c_new - c_old) + c_old - c_new + t
        return replace(self, centre=tuple(c_new), translation=tuple(t_new))

    def translated(self, delta_mm: Sequence[float]) -> "ManualAlignment":
        """Move the overlay by `delta_mm` (fixed space, LPS mm)."""
        return replace(self, translation=tuple(np.asarray(self.translation) + np.asarray(_vec3(delta_mm))))

    def rotated(self, axis: Sequence[float], angle_deg: float, pivot: Sequence[float]) -> "ManualAlignment":
        """Rotate the overlay by `angle_deg` (right-handed) about `axis` through `pivot` (fixed space)."""
        axis_v = np.asarray(_vec3(axis))
        if self.dimension == 2:
            axis_v = np.array([0.0, 0.0, 1.0 if axis_v[2] >= 0 else -1.0])
        norm = np.linalg.norm(axis_v)
        if norm == 0:
            raise ParameterError("The rotation axis has zero length")
        delta = axis_angle_matrix(axis_v / norm, np.deg2rad(angle_deg))
        moved = self.with_centre(pivot)
        r_new = delta @ moved.rotation_matrix()
        t = np.asarray(moved.translation)
        # M'(x) = Rd·(M(x) − p) + p with p = c: the translation rotates too.
        t_new = delta @ t
        if self.dimension == 2:
            angles = (0.0, 0.0, float(np.degrees(np.arctan2(r_new[1, 0], r_new[0, 0]))))
        else:
            angles = matrix_to_euler_xyz(r_new)
        return replace(moved, rotation_deg=angles, translation=tuple(t_new))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ManualAlignment":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --- helpers on transforms and images ---------------------------------------------------------
def _is_identity_transform(tx: sitk.Transform) -> bool:
    if not tx.IsLinear():
        return False
    a, b = matrix_offset(tx)
    return np.allclose(a, np.eye(a.shape[0])) and np.allclose(b, 0)


def compose(outer: sitk.Transform, inner: sitk.Transform) -> sitk.Transform:
    """x ↦ outer(inner(x)). Two linear transforms flatten into one AffineTransform
    (saves as a plain ITK affine); anything else becomes a CompositeTransform."""
    if outer.IsLinear() and inner.IsLinear():
        a1, b1 = matrix_offset(outer)
        a2, b2 = matrix_offset(inner)
        return from_matrix(a1 @ a2, a1 @ b2 + b1)
    return sitk.CompositeTransform([outer, inner])  # ITK applies the last one first


def inverse_point(tx: sitk.Transform, point: Sequence[float]) -> tuple[float, ...]:
    """tx⁻¹(point): exact for linear transforms, ITK's inverse otherwise."""
    if tx.IsLinear():
        a, b = matrix_offset(tx)
        return tuple(float(v) for v in np.linalg.solve(a, np.asarray(point, float) - b))
    try:
        return tuple(tx.GetInverse().TransformPoint(tuple(float(p) for p in point)))
    except RuntimeError:
        raise ParameterError("The current transform cannot be inverted; reset it before aligning centres") from None


def centre_of_mass(volume: Volume, max_voxels: int = 2_000_000) -> tuple[float, ...]:
    """Intensity-weighted centre in physical LPS mm (above-minimum intensity as weight),
    computed on a strided subsample so a large volume costs milliseconds."""
    arr = sitk.GetArrayViewFromImage(volume.scalar())
    step = max(1, int(np.ceil((arr.size / max_voxels) ** (1.0 / arr.ndim))))
    sub = np.asarray(arr[(slice(None, None, step),) * arr.ndim], dtype=np.float64)
    weights = sub - sub.min()
    total = weights.sum()
    if total <= 0:
        return volume.center_physical()
    grids = np.indices(sub.shape, dtype=np.float64)
    index_zyx = [(g * weights).sum() / total * step for g in grids]
    return volume.index_to_physical(index_zyx[::-1])


def aligned_to_points(
    alignment: ManualAlignment,
    fixed_point: Sequence[float],
    moving_point: Sequence[float],
    base: sitk.Transform | None = None,
) -> ManualAlignment:
    """Change only the translation so that T = base ∘ M⁻¹ maps `fixed_point` to
    `moving_point` (e.g. the two image centres, or the two centres of mass)."""
    q = np.asarray(_vec3(moving_point if base is None else inverse_point(base, moving_point)))
    c = np.asarray(alignment.centre)
    t = np.asarray(_vec3(fixed_point)) - c - alignment.scale * alignment.rotation_matrix() @ (q - c)
    return replace(alignment, translation=tuple(t))


def angle_between(centre: Sequence[float], start: Sequence[float], end: Sequence[float], axis: Sequence[float]) -> float:
    """Signed angle in degrees (right-handed about `axis`) that turns `start` into `end`
    as seen from `centre`; used to turn a mouse drag around the crosshair into a rotation."""
    c = np.asarray(_vec3(centre))
    a = np.asarray(_vec3(start)) - c
    b = np.asarray(_vec3(end)) - c
    n = np.asarray(_vec3(axis))
    if np.linalg.norm(a) == 0 or np.linalg.norm(b) == 0:
        return 0.0
    return float(np.degrees(np.arctan2(n @ np.cross(a, b) / np.linalg.norm(n), a @ b)))
