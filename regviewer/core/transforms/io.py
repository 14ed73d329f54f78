"""Transform files: read registrations made by regviewer or by other tools; write ITK files.

Every transform in regviewer maps points of the *fixed* image to the *moving* image
(ITK's resampling direction). `read_transform` returns exactly that, whatever the
file's own convention. The formats and the direction each one maps:

| format | recognised by | maps | conversion |
|---|---|---|---|
| ITK / SimpleITK text or HDF5 (`.tfm`, `.txt`, `.h5`, `.hdf5`) | ITK header / HDF5 | fixed → moving | none (ITK's own convention) |
| ANTs affine (`.mat`, e.g. `0GenericAffine.mat`) | MATLAB v4 file with `AffineTransform_{double,float}_D_D` (or `MatrixOffsetTransformBase_…`) and `fixed` | fixed → moving (ANTs uses ITK's resampling direction) | none: 9 (4 in 2D) matrix entries row by row, then the translation, about the centre `fixed` |
| elastix `TransformParameters.*.txt` | `(Transform "…")` lines | fixed → moving (elastix's documented direction) | parameters re-ordered into the matching ITK transform; chained `InitialTransformParametersFileName` files composed as elastix does |
| displacement field image (`.nii`, `.nii.gz`, `.nrrd`, `.nhdr`, `.mha`, `.mhd`) | a vector image with one component per dimension | fixed → moving: T(x) = x + u(x), u in LPS mm on the fixed grid (ITK/ANTs warp fields) | none |

elastix parameter order (from its manual and source): Euler 2D (angle, tx, ty), 3D
(rx, ry, rz, tx, ty, tz) in radians about `CenterOfRotationPoint`, Z-X-Y order unless
`(ComputeZYX "true")`; Affine: the matrix row by row then the translation; Similarity
2D (scale, angle, tx, ty), 3D (versor x y z, tx ty tz, scale); B-spline: all x
coefficients, then all y (then z), on the grid `GridSize`/`GridOrigin`/`GridSpacing`/
`GridDirection` (direction stored column by column). `HowToCombineTransforms "Compose"`
means T(x) = current(initial(x)); `"Add"` means current(x) + initial(x) - x.

Displacement fields are taken as ITK, ANTs and SimpleITK write them: displacement
vectors (not absolute positions) in LPS millimetres. Fields from tools with other
conventions (FSL's RAS warps, NiftyReg's deformation fields) are not converted.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.atomic import atomic_output
from regviewer.core.errors import ImageWriteError, ParameterError, TransformReadError
from regviewer.core.transforms.itk_text import COUNT_NOTE, itk_text_problem
from regviewer.core.transforms.ops import from_matrix, matrix_offset
from regviewer.core.transforms.storable import storable

DIRECTION_NOTE = "# regviewer: this transform maps FIXED image points to MOVING image points (LPS mm)"
TRANSFORM_EXTENSIONS = (".tfm", ".txt", ".h5", ".hdf5", ".mat")
DISPLACEMENT_FIELD_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
_MAX_ELASTIX_CHAIN = 16


def _suffix(p: Path) -> str:
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else p.suffix.lower()


def read_transform(path: str | Path) -> sitk.Transform:
    """Read a transform file of any supported kind; the result maps fixed → moving points.

    See the module docstring for the formats and their conventions. Raises
    `TransformReadError` naming the file and the problem.
    """
    p = Path(path)
    if not p.exists():
        raise TransformReadError(p, "the file does not exist")
    if p.is_dir():
        raise TransformReadError(p, "it is a folder, not a transform file")
    if p.stat().st_size == 0:
        raise TransformReadError(p, "the file is empty")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise TransformReadError(p, "permission denied (the file exists but this user may not read it)") from None
    suffix = _suffix(p)
    try:
        if suffix in DISPLACEMENT_FIELD_EXTENSIONS:
            return read_displacement_field(p)
        if suffix in (".txt", ".tfm") and _looks_like_elastix(p):
            return read_elastix(p)
        if suffix == ".mat":
            return read_ants_mat(p)
        return _read_itk(p)
    except RuntimeError as exc:  # ITK refused a value the file holds (e.g. a singular matrix)
        raise TransformReadError(p, f"it holds values ITK refuses ({str(exc).strip().splitlines()[-1][:200]})") from None
    except (ValueError, TypeError, IndexError, OverflowError, RecursionError, MemoryError, OSError) as exc:
        # A damaged file can trip any parser; the user gets the file and the reason, never a traceback.
        raise TransformReadError(p, f"it is damaged ({type(exc).__name__}: {str(exc)[:200]})") from None


def _read_itk(p: Path) -> sitk.Transform:
    try:
        tx = sitk.ReadTransform(str(p))
    except RuntimeError:
        raise TransformReadError(
            p,
            "it is not a transform file regviewer can read (ITK .tfm/.txt/.h5, ANTs .mat, "
            "elastix TransformParameters.*.txt or a displacement-field image)",
        ) from None
    if _suffix(p) in (".tfm", ".txt"):
        problem = itk_text_problem(p.read_text(encoding="utf-8", errors="replace"), tx)
        if problem:
            raise TransformReadError(p, problem)
    return tx


# --- displacement fields ------------------------------------------------------------
def read_displacement_field(path: str | Path) -> sitk.Transform:
    """A displacement-field image as a transform: T(x) = x + u(x), fixed → moving."""
    p = Path(path)
    from regviewer.core.errors import ImageReadError
    from regviewer.core.imaging.io import read_vector_field

    try:
        field = read_vector_field(p)
    except ImageReadError as exc:
        raise TransformReadError(p, exc.problem) from None
    dim = field.GetDimension()
    n = field.GetNumberOfComponentsPerPixel()
    if dim not in (2, 3):
        raise TransformReadError(p, f"it is a {dim}D image with {n} components per voxel; a displacement field "
                                    "is a 2D or 3D image with one component per axis")
    if n != dim:
        raise TransformReadError(
            p,
            f"a displacement field needs {dim} vector components per voxel (one per axis), this "
            f"{dim}D image has {n}; is it an ordinary image rather than a warp field?",
        )
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))


# --- ANTs .mat ----------------------------------------------------------------------------
_ANTS_NAME = re.compile(r"^(AffineTransform|MatrixOffsetTransformBase)_(double|float)_(\d)_(\d)$")


def read_ants_mat(path: str | Path) -> sitk.Transform:
    """An ANTs affine `.mat` (ITK's MATLAB-v4 transform file): fixed → moving.

    The file holds `AffineTransform_double_3_3` (or `_float_`) = the matrix row by row
    followed by the translation, and `fixed` = the centre of rotation, exactly ITK's
    MatrixOffsetTransformBase parameters; ANTs applies it in ITK's direction.
    """
    p = Path(path)
    from scipy.io import loadmat  # scipy is a dependency; imported here to keep start-up light

    try:
        content = loadmat(str(p))
    except Exception:  # noqa: BLE001 - scipy raises many types for a non-MAT file
        try:  # some tools write other transform kinds in ITK's .mat format; let ITK try
            return sitk.ReadTransform(str(p))
        except RuntimeError:
            raise TransformReadError(p, "it is not a MATLAB/ANTs transform file") from None
    names = [k for k in content if _ANTS_NAME.match(k)]
    if not names:
        try:
            return sitk.ReadTransform(str(p))
        except RuntimeError:
            keys = ", ".join(k for k in content if not k.startswith("__")) or "none"
            raise TransformReadError(
                p, f"it holds no ANTs/ITK affine transform (variables found: {keys})"
            ) from None
    match = _ANTS_NAME.match(names[0])
    dim = int(match.group(3))
    params = np.asarray(content[names[0]], dtype=float).ravel()
    if dim not in (2, 3) or params.size != dim * dim + dim:
        raise TransformReadError(p, f"'{names[0]}' has {params.size} numbers; a {dim}D affine needs {dim * dim + dim}")
    center = np.asarray(content.get("fixed", np.zeros(dim)), dtype=float).ravel()
    if center.size != dim:
        raise TransformReadError(p, f"its centre 'fixed' has {center.size} numbers; expected {dim}")
    tx = sitk.AffineTransform(dim)
    tx.SetFixedParameters(tuple(center))
    tx.SetParameters(tuple(params))
    return tx


# --- elastix ----------------------------------------------------------------------------
def _looks_like_elastix(p: Path) -> bool:
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


# --- writing --------------------------------------------------------------------------
def write_transform(transform: sitk.Transform, path: str | Path) -> None:
    """Write atomically; .tfm/.txt get a comment line stating the direction."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
        raise ImageWriteError(p, f"'{suffix}' is not a transform format; use .tfm, .txt or .h5")
    try:
        with atomic_output(p) as tmp:
            sitk.WriteTransform(storable(transform), str(tmp))  # no composite inside a composite
            if suffix in (".tfm", ".txt"):
                text = tmp.read_text()
                lines = text.splitlines(keepends=True)
                count = sum(line.startswith("Transform:") for line in lines)
                notes = [DIRECTION_NOTE + "\n", f"{COUNT_NOTE}{count}\n"]
                tmp.write_text("".join(lines[:1] + notes + lines[1:]))
    except RuntimeError as exc:
        raise ImageWriteError(p, str(exc).strip().splitlines()[-1][:200]) from None
    except OSError as exc:
        raise ImageWriteError(p, exc.strerror or str(exc)) from None


def is_transform_file(path: str | Path) -> bool:
    """True when `path` holds a transform rather than an image (drag-and-drop sorting):
    ITK/ANTs/elastix transform files, or an image whose pixels are vectors with one
    component per axis (a displacement field). Reads only the header."""
    p = Path(path)
    if not p.is_file():
        return False
    suffix = _suffix(p)
    if suffix in (".tfm", ".h5", ".hdf5", ".mat"):
        return True
    if suffix == ".txt":
        try:
            head = p.read_text(encoding="utf-8", errors="replace")[:4096]
        except OSError:
            return False
        return _looks_like_elastix(p) or head.lstrip().startswith("#Insight Transform File")
    if suffix in DISPLACEMENT_FIELD_EXTENSIONS:
        from regviewer.core.errors import ImageReadError
        from regviewer.core.imaging.header_checks import check_header_fields

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(p))
        try:
            check_header_fields(p, suffix)  # some damaged headers crash ITK's reader
            reader.ReadImageInformation()
        except (RuntimeError, ImageReadError, OSError):
            return False
        return reader.GetDimension() in (2, 3) and reader.GetNumberOfComponents() == reader.GetDimension() \
            and reader.GetPixelID() in (sitk.sitkVectorFloat32, sitk.sitkVectorFloat64)
    return False


__all__ = [
    "is_transform_file",
    "read_transform",
    "write_transform",
    "read_displacement_field",
    "read_ants_mat",
    "read_elastix",
    "parse_elastix_parameters",
    "itk_text_problem",
    "DIRECTION_NOTE",
    "TRANSFORM_EXTENSIONS",
]
