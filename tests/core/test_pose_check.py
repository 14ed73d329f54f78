"""The wrong-optimum check refines only the pose-search candidates that could beat the result."""

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import regviewer
from regviewer.core.imaging.image import as_volume
from regviewer.core.registration import pose_check
from regviewer.core.registration.pose_check import WrongOptimumCheck, climbs_to, needs_refining
from regviewer.core.registration.search import clear_cache, find_candidates

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


@pytest.fixture(scope="module")
def small() -> sitk.Image:
    """The demo retina's luminance at 96 x 96 (a real photograph, small and fast)."""
    return sitk.BinShrink(as_volume(str(DEMO / "retina_fixed.png")).scalar(), [5, 5])


def centre(image: sitk.Image) -> tuple:
    return image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])


def moved(image: sitk.Image, true: sitk.Transform) -> sitk.Image:
    return sitk.Resample(image, image, true.GetInverse(), sitk.sitkLinear, 0.0)


def turn(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def angle_of(tx: sitk.Transform) -> float:
    m = np.asarray(tx.GetMatrix()).reshape(2, 2)
    return math.degrees(math.atan2(m[1, 0], m[0, 0]))


def test_a_path_that_climbs_to_the_result_passes_and_one_with_a_bump_does_not():
    centre0, shift = np.zeros(2), np.zeros(2)
    start, end = (turn(0), shift), (turn(60), shift)
    towards_60 = lambda tx: -(angle_of(tx) - 60.0) ** 2  # noqa: E731 - the result is the top
    towards_30 = lambda tx: -(angle_of(tx) - 30.0) ** 2  # noqa: E731 - a better pose half way
    assert climbs_to(towards_60, start, end, centre0, towards_60(sitk.Euler2DTransform()), 0.0)
    assert not climbs_to(towards_30, start, end, centre0, -900.0, -900.0)  # the path rises above the end
    assert not climbs_to(towards_30, start, end, centre0, -900.0, 0.0)  # ...even when the end is said to be best
    assert not climbs_to(towards_60, start, end, centre0, 1.0, 0.0)  # a candidate as good as the result


def test_a_candidate_on_the_results_slope_is_not_refined_and_a_better_one_far_away_is(small):
    true = sitk.Euler2DTransform(centre(small), math.radians(40), (3.0, 2.0))
    found = find_candidates(small, moved(small, true), "similarity")
    assert len(found.chosen) == 4
    assert needs_refining(found, true) == []  # the right result: every candidate climbs to it
    wrong = sitk.Euler2DTransform(centre(small), math.radians(220), (3.0, 2.0))  # a half turn off
    assert needs_refining(found, wrong) == [0, 1, 2, 3]
    # affine then B-spline: judged by its linear stages (the B-spline only bends the pose locally)
    bend = sitk.BSplineTransformInitializer(small, [2, 2])
    bend.SetParameters([0.5] * bend.GetNumberOfParameters())
    assert needs_refining(found, sitk.CompositeTransform([true, bend])) == []
    assert needs_refining(found, sitk.CompositeTransform([wrong, bend])) == [0, 1, 2, 3]
    assert needs_refining(found, bend) == [0, 1, 2, 3]  # no linear stage: no pose to judge, refine as before


def test_a_good_result_refines_nothing_and_a_wrong_one_is_still_caught(small, monkeypatch):
    asked = []
    real = pose_check.needs_refining
    monkeypatch.setattr(pose_check, "needs_refining", lambda found, result: asked.append(real(found, result)) or asked[-1])
    true = sitk.Euler2DTransform(centre(small), math.radians(8), (3.0, -2.0))
    good = regviewer.register(small, moved(small, true), preset="rigid")
    assert asked == [[]] and good.warnings == []
    half = sitk.Euler2DTransform(centre(small), math.pi, (3.0, -2.0))
    # `rigid` starts from the geometry (photo-2d starts from the pose search, which needs no check)
    first = regviewer.register(small, moved(small, half), preset="rigid")
    assert asked[-1] and any("probably wrong" in w for w in first.warnings)
    clear_cache()  # the search itself runs again, beside the stages, as on a pair not seen before
    again = regviewer.register(small, moved(small, half), preset="rigid")
    assert again.warnings == first.warnings  # the same verdict and figures, whatever was ready when


def test_a_cancelled_run_gets_no_verdict_and_settling_waits_for_the_search(small):
    true = sitk.Euler2DTransform(centre(small), math.radians(30), (2.0, 1.0))
    check = WrongOptimumCheck(small, moved(small, true), lambda: True)  # cancelled from the start
    assert check.result() is None  # waits for the search, which stopped at once
    assert check.future.done()
    assert check.alternative_to(sitk.Euler2DTransform(), lambda pose: True) is None


def test_the_coarse_copy_is_averaged_down_before_it_is_smoothed(monkeypatch):
    """The pose search's 32-voxel copies: a 1 mm brain was smoothed at full size (0.34 s of every
    run's CPU); averaging it down first must give nearly the same copy."""
    from regviewer.core.registration import search

    size = [150, 170, 140]
    image = sitk.GaussianSource(sitk.sitkFloat32, size, [30.0, 40.0, 25.0], [70.0, 90.0, 60.0], 200.0)
    image = image + sitk.GaussianSource(sitk.sitkFloat32, size, [6.0, 5.0, 7.0], [40.0, 60.0, 90.0], 120.0)
    image.SetSpacing([1.0, 1.1, 1.2])
    shrinks = []
    real_shrink = sitk.BinShrink
    monkeypatch.setattr(search.sitk, "BinShrink", lambda img, f: shrinks.append(list(f)) or real_shrink(img, f))
    small = search.coarse(image, 32)
    assert shrinks == [[2, 2, 2]]  # a step of 5.3 mm: two voxels or more per step along each axis

    step = small.GetSpacing()[0]  # the same copy made the old way: smoothed at full size
    full = sitk.Resample(sitk.SmoothingRecursiveGaussian(image, [step / 2.0] * 3), small, sitk.Transform(),
                         sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    ours, theirs = sitk.GetArrayFromImage(small), sitk.GetArrayFromImage(full)
    inner = (slice(1, -1),) * 3  # the old copy's last row could fall outside the image (0 there)
    assert np.abs(ours[inner] - theirs[inner]).max() < 0.02 * theirs.max()
