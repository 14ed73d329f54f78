"""align_stack: ordering, both modes, a missing and a bad section, multi-page TIFF, slides."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile

import regviewer
from regviewer.core.errors import ImageReadError
from regviewer.core.stack.sections import natural_key, read_sections
from tests.stack_phantom import block, cut, mean_error, tissue_points

N = 7


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sections")
    planes = block(N)
    truths = cut(planes, folder)
    return folder, planes, truths


def test_natural_order(tmp_path):
    names = ["s10.png", "s2.png", "s1.png", "S3.png"]
    for name in names:
        sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)),
                        str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [s.name for s in read_sections(tmp_path)] == ["s1", "s2", "S3", "s10"]
    assert sorted(["b10", "a2", "b9"], key=natural_key) == ["a2", "b9", "b10"]


def test_without_reference_recovers_consecutive_sections(stack):
    folder, planes, truths = stack
    result = regviewer.align_stack(folder)
    assert result.mode == "neighbours" and result.anchor == N // 2
    assert result.volume.GetSize() == (96, 96, N)
    pts = tissue_points()
    a_inv = truths[result.anchor].GetInverse()
    out_pts = [truths[result.anchor].TransformPoint(p.tolist()) for p in pts]

    def misplacement(k):  # where section k's aligned pixels come from in the block, minus where they should
        return np.array([np.subtract(truths[k].GetInverse().TransformPoint(result.sections[k].transform.TransformPoint(p)),
                                     a_inv.TransformPoint(p)) for p in out_pts])

    for k in range(N - 1):  # neighbours agree with each other as in the block
        assert np.mean(np.linalg.norm(misplacement(k + 1) - misplacement(k), axis=1)) < 1.5, k
    assert all(s.status == "ok" for s in result.sections), result.table()
    assert all(s.metric > 0.8 for s in result.sections)


def test_with_reference_each_section_within_a_pixel(stack):
    folder, planes, truths = stack
    reference = sitk.JoinSeries(planes)
    result = regviewer.align_stack(folder, reference=reference)
    assert result.mode == "reference" and result.anchor is None
    for s, true in zip(result.sections, truths):
        assert mean_error(s.transform, true, tissue_points()) < 1.0, s.name


def test_missing_and_bad_sections_are_reported_and_the_rest_go_on(tmp_path):
    planes = block(9, seed=3)
    truths = cut(planes, tmp_path, seed=4)
    (tmp_path / "s3.png").write_bytes(b"this is not a PNG")
    other = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "s6.png")))
    noise = np.random.default_rng(1).integers(0, 255, other.shape, dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(noise), str(tmp_path / "s6.png"))  # a ruined section
    result = regviewer.align_stack(tmp_path)
    status = {s.name: s.status for s in result.sections}
    assert status["s3"] == "missing" and result.sections[3].transform is None
    assert "s3.png" in result.sections[3].flags[0]
    assert status["s6"] in ("flagged", "failed"), result.table()
    assert any("jump" in f or "inconsistent" in f or "registration" in f for f in result.sections[6].flags)
    ok = [n for n, st in status.items() if st == "ok"]
    assert len(ok) >= 6, result.table()
    assert float(sitk.GetArrayViewFromImage(result.volume)[3].max()) == 0.0  # a blank plane keeps z
    # sections either side of the gap still agree with the truth
    a_inv = truths[result.anchor].GetInverse()
    out_pts = [truths[result.anchor].TransformPoint(p.tolist()) for p in tissue_points()]
    for k in (2, 4):
        est = result.sections[k].transform
        err = np.mean([np.linalg.norm(np.subtract(est.TransformPoint(p), truths[k].TransformPoint(a_inv.TransformPoint(p))))
                       for p in out_pts])
        assert err < 2.0, (k, err)

    assert [s.index for s in result.sections if s.status != "ok"] == [3, 6], result.table()
    # the k+2 pair bridges the ruined section: its two neighbours still agree with each other in
    # the joint fit (checked without the trend removal, which on 8 sections fits a stretch
    # trend to the badly stretched s0 and s1 and so moves s7's stretch by a few per cent)
    joint = regviewer.align_stack(tmp_path, remove_trend="off")

    def misplacement(k):
        return np.array([np.subtract(truths[k].GetInverse().TransformPoint(joint.sections[k].transform.TransformPoint(p)),
                                     a_inv.TransformPoint(p)) for p in out_pts])

    assert np.mean(np.linalg.norm(misplacement(7) - misplacement(5), axis=1)) < 1.5


def test_nothing_readable_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(ImageReadError, match="none of its 1 sections"):
        regviewer.align_stack(tmp_path)
    with pytest.raises(ImageReadError, match="no such file"):
        regviewer.align_stack(tmp_path / "nowhere")


def test_multipage_tiff_and_3d_image_inputs(tmp_path, stack):
    folder, planes, truths = stack
    arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"s{k}.png"))) for k in range(N)]
    tifffile.imwrite(tmp_path / "stack.tif", np.stack(arrays))
    secs = read_sections(tmp_path / "stack.tif")
    assert len(secs) == N and all(s.ok for s in secs)
    vol = sitk.GetImageFromArray(np.stack(arrays).astype(np.float32))
    result = regviewer.align_stack(vol, spacing=(0.5, 0.5, 4.0), rigid=True)
    assert result.volume.GetSpacing() == (0.5, 0.5, 4.0)
    assert all(s.status == "ok" for s in result.sections), result.table()


def test_write_outputs(tmp_path, stack):
    folder, planes, truths = stack
    result = regviewer.align_stack(folder, neighbours=1)
    written = result.write(tmp_path / "out")
    assert (tmp_path / "out" / "stack.nii.gz").exists()
    assert len(list((tmp_path / "out" / "transforms").glob("*.tfm"))) == N
    rows = (tmp_path / "out" / "stack.csv").read_text().splitlines()
    assert rows[0] == "index,section,status,metric,flags,seconds" and len(rows) == N + 1
    tx = sitk.ReadTransform(str(tmp_path / "out" / "transforms" / "s0.tfm"))
    p = (40.0, 50.0)
    assert np.allclose(tx.TransformPoint(p), result.sections[0].transform.TransformPoint(p), atol=1e-6)
    assert len(written) == N + 2


def test_pyramidal_slides_register_on_a_level_and_write_full_resolution(tmp_path):
    planes = block(2, seed=5)
    big = []
    for k, plane in enumerate(planes):  # 8x larger "slides": 768 px
        up = sitk.Resample(plane, [768, 768], sitk.Transform(), sitk.sitkLinear, (0, 0), (0.125, 0.125))
        arr = np.clip(sitk.GetArrayFromImage(up), 0, 255).astype(np.uint8)
        if k == 1:
            arr = np.roll(arr, (16, -24), axis=(0, 1))  # shift by (x -24, y +16) full-res px
        with tifffile.TiffWriter(tmp_path / f"slide{k}.tif") as tif:
            tif.write(arr, tile=(128, 128), subifds=2)
            tif.write(arr[::2, ::2], tile=(128, 128), subfiletype=1)
            tif.write(arr[::4, ::4], tile=(128, 128), subfiletype=1)
    result = regviewer.align_stack(tmp_path, max_side=200, anchor=0, neighbours=1)
    assert result.sections[1].status == "ok"
    assert result.output_grid.GetSize() == (192, 192)  # registered at the 4x level
    # output -> section: a point of slide 0 maps to the same tissue in slide 1: +(-24, +16)
    moved = np.subtract(result.sections[1].transform.TransformPoint((400.0, 400.0)), (400.0, 400.0))
    assert np.allclose(moved, (-24, 16), atol=1.5), moved
    result.write(tmp_path / "out")
    with tifffile.TiffFile(tmp_path / "out" / "stack.ome.tif") as tif:
        data = tif.series[0].asarray()
    assert data.shape == (2, 768, 768)
    inner = (slice(100, 660), slice(100, 660))
    a, b = data[0][inner].astype(float), data[1][inner].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_reference_mode_is_not_misled_by_a_noisy_slide_background(tmp_path):
    """Sections on a wide, noisy slide against clean reference planes: the tissue's spread
    differs by ~2x only because of the background, so the guessed start scale must lose to
    scale 1 (it once started sections at 1.2-1.6x and left them there)."""
    planes = block(3, seed=6)
    truths = cut(planes, tmp_path, seed=7)
    rng = np.random.default_rng(0)
    for k in range(3):
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"s{k}.png"))).astype(float)
        slide = np.zeros((160, 160))
        slide[32:128, 32:128] = arr
        slide = np.clip(slide + 40 + rng.normal(0, 12, slide.shape), 0, 255).astype(np.uint8)
        sitk.WriteImage(sitk.GetImageFromArray(slide), str(tmp_path / f"s{k}.png"))
    result = regviewer.align_stack(tmp_path, reference=sitk.JoinSeries(planes))
    shift = sitk.TranslationTransform(2, (32.0, 32.0))  # the section sits 32 px into the slide
    for s, true in zip(result.sections, truths):
        assert mean_error(s.transform, sitk.CompositeTransform([shift, true]), tissue_points()) < 1.0, s.index


def test_16_bit_slides_are_written_16_bit(tmp_path):
    """16-bit pyramidal slides (fluorescence) keep their 16 bits in the aligned OME-TIFF."""
    planes = block(2, seed=5)
    sources = []
    for k, plane in enumerate(planes):  # 384 px, values up to ~50 000
        up = sitk.Resample(plane, [384, 384], sitk.Transform(), sitk.sitkLinear, (0, 0), (0.25, 0.25))
        arr = np.clip(sitk.GetArrayFromImage(up) * 200.0, 0, 65535).astype(np.uint16)
        if k == 1:
            arr = np.roll(arr, (8, -12), axis=(0, 1))
        sources.append(arr)
        with tifffile.TiffWriter(tmp_path / f"slide{k}.tif") as tif:
            tif.write(arr, tile=(128, 128), subifds=1)
            tif.write(arr[::4, ::4], tile=(128, 128), subfiletype=1)
    result = regviewer.align_stack(tmp_path, max_side=100, anchor=0, neighbours=1)
    assert result.sections[1].status == "ok"
    result.write(tmp_path / "out")
    with tifffile.TiffFile(tmp_path / "out" / "stack.ome.tif") as tif:
        data = tif.series[0].asarray()
    assert data.dtype == np.uint16 and data.shape == (2, 384, 384)
    inner = (slice(40, 340), slice(40, 340))
    assert data[0].max() > 20000  # not squeezed into 8 bits
    assert np.abs(data[0][inner].astype(float) - sources[0][inner]).mean() < 0.01 * sources[0][inner].mean()
    a, b = data[0][inner].astype(float), data[1][inner].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_deformable_refinement_keeps_sections_in_place(stack):
    folder, planes, truths = stack
    linear = regviewer.align_stack(folder, neighbours=1)
    warped = regviewer.align_stack(folder, neighbours=1, deformable=True)
    assert warped.sections[1].transform.GetName() == "CompositeTransform"
    assert any(warped.sections[1].transform.GetNthTransform(i).GetName() == "BSplineTransform"
               for i in range(warped.sections[1].transform.GetNumberOfTransforms()))
    a = warped.anchor
    for k in (a - 1, a + 1):  # near the linear result: the phantom has no warp, only its anatomy changes
        pts = tissue_points()
        d = [np.linalg.norm(np.subtract(warped.sections[k].transform.TransformPoint(p.tolist()),
                                        linear.sections[k].transform.TransformPoint(p.tolist()))) for p in pts]
        assert np.mean(d) < 3.0


def test_reference_folder_of_blockface_images(tmp_path, stack):
    folder, planes, truths = stack
    refs = tmp_path / "blockface"
    refs.mkdir()
    for k, plane in enumerate(planes):  # a different contrast: inverted, as a photograph of the block might be
        arr = 255 - np.clip(sitk.GetArrayFromImage(plane), 0, 255)
        sitk.WriteImage(sitk.GetImageFromArray(arr.astype(np.uint8)), str(refs / f"block{k + 1}.png"))
    result = regviewer.align_stack(folder, reference=refs)
    assert result.mode == "reference" and len(result.references) == N
    errors = [mean_error(s.transform, true, tissue_points()) for s, true in zip(result.sections, truths)]
    assert max(errors) < 1.0, errors
    with pytest.raises(regviewer.core.errors.IncompatibleImagesError, match="one reference image per section"):
        regviewer.align_stack(folder, reference=[refs / "block1.png", refs / "block2.png"])


def test_reference_volume_geometry_is_kept(stack):
    folder, planes, truths = stack
    reference = sitk.JoinSeries(planes)
    reference.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    reference.SetOrigin((90.0, 120.0, -40.0))
    reference.SetSpacing((1.0, 1.0, 2.5))
    result = regviewer.align_stack(folder, reference=reference, rigid=True)
    assert result.volume.GetDirection() == reference.GetDirection()
    assert np.allclose(result.volume.GetOrigin(), reference.GetOrigin())
    assert np.allclose(result.volume.GetSpacing(), reference.GetSpacing())
