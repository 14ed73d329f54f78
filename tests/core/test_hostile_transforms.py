"""Transform files cut off mid-way or damaged (issue 16): a typed error naming the file,
never a silent identity, a wrong centre or one transform fewer."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import SessionError, TransformReadError
from regviewer.core.transforms.io import read_transform, write_transform
from regviewer.core.workspace.session import transform_from_json, transform_to_json


def _affine() -> sitk.AffineTransform:
    tx = sitk.AffineTransform(3)
    tx.SetMatrix([1.1, 0.1, 0, 0, 1, 0, 0, 0, 0.9])
    tx.SetTranslation([3, 4, 5])
    tx.SetCenter([1, 2, 3])
    return tx


def _same(a: sitk.Transform, b: sitk.Transform) -> bool:
    pts = np.random.default_rng(0).uniform(-50, 50, (10, 3))
    return all(np.allclose(a.TransformPoint(list(p)), b.TransformPoint(list(p)), atol=1e-6) for p in pts)


@pytest.mark.parametrize("writer", ["regviewer", "itk"])
def test_every_cut_of_a_transform_file_is_refused_or_exact(tmp_path, writer):
    tx = sitk.CompositeTransform([_affine(), sitk.TranslationTransform(3, (1.5, -2.0, 0.25))])
    full = tmp_path / "full.tfm"
    (write_transform if writer == "regviewer" else lambda t, p: sitk.WriteTransform(t, str(p)))(tx, full)
    text = full.read_text()
    cut = tmp_path / "cut.tfm"
    for n in range(1, len(text)):
        cut.write_text(text[:n])
        try:
            got = read_transform(cut)
        except TransformReadError as exc:
            assert "cut.tfm" in str(exc)
            continue
        # Only a cut exactly at a block boundary of an ITK-written file (no count line) may read,
        # and then only as the complete first transforms; regviewer's own files never.
        assert writer == "itk" and text[n - 1] == "\n", (n, text[:n])
        assert got.GetNumberOfParameters() > 0


def test_full_file_reads_back(tmp_path):
    tx = _affine()
    write_transform(tx, tmp_path / "a.tfm")
    assert _same(read_transform(tmp_path / "a.tfm"), tx)


def test_truncated_transform_in_a_session_is_refused():
    entry = transform_to_json(_affine())
    assert _same(transform_from_json(entry, "s.json"), _affine())
    for cut in (len(entry["data"]) - 3, entry["data"].index("FixedParameters")):
        with pytest.raises(SessionError, match="damaged"):
            transform_from_json({"encoding": "itk-text", "data": entry["data"][:cut]}, "s.json")


def test_elastix_dimension_in_words(tmp_path):
    p = tmp_path / "TransformParameters.0.txt"
    p.write_text('(Transform "EulerTransform")\n(FixedImageDimension "three")\n(TransformParameters 0 0 0 0 0 0)\n')
    with pytest.raises(TransformReadError, match="FixedImageDimension"):
        read_transform(p)


def test_four_dimensional_displacement_field_message(tmp_path):
    field = sitk.Image([3, 3, 3, 2], sitk.sitkVectorFloat32, 4)
    p = tmp_path / "field4d.nii.gz"
    sitk.WriteImage(field, str(p))
    with pytest.raises(TransformReadError) as err:
        read_transform(p)
    assert "4D" in str(err.value) and "needs 4" not in str(err.value)


def test_truncated_compressed_displacement_field(tmp_path):
    field = sitk.Image([8, 8, 8], sitk.sitkVectorFloat32, 3)
    field = sitk.GetImageFromArray(np.random.default_rng(1).normal(size=(8, 8, 8, 3)).astype(np.float32), isVector=True)
    p = tmp_path / "warp.mha"
    sitk.WriteImage(field, str(p), True)
    p.write_bytes(p.read_bytes()[:-400])
    with pytest.raises(TransformReadError, match="truncated"):
        read_transform(p)


def test_elastix_bspline_with_zero_grid_spacing(tmp_path):
    """Found by the fuzz test: ITK's RuntimeError from SetFixedParameters escaped untyped."""
    p = tmp_path / "TransformParameters.1.txt"
    p.write_text('(Transform "BSplineTransform")\n(FixedImageDimension 2)\n(GridSize 4 4)\n(GridIndex 0 0)\n'
                 '(GridSpacing 0 10)\n(GridOrigin -10 -10)\n(GridDirection 1 0 0 1)\n(TransformParameters '
                 + " ".join(["0.5"] * 32) + ")\n")
    with pytest.raises(TransformReadError, match="GridSpacing"):
        read_transform(p)
