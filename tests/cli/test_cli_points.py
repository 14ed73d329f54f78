"""`regviewer apply-points`: fixed landmarks map onto the moving ones, and back with the inverse."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.cli.parser import main
from regviewer.core.errors import LandmarkFileError
from regviewer.core.transforms.points import map_points, read_point_csv

from .conftest import DEMO, run_cli


def _landmarks(transform: sitk.Transform, n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed points inside the demo brain and their moving partners under `transform`."""
    from regviewer.core.imaging.synthetic import brain_points

    fixed = brain_points(sitk.ReadImage(str(DEMO / "brain_mask_fixed.nii.gz")), n, seed)
    moving = np.array([transform.TransformPoint(p.tolist()) for p in fixed])
    return fixed, moving


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)


def _read_xyz(text: str) -> np.ndarray:
    rows = list(csv.DictReader(io.StringIO(text)))
    return np.array([[float(r["x"]), float(r["y"]), float(r["z"])] for r in rows])


def test_fixed_landmarks_map_to_the_moving_set_and_back_through_the_deformable_truth(tmp_path):
    true_path = DEMO / "brain_true_fixed_to_moving.h5"  # affine + B-spline: not linear
    true = sitk.ReadTransform(str(true_path))
    fixed, moving = _landmarks(true)
    _write(tmp_path / "fixed.csv", ["name", "x", "y", "z"], [[f"L{i}", *p] for i, p in enumerate(fixed)])
    proc = run_cli("apply-points", true_path, tmp_path / "fixed.csv")
    assert proc.returncode == 0, proc.stderr
    assert np.allclose(_read_xyz(proc.stdout), moving, atol=1e-6)
    assert proc.stdout.splitlines()[1].startswith("L0,")  # other columns are kept

    # Moving-space points back to fixed space: Newton's method per point on the deformable transform.
    _write(tmp_path / "moving.csv", ["name", "x", "y", "z"], [[f"L{i}", *p] for i, p in enumerate(moving)])
    assert main(["apply-points", str(true_path), str(tmp_path / "moving.csv"), "--to", "fixed",
                 "--out", str(tmp_path / "back.csv")]) == 0
    back = (tmp_path / "back.csv").read_text()
    assert np.abs(_read_xyz(back) - fixed).max() < 1e-3
    assert all(float(r["residual_mm"]) < 1e-3 for r in csv.DictReader(io.StringIO(back)))


def test_linear_inverse_is_exact_and_headerless_csv_works(tmp_path, capsys):
    true_path = DEMO / "brain_true_affine.tfm"
    true = sitk.ReadTransform(str(true_path))
    fixed, moving = _landmarks(true, n=5)
    _write(tmp_path / "moving.csv", None, moving.tolist())
    assert main(["apply-points", str(true_path), str(tmp_path / "moving.csv"), "--to", "fixed"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    mapped = np.array([[float(v) for v in r[:3]] for r in rows[1:]])
    assert np.abs(mapped - fixed).max() < 1e-9


def test_map_points_forward_and_inverse_agree_on_a_2d_warp():
    from regviewer.core.imaging.synthetic import affine_transform, smooth_warp
    from regviewer.core.transforms.ops import compose

    ref = sitk.Image([60, 60], sitk.sitkFloat32)
    ref.SetSpacing([2.0, 2.0])
    tx = compose(affine_transform([60.0, 60.0], rotation_deg=(0, 0, 8.0), translation_mm=(3.0, -2.0)),
                 smooth_warp(ref, max_mm=4.0, seed=3))
    points = np.random.default_rng(1).uniform(35, 85, (40, 2))
    forward = map_points(tx, points).points
    back = map_points(tx, forward, to="fixed")
    assert back.converged.all()
    assert np.abs(back.points - points).max() < 1e-3


@pytest.mark.parametrize("content, problem", [
    ("a,b,c\n1,2,3\n", "no column x"),
    ("x,y,z\n1,2,oops\n", "'oops' is not a number"),
    ("", "no points"),
])
def test_bad_point_files_are_named(tmp_path, content, problem, capsys):
    path = tmp_path / "points.csv"
    path.write_text(content)
    with pytest.raises(LandmarkFileError, match=problem):
        read_point_csv(path, 3)
    assert main(["apply-points", str(DEMO / "brain_true_affine.tfm"), str(path)]) == 2
    assert "points.csv" in capsys.readouterr().err


def test_a_landmark_file_maps_its_fixed_points_onto_its_moving_points(tmp_path):
    pytest.importorskip("regviewer.core.landmarks.formats")
    from regviewer.core.landmarks.model import LandmarkSet

    true_path = DEMO / "brain_true_fixed_to_moving.h5"
    fixed, moving = _landmarks(sitk.ReadTransform(str(true_path)), n=8, seed=2)
    lm = LandmarkSet(3)
    for i, (f, m) in enumerate(zip(fixed, moving)):
        lm.add_pair(fixed=f.tolist(), moving=m.tolist(), name=f"P{i}")
    lm.save(tmp_path / "pairs.csv")
    proc = run_cli("apply-points", true_path, tmp_path / "pairs.csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["name"] for r in rows] == [f"P{i}" for i in range(8)]
    assert np.allclose(_read_xyz(proc.stdout), moving, atol=1e-6)
    assert max(float(r["error_mm"]) for r in rows) < 1e-6
    assert "distance to the moving landmarks" in proc.stderr
    # and back: the moving points land on the fixed ones
    assert main(["apply-points", str(true_path), str(tmp_path / "pairs.csv"), "--to", "fixed",
                 "--out", str(tmp_path / "back.csv")]) == 0
    assert np.abs(_read_xyz((tmp_path / "back.csv").read_text()) - fixed).max() < 1e-3
