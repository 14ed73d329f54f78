"""Manual alignment math: the transform follows the visible motion, in the right direction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from regviewer.core.transforms import manual as m
from regviewer.core.errors import ParameterError
from regviewer.core.imaging.image import Volume


def test_translation_moves_the_overlay_and_inverts_into_the_transform():
    a = m.ManualAlignment(translation=(10, 0, 0))
    tx = a.transform_fixed_to_moving()
    # The overlay moved +10 mm in x, so the fixed point (10,0,0) shows moving point (0,0,0).
    assert np.allclose(tx.TransformPoint((10, 0, 0)), (0, 0, 0))
    assert a.motion((0, 0, 0)) == (10, 0, 0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-50, 50), min_size=3, max_size=3),
    st.lists(st.floats(-90, 90), min_size=3, max_size=3),
    st.floats(0.5, 2.0),
    st.lists(st.floats(-30, 30), min_size=3, max_size=3),
)
def test_transform_is_the_inverse_of_the_motion(t, r, s, c):
    a = m.ManualAlignment(translation=t, rotation_deg=r, scale=s, centre=c)
    tx = a.transform_fixed_to_moving()
    for p in [(1.0, 2.0, 3.0), (-20.0, 5.0, 7.0)]:
        assert np.allclose(tx.TransformPoint(a.motion(p)), p, atol=1e-6)


def test_with_centre_keeps_the_motion():
    a = m.ManualAlignment(translation=(3, 4, 5), rotation_deg=(10, -20, 30), scale=1.2, centre=(1, 1, 1))
    b = a.with_centre((40, -7, 2))
    for p in [(0, 0, 0), (10, 20, -5)]:
        assert np.allclose(a.motion(p), b.motion(p))


def test_rotation_about_a_pivot_keeps_the_pivot_fixed():
    a = m.ManualAlignment(translation=(5, 0, 0))
    pivot = (10.0, 10.0, 0.0)
    b = a.rotated((0, 0, 1), 90, pivot)
    # The point that M sent to the pivot still lands there.
    assert np.allclose(b.motion((5, 10, 0)), pivot)
    # and points around it turn by 90 degrees about z
    assert np.allclose(b.motion((15, 10, 0)), (10, 20, 0))


def test_2d_alignment_uses_similarity_2d():
    a = m.ManualAlignment(dimension=2, translation=(4, -2), rotation_deg=(0, 0, 30), scale=0.8, centre=(50, 50))
    tx = a.transform_fixed_to_moving()
    assert tx.GetDimension() == 2
    p = (60.0, 40.0)
    assert np.allclose(tx.TransformPoint(a.motion(p)), p)
    b = a.rotated((0, 0, 1), 15, (50, 50))
    assert np.isclose(b.rotation_deg[2], 45)


def test_base_transform_is_composed_after_the_nudge():
    base = sitk.TranslationTransform(3, (1.0, 2.0, 3.0))
    a = m.ManualAlignment(translation=(10, 0, 0))
    tx = a.transform_fixed_to_moving(base)
    assert isinstance(tx, sitk.AffineTransform) or tx.GetName() == "AffineTransform"
    assert np.allclose(tx.TransformPoint((10, 0, 0)), (1, 2, 3))
    bspline = sitk.BSplineTransformInitializer(sitk.Image([8, 8, 8], sitk.sitkFloat32), [2, 2, 2])
    tx2 = a.transform_fixed_to_moving(bspline)
    assert np.allclose(tx2.TransformPoint((10, 0, 0)), (0, 0, 0))


def test_aligned_to_points_maps_centre_to_centre():
    a = m.ManualAlignment(rotation_deg=(0, 0, 20), centre=(5, 5, 5))
    base = sitk.TranslationTransform(3, (0.0, 3.0, 0.0))
    b = m.aligned_to_points(a, (10, 20, 30), (1, 2, 3), base)
    assert np.allclose(b.transform_fixed_to_moving(base).TransformPoint((10, 20, 30)), (1, 2, 3))
    assert b.rotation_deg == a.rotation_deg


def test_centre_of_mass_of_a_blob():
    arr = np.zeros((20, 30, 40), np.float32)
    arr[5:7, 10:12, 30:32] = 100
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 2.0))
    img.SetOrigin((-10.0, 0.0, 0.0))
    com = m.centre_of_mass(Volume(img))
    assert np.allclose(com, (-10 + 30.5 * 2, 10.5 * 2, 5.5 * 2))


def test_angle_between_is_signed():
    assert np.isclose(m.angle_between((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)), 90)
    assert np.isclose(m.angle_between((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, -1)), -90)


def test_json_round_trip_and_validation():
    a = m.ManualAlignment(translation=(1, 2, 3), rotation_deg=(4, 5, 6), scale=1.1, centre=(7, 8, 9))
    assert m.ManualAlignment.from_json(a.to_json()) == a
    with pytest.raises(ParameterError):
        m.ManualAlignment(scale=0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-179, 179), min_size=3, max_size=3))
def test_rotation_helpers_agree_with_scipy(angles):
    from scipy.spatial.transform import Rotation

    r = m.euler_xyz_matrix(angles)
    assert np.allclose(r, Rotation.from_euler("xyz", angles, degrees=True).as_matrix())
    assert np.allclose(m.euler_xyz_matrix(m.matrix_to_euler_xyz(r)), r, atol=1e-9)
    q = np.array(m.matrix_to_versor(r))
    q_ref = Rotation.from_matrix(r).as_quat()
    assert np.allclose(q, q_ref, atol=1e-9) or np.allclose(q, -q_ref, atol=1e-9)
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    assert np.allclose(m.axis_angle_matrix(axis, 0.7), Rotation.from_rotvec(axis * 0.7).as_matrix())


def test_gimbal_lock_round_trip():
    for ay in (90.0, -90.0):
        r = m.euler_xyz_matrix((30.0, ay, 0.0))
        assert np.allclose(m.euler_xyz_matrix(m.matrix_to_euler_xyz(r)), r, atol=1e-9)
