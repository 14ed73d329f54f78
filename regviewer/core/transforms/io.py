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

elastix's parameter order and chaining are read in `elastix_files`.

Displacement fields are taken as ITK, ANTs and SimpleITK write them: displacement
vectors (not absolute positions) in LPS millimetres. Fields from tools with other
conventions (FSL's RAS warps, NiftyReg's deformation fields) are not converted.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.atomic import atomic_output
from regviewer.core.errors import ImageWriteError, TransformReadError
from regviewer.core.transforms.elastix_files import looks_like_elastix, parse_elastix_parameters, read_elastix
from regviewer.core.transforms.itk_text import COUNT_NOTE, itk_text_problem
from regviewer.core.transforms.storable import storable

DIRECTION_NOTE = "# regviewer: this transform maps FIXED image points to MOVING image points (LPS mm)"
TRANSFORM_EXTENSIONS = (".tfm", ".txt", ".h5", ".hdf5", ".mat")
DISPLACEMENT_FIELD_EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


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
        if suffix in (".txt", ".tfm") and looks_like_elastix(p):
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
        return looks_like_elastix(p) or head.lstrip().startswith("#Insight Transform File")
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
