"""elastix `TransformParameters.*.txt` files, read into the matching ITK transform (fixed →
moving, elastix's documented direction), chained initial transforms composed as elastix does.

elastix parameter order (from its manual and source): Euler 2D (angle, tx, ty), 3D
(rx, ry, rz, tx, ty, tz) in radians about `CenterOfRotationPoint`, Z-X-Y order unless
`(ComputeZYX "true")`; Affine: the matrix row by row then the translation; Similarity
2D (scale, angle, tx, ty), 3D (versor x y z, tx ty tz, scale); B-spline: all x
coefficients, then all y (then z), on the grid `GridSize`/`GridOrigin`/`GridSpacing`/
`GridDirection` (direction stored column by column). `HowToCombineTransforms "Compose"`
means T(x) = current(initial(x)); `"Add"` means current(x) + initial(x) - x.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import ParameterError, TransformReadError
from regviewer.core.transforms.ops import from_matrix, matrix_offset

_MAX_ELASTIX_CHAIN = 16


def looks_like_elastix(p: Path) -> bool:
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return bool(re.search(r"^\s*\(Transform\s+\"", head, re.MULTILINE))


def parse_elastix_parameters(text: str) -> dict[str, list]:
    """`(Key value value …)` lines → {Key: [values]}; numbers become floats, quotes go."""
    params: dict[str, list] = {}
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not (line.startswith("(") and line.endswith(")")):
            continue
        tokens = re.findall(r'"[^"]*"|[^\s"]+', line[1:-1])
        if not tokens:
            continue
        values: list = []
        for tok in tokens[1:]:
            if tok.startswith('"'):
                values.append(tok[1:-1])
            else:
                try:
                    values.append(float(tok))
                except ValueError:
                    values.append(tok)
        params[tokens[0]] = values
    return params


def read_elastix(path: str | Path) -> sitk.Transform:
    """An elastix TransformParameters file (and its chain of initial transforms): fixed → moving."""
    return _read_elastix(Path(path), depth=0)


def _read_elastix(p: Path, depth: int) -> sitk.Transform:
    if depth > _MAX_ELASTIX_CHAIN:
        raise TransformReadError(p, "its chain of InitialTransformParametersFileName files loops or is too long")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TransformReadError(p, exc.strerror or str(exc)) from None
    params = parse_elastix_parameters(text)
    current = _elastix_transform(p, params)
    # elastix 5 writes "InitialTransformParameterFileName"; older versions "...ParametersFileName".
    initial_name = str(_first(params, "InitialTransformParameterFileName",
                              _first(params, "InitialTransformParametersFileName", "NoInitialTransform")))
    if initial_name in ("NoInitialTransform", ""):
        return current
    initial_path = Path(initial_name)
    if not initial_path.exists():
        initial_path = p.parent / Path(initial_name.replace("\\", "/")).name  # moved folder: look beside
    if not initial_path.exists():
        raise TransformReadError(p, f"its initial transform '{initial_name}' was not found (also looked in {p.parent})")
    initial = _read_elastix(initial_path, depth + 1)
    how = str(_first(params, "HowToCombineTransforms", "Compose"))
    if how == "Compose":
        return sitk.CompositeTransform([current, initial])  # current(initial(x)): last listed goes first
    if how == "Add":
        return _add_transforms(p, current, initial)
    raise TransformReadError(p, f"HowToCombineTransforms '{how}' is not known (expected Compose or Add)")


def _first(params: dict, key: str, default=None):
    values = params.get(key)
    return values[0] if values else default


def _numbers(p: Path, params: dict, key: str, count: int | None = None) -> list[float]:
    values = params.get(key)
    if values is None:
        raise TransformReadError(p, f"the elastix parameter '{key}' is missing")
    if not all(isinstance(v, float) for v in values):
        raise TransformReadError(p, f"the elastix parameter '{key}' holds non-numbers: {values[:6]}")
    if count is not None and len(values) != count:
        raise TransformReadError(p, f"the elastix parameter '{key}' has {len(values)} numbers; expected {count}")
    return [float(v) for v in values]


def _elastix_transform(p: Path, params: dict) -> sitk.Transform:
    kind = str(_first(params, "Transform", ""))
    dim_value = _first(params, "FixedImageDimension", _first(params, "MovingImageDimension", 3.0))
    if not isinstance(dim_value, float) or not dim_value.is_integer():
        raise TransformReadError(p, f"FixedImageDimension is '{dim_value}'; it must be 2 or 3")
    dim = int(dim_value)
    if dim not in (2, 3):
        raise TransformReadError(p, f"it is a {dim}D elastix transform; only 2D and 3D are supported")
    tp_values = params.get("TransformParameters", [])
    tp = _numbers(p, params, "TransformParameters") if tp_values else []
    center = _numbers(p, params, "CenterOfRotationPoint", dim) if "CenterOfRotationPoint" in params else [0.0] * dim
    if kind in ("EulerTransform", "AdvancedEulerTransform"):
        _need(p, kind, tp, 3 if dim == 2 else 6)
        tx = sitk.Euler2DTransform() if dim == 2 else sitk.Euler3DTransform()
        tx.SetCenter(center)
        if dim == 3:
            tx.SetComputeZYX(str(_first(params, "ComputeZYX", "false")).lower() == "true")
        tx.SetParameters(tp)
        return tx
    if kind in ("AffineTransform", "AdvancedAffineTransform"):
        _need(p, kind, tp, dim * dim + dim)
        tx = sitk.AffineTransform(dim)
        tx.SetCenter(center)
        tx.SetParameters(tp)
        return tx
    if kind in ("SimilarityTransform", "AdvancedSimilarityTransform"):
        _need(p, kind, tp, 4 if dim == 2 else 7)
        tx = sitk.Similarity2DTransform() if dim == 2 else sitk.Similarity3DTransform()
        tx.SetCenter(center)
        tx.SetParameters(tp)
        return tx
    if kind == "TranslationTransform":
        _need(p, kind, tp, dim)
        return sitk.TranslationTransform(dim, tp)
    if kind in ("BSplineTransform", "RecursiveBSplineTransform"):
        return _elastix_bspline(p, params, dim, tp)
    raise TransformReadError(
        p,
        f"the elastix transform type '{kind or 'missing'}' is not supported (supported: EulerTransform, "
        "AffineTransform, SimilarityTransform, TranslationTransform, BSplineTransform)",
    )


def _need(p: Path, kind: str, values: list, count: int) -> None:
    if len(values) != count:
        raise TransformReadError(p, f"{kind} needs {count} TransformParameters here; the file has {len(values)}")


def _elastix_bspline(p: Path, params: dict, dim: int, tp: list[float]) -> sitk.Transform:
    size = [int(v) for v in _numbers(p, params, "GridSize", dim)]
    index = _numbers(p, params, "GridIndex", dim) if "GridIndex" in params else [0.0] * dim
    spacing = _numbers(p, params, "GridSpacing", dim)
    origin = np.asarray(_numbers(p, params, "GridOrigin", dim))
    if "GridDirection" in params:  # elastix writes it column by column
        direction = np.asarray(_numbers(p, params, "GridDirection", dim * dim)).reshape(dim, dim).T
    else:
        direction = np.eye(dim)
    # ITK's B-spline grid starts at index 0: fold a non-zero GridIndex into the origin.
    origin = origin + direction @ (np.asarray(spacing) * np.asarray(index))
    order_value = _first(params, "BSplineTransformSplineOrder", 3.0)
    if not isinstance(order_value, float) or not order_value.is_integer():
        raise TransformReadError(p, f"BSplineTransformSplineOrder is '{order_value}'; it must be 0 to 3")
    order = int(order_value)
    if any(s < 1 for s in size) or int(np.prod(size)) > 10**8:
        raise TransformReadError(p, f"its GridSize {size} is not a usable B-spline grid")
    n = dim * int(np.prod(size))
    _need(p, "BSplineTransform", tp, n)
    try:
        tx = sitk.BSplineTransform(dim, order)
    except RuntimeError:
        raise TransformReadError(p, f"B-spline order {order} is not supported (use 0 to 3)") from None
    if any(not (math.isfinite(s) and s > 0) for s in spacing) or not np.all(np.isfinite(origin)):
        raise TransformReadError(p, f"its GridSpacing {spacing} / GridOrigin {list(origin)} is not a usable grid "
                                    "(spacings must be finite and above 0)")
    try:
        tx.SetFixedParameters([float(s) for s in size] + list(origin) + list(spacing) + list(direction.ravel()))
        tx.SetParameters(tp)
    except RuntimeError as exc:
        raise TransformReadError(p, f"its B-spline grid is not usable ({str(exc).strip().splitlines()[-1][:160]})") from None
    return tx


def _add_transforms(p: Path, current: sitk.Transform, initial: sitk.Transform) -> sitk.Transform:
    """elastix's "Add": T(x) = current(x) + initial(x) - x. Exact when both are linear
    or when the current one is a B-spline (its grid gives the field's domain)."""
    dim = current.GetDimension()
    if isinstance(current, sitk.BSplineTransform) or current.GetName() == "BSplineTransform":
        bs = sitk.BSplineTransform(current)
        fp = bs.GetFixedParameters()
        size = [int(v) for v in fp[:dim]]
        origin, spacing = fp[dim : 2 * dim], fp[2 * dim : 3 * dim]
        direction = fp[3 * dim :]
        field = sitk.TransformToDisplacementField(current, sitk.sitkVectorFloat64, size, origin, spacing, direction)
        init_field = sitk.TransformToDisplacementField(
            initial, sitk.sitkVectorFloat64, size, origin, spacing, direction
        )
        return sitk.DisplacementFieldTransform(field + init_field)
    try:
        a = matrix_offset(current)
        b = matrix_offset(initial)
    except ParameterError:
        raise TransformReadError(p, "HowToCombineTransforms 'Add' is only supported for linear or B-spline transforms") from None
    return from_matrix(a[0] + b[0] - np.eye(dim), a[1] + b[1])


__all__ = ["looks_like_elastix", "parse_elastix_parameters", "read_elastix"]
