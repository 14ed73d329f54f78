"""Transform files written BY HAND to each tool's documented convention must map points
as that tool says (fixed -> moving). Expected values are computed here with numpy
from the documented formulas, not by SimpleITK."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import SimpleITK as sitk

from regviewer.core.imaging import io as rio
from regviewer.core.errors import RegviewerError, TransformReadError
from regviewer.core.transforms.elastix_files import parse_elastix_parameters
from regviewer.core.transforms.io import read_transform, write_transform

POINTS_3D = [(0.0, 0.0, 0.0), (10.0, -5.0, 3.0), (-7.5, 12.0, 40.0)]


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _check(tx, expected_fn, points=POINTS_3D, atol=1e-5):
    for p in points:
        np.testing.assert_allclose(tx.TransformPoint(p), expected_fn(np.asarray(p)), atol=atol)


# --- ITK text ---------------------------------------------------------------------------
def test_itk_text_affine_written_by_hand(tmp_path):
    m = np.array([[1.1, 0.2, 0.0], [0.05, 0.9, 0.1], [0.0, 0.3, 1.2]])
    t, c = np.array([3.0, -2.0, 1.0]), np.array([5.0, 6.0, 7.0])
    f = tmp_path / "affine.tfm"
    f.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        f"Parameters: {' '.join(map(str, list(m.ravel()) + list(t)))}\nFixedParameters: 5 6 7\n"
    )
    _check(rio.read_transform(f), lambda x: m @ (x - c) + c + t)


def test_write_then_read_keeps_direction_note(tmp_path):
    tx = sitk.Euler3DTransform((1, 2, 3), 0.1, 0.2, 0.3, (4, 5, 6))
    f = tmp_path / "t.tfm"
    write_transform(tx, f)
    assert "FIXED image points to MOVING" in f.read_text()
    _check(read_transform(f), lambda x: np.asarray(tx.TransformPoint(tuple(x))))


# --- ANTs .mat --------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["float", "double"])
def test_ants_mat_affine_3d(tmp_path, precision):
    """ANTs writes ITK's MATLAB v4 file: AffineTransform_<prec>_3_3 = 9 matrix entries row by
    row + translation, `fixed` = centre; it maps fixed -> moving like any ITK transform."""
    m = np.array([[0.98, -0.17, 0.02], [0.17, 0.97, -0.05], [0.0, 0.05, 1.03]])
    t, c = np.array([-4.0, 2.5, 7.0]), np.array([1.0, -2.0, 30.0])
    dtype = np.float32 if precision == "float" else np.float64
    f = tmp_path / "0GenericAffine.mat"
    scipy.io.savemat(
        f,
        {f"AffineTransform_{precision}_3_3": np.r_[m.ravel(), t].reshape(-1, 1).astype(dtype),
         "fixed": c.reshape(-1, 1).astype(dtype)},
        format="4",
    )
    _check(read_transform(f), lambda x: m @ (x - c) + c + t, atol=1e-3 if precision == "float" else 1e-6)


def test_ants_mat_affine_2d(tmp_path):
    m, t, c = np.array([[1.2, 0.1], [-0.1, 0.8]]), np.array([3.0, 4.0]), np.array([50.0, 60.0])
    f = tmp_path / "a.mat"
    scipy.io.savemat(f, {"AffineTransform_double_2_2": np.r_[m.ravel(), t].reshape(-1, 1), "fixed": c.reshape(-1, 1)}, format="4")
    _check(read_transform(f), lambda x: m @ (x - c) + c + t, points=[(0.0, 0.0), (10.0, -3.0)])


def test_mat_without_transform_is_a_clear_error(tmp_path):
    f = tmp_path / "other.mat"
    scipy.io.savemat(f, {"something": np.ones((2, 2))}, format="4")
    with pytest.raises(TransformReadError, match="no ANTs/ITK affine"):
        read_transform(f)


# --- elastix ----------------------------------------------------------------------------
ELASTIX_HEADER = """// written by hand after the elastix manual
(Transform "{kind}")
(NumberOfParameters {n})
(TransformParameters {params})
({initial_key} "{initial}")
(HowToCombineTransforms "{how}")
(FixedImageDimension {dim})
(MovingImageDimension {dim})
(FixedInternalImagePixelType "float")
(UseDirectionCosines "true")
"""


def _elastix(path, kind, params, dim=3, initial="NoInitialTransform", how="Compose", extra="",
             initial_key="InitialTransformParametersFileName"):
    path.write_text(
        ELASTIX_HEADER.format(kind=kind, n=len(params), params=" ".join(f"{v:.10g}" for v in params),
                              initial=initial, how=how, dim=dim, initial_key=initial_key) + extra
    )
    return path


def test_elastix_euler_3d(tmp_path):
    rx, ry, rz = 0.1, -0.2, 0.3
    t, c = np.array([2.0, -3.0, 4.0]), np.array([10.0, 20.0, 30.0])
    f = _elastix(tmp_path / "TransformParameters.0.txt", "EulerTransform", [rx, ry, rz, *t],
                 extra='(CenterOfRotationPoint 10 20 30)\n(ComputeZYX "false")\n')
    r = _rz(rz) @ _rx(rx) @ _ry(ry)  # ITK/elastix default order: Z X Y
    _check(read_transform(f), lambda x: r @ (x - c) + c + t)


def test_elastix_euler_3d_zyx(tmp_path):
    rx, ry, rz = 0.1, -0.2, 0.3
    f = _elastix(tmp_path / "TransformParameters.0.txt", "EulerTransform", [rx, ry, rz, 0, 0, 0],
                 extra='(CenterOfRotationPoint 0 0 0)\n(ComputeZYX "true")\n')
    r = _rz(rz) @ _ry(ry) @ _rx(rx)
    _check(read_transform(f), lambda x: r @ x)


def test_elastix_euler_2d(tmp_path):
    a, t, c = 0.4, np.array([5.0, -1.0]), np.array([100.0, 50.0])
    f = _elastix(tmp_path / "TransformParameters.0.txt", "EulerTransform", [a, *t], dim=2,
                 extra="(CenterOfRotationPoint 100 50)\n")
    r = _rz(a)[:2, :2]
    _check(read_transform(f), lambda x: r @ (x - c) + c + t, points=[(0.0, 0.0), (120.0, 40.0)])


def test_elastix_affine_3d_row_major(tmp_path):
    m = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.9]])  # not symmetric: order matters
    t, c = np.array([1.0, 2.0, 3.0]), np.array([-5.0, 0.0, 5.0])
    f = _elastix(tmp_path / "TransformParameters.0.txt", "AffineTransform", [*m.ravel(), *t],
                 extra="(CenterOfRotationPoint -5 0 5)\n")
    _check(read_transform(f), lambda x: m @ (x - c) + c + t)


def test_elastix_similarity_2d(tmp_path):
    s, a, t = 1.5, 0.2, np.array([3.0, 4.0])
    f = _elastix(tmp_path / "TransformParameters.0.txt", "SimilarityTransform", [s, a, *t], dim=2,
                 extra="(CenterOfRotationPoint 1 2)\n")
    c = np.array([1.0, 2.0])
    _check(read_transform(f), lambda x: s * _rz(a)[:2, :2] @ (x - c) + c + t, points=[(0.0, 0.0), (9.0, -4.0)])


BSPLINE_2D = """(GridSize 6 6)
(GridIndex 0 0)
(GridSpacing 10 10)
(GridOrigin 0 0)
(GridDirection 0 1 -1 0)
(BSplineTransformSplineOrder 3)
"""


def test_elastix_bspline_uniform_shift_and_column_major_direction(tmp_path):
    """All x coefficients = 2 -> x shifted by 2 mm inside the grid (B-splines sum to one).
    GridDirection is stored column by column: '0 1 -1 0' is index axis 0 -> +y and index
    axis 1 -> -x, so the grid covers x in [-50, 0], y in [0, 50]."""
    n = 36
    coeffs = [2.0] * n + [0.0] * n
    f = _elastix(tmp_path / "TransformParameters.1.txt", "BSplineTransform", coeffs, dim=2, extra=BSPLINE_2D)
    tx = read_transform(f)
    np.testing.assert_allclose(tx.TransformPoint((-25.0, 25.0)), (-23.0, 25.0), atol=1e-6)
    np.testing.assert_allclose(tx.TransformPoint((25.0, -25.0)), (25.0, -25.0), atol=1e-6)  # outside: unmoved


@pytest.mark.parametrize("initial_key", ["InitialTransformParametersFileName",  # elastix 4
                                         "InitialTransformParameterFileName"])  # elastix 5
def test_elastix_chain_composes_current_after_initial(tmp_path, initial_key):
    """B-spline with an initial affine (x -> 0.5 x): elastix's Compose is T(x) = bspline(affine(x))."""
    init = _elastix(tmp_path / "TransformParameters.0.txt", "AffineTransform", [0.5, 0, 0, 0.5, 0, 0], dim=2,
                    extra="(CenterOfRotationPoint 0 0)\n")
    coeffs = [2.0] * 36 + [0.0] * 36
    f = _elastix(tmp_path / "TransformParameters.1.txt", "BSplineTransform", coeffs, dim=2,
                 initial=str(init), extra=BSPLINE_2D, initial_key=initial_key)
    x = np.array([-50.0, 50.0])  # affine takes it to (-25, 25), inside the grid
    np.testing.assert_allclose(read_transform(f).TransformPoint(tuple(x)), 0.5 * x + [2.0, 0.0], atol=1e-6)


def test_elastix_chain_found_beside_file_after_moving_folder(tmp_path):
    init = _elastix(tmp_path / "TransformParameters.0.txt", "TranslationTransform", [1.0, 2.0, 3.0])
    f = _elastix(tmp_path / "TransformParameters.1.txt", "TranslationTransform", [10.0, 0.0, 0.0],
                 initial="/somewhere/else/TransformParameters.0.txt")
    assert init.exists()
    _check(read_transform(f), lambda x: x + [11.0, 2.0, 3.0])


def test_elastix_add_combination(tmp_path):
    init = _elastix(tmp_path / "TransformParameters.0.txt", "AffineTransform", [2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0],
                    extra="(CenterOfRotationPoint 0 0 0)\n")
    f = _elastix(tmp_path / "TransformParameters.1.txt", "TranslationTransform", [1.0, 0.0, 0.0],
                 initial=str(init), how="Add")
    _check(read_transform(f), lambda x: (x + [1.0, 0, 0]) + 2 * x - x)


def test_elastix_errors_are_plain(tmp_path):
    f = _elastix(tmp_path / "TransformParameters.0.txt", "SplineKernelTransform", [1.0, 2.0])
    with pytest.raises(TransformReadError, match="SplineKernelTransform' is not supported"):
        read_transform(f)
    g = _elastix(tmp_path / "TransformParameters.1.txt", "AffineTransform", [1.0, 2.0])
    with pytest.raises(TransformReadError, match="needs 12 TransformParameters"):
        read_transform(g)
    h = _elastix(tmp_path / "TransformParameters.2.txt", "TranslationTransform", [1.0, 2.0, 3.0],
                 initial="missing/TransformParameters.9.txt")
    with pytest.raises(TransformReadError, match="not found"):
        read_transform(h)


def test_parse_elastix_parameters():
    p = parse_elastix_parameters('(A "x" "y") // comment\n(B 1 2.5 -3e-1)\n// (C 1)\n')
    assert p == {"A": ["x", "y"], "B": [1.0, 2.5, -0.3]}


# --- displacement fields ------------------------------------------------------------------
def test_displacement_field_image(tmp_path):
    arr = np.zeros((8, 9, 10, 3), np.float32)
    arr[..., :] = (1.0, -2.0, 0.5)
    field = sitk.GetImageFromArray(arr, isVector=True)
    field.SetSpacing((2.0, 2.0, 2.0))
    f = tmp_path / "warp.nii.gz"
    sitk.WriteImage(field, str(f))
    _check(read_transform(f), lambda x: x + [1.0, -2.0, 0.5], points=[(4.0, 5.0, 6.0), (10.0, 8.0, 4.0)])


def test_scalar_image_is_not_a_field(tmp_path):
    f = tmp_path / "scalar.nii.gz"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkFloat32), str(f))
    with pytest.raises(TransformReadError, match="vector components"):
        read_transform(f)


# --- bad input ---------------------------------------------------------------------------
def test_bad_inputs(tmp_path):
    with pytest.raises(TransformReadError, match="does not exist"):
        read_transform(tmp_path / "nope.tfm")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(TransformReadError, match="empty"):
        read_transform(empty)
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(RegviewerError, match="not a transform file"):
        read_transform(junk)


def test_elastix_similarity_3d_versor(tmp_path):
    """3D similarity: (versor x y z, tx ty tz, scale); the versor is sin(angle/2) * axis."""
    axis, angle, s = np.array([1.0, 2.0, 2.0]) / 3.0, 0.3, 0.9
    v = math.sin(angle / 2) * axis
    t, c = np.array([1.0, -2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    f = _elastix(tmp_path / "TransformParameters.0.txt", "SimilarityTransform", [*v, *t, s],
                 extra="(CenterOfRotationPoint 4 5 6)\n")
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    r = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k  # Rodrigues
    _check(read_transform(f), lambda x: s * r @ (x - c) + c + t)
