"""Transform helpers: make, compose, invert, matrices, points and displacement fields.

Direction convention everywhere: a transform maps FIXED points to MOVING points
(LPS mm), as ITK resampling uses it. `compose(a, b)` applies a first, then b, in the
order written (ITK's CompositeTransform stores them the other way round).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ParameterError, RegistrationFailed

LINEAR_KINDS = ("translation", "rigid", "versor", "similarity", "affine")


def make_linear(kind: str, dimension: int, center: Sequence[float] | None = None) -> sitk.Transform:
    """An identity transform of the given model (fixed -> moving), rotating about `center` (mm)."""
    if dimension not in (2, 3):
        raise ParameterError(f"transforms are 2D or 3D, not {dimension}D")
    if kind == "translation":
        tx = sitk.TranslationTransform(dimension)
    elif kind in ("rigid", "versor") and dimension == 2:
        tx = sitk.Euler2DTransform()
    elif kind == "rigid":
        tx = sitk.Euler3DTransform()
    elif kind == "versor":
        tx = sitk.VersorRigid3DTransform()
    elif kind == "similarity":
        tx = sitk.Similarity2DTransform() if dimension == 2 else sitk.Similarity3DTransform()
    elif kind == "affine":
        tx = sitk.AffineTransform(dimension)
    else:
        raise ParameterError(f"'{kind}' is not a linear transform; choose one of {', '.join(LINEAR_KINDS)}")
    if center is not None and kind != "translation":
        tx.SetCenter([float(c) for c in center])
    return tx


def is_linear(tx: sitk.Transform) -> bool:
    """True when the transform is a matrix plus offset (a composite of linear ones counts)."""
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        return all(is_linear(comp.GetNthTransform(i)) for i in range(comp.GetNumberOfTransforms()))
    return bool(tx.IsLinear())


def matrix_offset(tx: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """(A, t) with tx(x) = A x + t in physical mm, for any linear transform (composites included)."""
    if not is_linear(tx):
        raise ParameterError(f"a {tx.GetName()} is not linear; it has no single matrix")
    d = tx.GetDimension()
    origin = np.array(tx.TransformPoint([0.0] * d))
    cols = [np.array(tx.TransformPoint(list(e))) - origin for e in np.eye(d)]
    return np.stack(cols, axis=1), origin


def to_affine(tx: sitk.Transform, center: Sequence[float] | None = None) -> sitk.AffineTransform:
    """Any linear transform as one AffineTransform (same fixed -> moving mapping)."""
    a, t = matrix_offset(tx)
    return from_matrix(a, t, center)


def from_matrix(matrix: np.ndarray, offset: Sequence[float], center: Sequence[float] | None = None) -> sitk.AffineTransform:
    """AffineTransform with x -> matrix @ x + offset (mm); `center` changes only the parametrisation."""
    a = np.asarray(matrix, float)
    d = a.shape[0]
    tx = sitk.AffineTransform(d)
    tx.SetMatrix(a.ravel().tolist())
    c = np.zeros(d) if center is None else np.asarray(center, float)
    tx.SetCenter(c.tolist())
    # x -> A(x - c) + c + T  must equal  A x + offset  => T = offset - c + A c
    tx.SetTranslation((np.asarray(offset, float) - c + a @ c).tolist())
    return tx


def to_homogeneous(tx: sitk.Transform) -> np.ndarray:
    """(d+1, d+1) homogeneous matrix of a linear fixed -> moving transform."""
    a, t = matrix_offset(tx)
    d = a.shape[0]
    h = np.eye(d + 1)
    h[:d, :d] = a
    h[:d, d] = t
    return h


def compose(*transforms: sitk.Transform) -> sitk.Transform:
    """Chain transforms in the order a point meets them.

    ``compose(t1, t2)(x) == t2(t1(x))``. A registration result is
    ``compose(last_stage, ..., first_stage, initial)``: each stage refines the fixed
    side, the initial transform finally lands on the moving image.
    Returns a CompositeTransform (independent copies of the inputs).
    """
    items = [t for t in transforms if t is not None]
    if not items:
        raise ParameterError("compose() needs at least one transform")
    d = items[0].GetDimension()
    comp = sitk.CompositeTransform(d)
    # ITK composite applies the LAST added transform first.
    for t in reversed(items):
        comp.AddTransform(copy_transform(t))
    return comp


def after(previous: sitk.Transform | None, current: sitk.Transform) -> sitk.Transform:
    """`previous` applied after `current` (a fixed point meets `current` first), sharing the
    inputs' data: for progress snapshots, where copying a dense field per iteration would cost."""
    if previous is None:
        return current
    comp = sitk.CompositeTransform(current.GetDimension())
    comp.AddTransform(previous)
    comp.AddTransform(current)
    return comp


def flatten(tx: sitk.Transform) -> sitk.Transform:
    """Merge a composite of linear transforms into one AffineTransform; otherwise return a copy."""
    if tx.GetName() == "CompositeTransform" and is_linear(tx):
        return to_affine(tx)
    return copy_transform(tx)


def copy_transform(tx: sitk.Transform) -> sitk.Transform:
    """An independent deep copy, keeping its concrete type."""
    out = sitk.Transform(tx)  # copy-on-write shares nothing observable, but downcast for callers
    try:
        out = out.Downcast()
    except (AttributeError, RuntimeError):
        pass
    out.MakeUnique()
    return out


def invert(tx: sitk.Transform, reference: sitk.Image | None = None) -> sitk.Transform:
    """The inverse (moving -> fixed). Linear transforms invert exactly; a displacement
    field or B-spline needs `reference` (the grid on which the inverse field is built,
    usually the moving image) and is inverted numerically."""
    if is_linear(tx):
        a, t = matrix_offset(tx)
        if abs(np.linalg.det(a)) < 1e-12:
            raise RegistrationFailed("the transform is singular (it collapses space), so it has no inverse")
        ai = np.linalg.inv(a)
        return from_matrix(ai, -ai @ t)
    if reference is None:
        raise ParameterError("inverting a deformable transform needs a reference image grid")
    field = to_displacement_field(tx, reference)
    inv = sitk.InvertDisplacementField(field, maximumNumberOfIterations=20, maxErrorToleranceThreshold=0.01,
                                       meanErrorToleranceThreshold=0.0001, enforceBoundaryCondition=False)
    return sitk.DisplacementFieldTransform(inv)


def transform_points(tx: sitk.Transform, points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Map an (n, dim) array of physical points (mm) through tx (fixed -> moving)."""
    pts = np.asarray(points, dtype=float)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if is_linear(tx):
        a, t = matrix_offset(tx)
        out = pts @ a.T + t
    else:
        out = np.array([tx.TransformPoint(p) for p in pts.tolist()]) if len(pts) else pts.copy()
    return out[0] if single else out


def to_displacement_field(tx: sitk.Transform, reference: sitk.Image) -> sitk.Image:
    """Dense field u(x) = tx(x) - x on the reference grid (vector float64), for saving or viewing."""
    f = sitk.TransformToDisplacementFieldFilter()
    f.SetReferenceImage(reference)
    f.SetOutputPixelType(sitk.sitkVectorFloat64)
    return f.Execute(tx)


def linear_log_average(forward: sitk.Transform, backward_inverse: sitk.Transform) -> sitk.AffineTransform:
    """Average two linear fixed -> moving estimates in the matrix-log domain (geodesic mean).

    Used by symmetric mode: `forward` is A->B registered, `backward_inverse` is the
    inverse of B->A; both estimate the same mapping, their log-mean is symmetric in A, B.
    """
    from scipy.linalg import expm, logm

    h1, h2 = to_homogeneous(forward), to_homogeneous(backward_inverse)
    mean = expm(0.5 * (np.real(logm(h1)) + np.real(logm(h2))))
    d = h1.shape[0] - 1
    return from_matrix(mean[:d, :d], mean[:d, d])


def parameters_of(tx: sitk.Transform) -> tuple[float, ...]:
    """The transform's optimisable parameters, for snapshots and logs."""
    return tuple(tx.GetParameters())


__all__ = ["make_linear", "is_linear", "matrix_offset", "to_affine", "from_matrix", "to_homogeneous", "compose",
           "flatten", "copy_transform", "invert", "transform_points", "to_displacement_field",
           "linear_log_average", "parameters_of"]
