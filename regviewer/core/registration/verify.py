"""One fixed yardstick per run: is a stage's result better than what it started from?

Optimiser metrics cannot answer that: each pyramid level smooths and subsamples the
images differently and random sampling changes from level to level, so a metric value
at the coarse level and one at full resolution are different numbers. An `Evaluation`
is built once per run and always measures the same thing: mutual information (nats,
higher is more similar) between the FULL-resolution fixed image and the moving image
seen through a transform, on one fixed regular set of fixed-image points (every pixel
of a small image; about 40 000 points otherwise). A point whose image falls outside the
moving image counts in its own "outside" bin, so losing overlap lowers the score
instead of going unnoticed. The same evaluation is used for History's comparison.

The engine calls `StageVerifier.accept` after every stage: a stage whose result scores
lower than its start is rolled back, and the run carries a warning in plain words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

MAX_SAMPLES = 40_000
BINS = 32
# A stage must not lose more than this (relative, plus an absolute floor in nats) to count as "not worse":
# interpolation blur alone lowers histogram MI by about a percent when a stage refines a near-perfect
# alignment and two near-equal poses differ by a few percent, while a stage that truly goes wrong loses
# far more (a diverged affine stage on a photograph: 1.51 -> 0.35 nats).
RELATIVE_TOLERANCE = 0.05
ABSOLUTE_TOLERANCE = 1e-3
EVALUATION_NAME = "mutual information (nats), full resolution, fixed regular samples"


class Evaluation:
    """Mutual information on a fixed sample set; `score(T)` for a fixed -> moving transform T."""

    def __init__(self, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image | None = None,
                 max_samples: int = MAX_SAMPLES, bins: int = BINS, threads: int = 0) -> None:
        """`threads`: ITK threads per resampling (0: ITK's default); the same numbers either way."""
        size = fixed.GetSize()
        dim = fixed.GetDimension()
        k = max(1, math.ceil((float(np.prod(size)) / max_samples) ** (1.0 / dim)))
        self.step = k
        ref = sitk.Image([int(math.ceil(s / k)) for s in size], sitk.sitkFloat32)
        ref.SetOrigin(fixed.GetOrigin())
        ref.SetSpacing([sp * k for sp in fixed.GetSpacing()])
        ref.SetDirection(fixed.GetDirection())
        self.reference = ref
        values = sitk.GetArrayViewFromImage(fixed)[(slice(None, None, k),) * dim].astype(np.float64)
        keep = np.isfinite(values)
        if fixed_mask is not None:  # ITK takes a mask on any grid: bring it onto the fixed one first
            on_fixed = sitk.Resample(fixed_mask, fixed, sitk.Transform(dim, sitk.sitkIdentity),
                                     sitk.sitkNearestNeighbor, 0, fixed_mask.GetPixelID())
            keep &= sitk.GetArrayViewFromImage(on_fixed)[(slice(None, None, k),) * dim] != 0
        self.keep = keep
        self.bins = bins
        self.fixed_values = values[keep]
        self.fixed_bins = _quantise(self.fixed_values, *_robust_range(self.fixed_values), bins)
        self.moving = moving
        self.moving_range = _robust_range(sitk.GetArrayViewFromImage(moving)[(slice(None, None, max(1, k // 2)),) * dim])
        self.n_samples = int(keep.sum())
        self.threads = int(threads)

    def sample(self, transform: sitk.Transform | None) -> np.ndarray:
        """Moving intensities at the sample points through `transform` (NaN outside the moving image)."""
        tx = transform if transform is not None else sitk.Transform(self.moving.GetDimension(), sitk.sitkIdentity)
        resampler = sitk.ResampleImageFilter()  # one per call: several threads may score at once
        resampler.SetReferenceImage(self.reference)
        resampler.SetTransform(tx)
        resampler.SetInterpolator(sitk.sitkLinear)
        resampler.SetDefaultPixelValue(float("nan"))
        resampler.SetOutputPixelType(sitk.sitkFloat32)
        if self.threads > 0:
            resampler.SetNumberOfThreads(self.threads)
        out = resampler.Execute(self.moving)
        return sitk.GetArrayViewFromImage(out)[self.keep].astype(np.float64)

    def score(self, transform: sitk.Transform | None) -> float:
        """Mutual information (nats) of fixed and moving-through-`transform`; higher is more similar."""
        moving = self.sample(transform)
        inside = np.isfinite(moving)
        m_bins = np.full(moving.shape, self.bins, dtype=np.int64)  # the "outside" bin
        m_bins[inside] = _quantise(moving[inside], *self.moving_range, self.bins)
        joint = np.bincount(self.fixed_bins * (self.bins + 1) + m_bins,
                            minlength=self.bins * (self.bins + 1)).reshape(self.bins, self.bins + 1)
        return _mutual_information(joint)

    def correlation(self, transform: sitk.Transform | None) -> float:
        """Pearson correlation of fixed and moving intensities where both exist (nan when < 10 points)."""
        return self.relation(transform)[0]

    def relation(self, transform: sitk.Transform | None) -> tuple[float, float]:
        """(Pearson r, correlation ratio eta²) of moving on fixed intensities where both exist.

        r² close to eta² means a straight line explains the intensity relation as well as any
        function of the fixed intensity does: the same modality (up to brightness and contrast).
        """
        moving = self.sample(transform)
        inside = np.isfinite(moving)
        if inside.sum() < 10:
            return float("nan"), float("nan")
        f, m, fb = self.fixed_values[inside], moving[inside], self.fixed_bins[inside]
        if f.std() == 0 or m.std() == 0:
            return float("nan"), float("nan")
        counts = np.bincount(fb, minlength=self.bins)
        means = np.bincount(fb, weights=m, minlength=self.bins) / np.maximum(counts, 1)
        eta2 = float(np.sum(counts * (means - m.mean()) ** 2) / (m.var() * m.size))
        return float(np.corrcoef(f, m)[0, 1]), eta2


def _robust_range(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _quantise(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    scaled = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo) * bins
    return np.clip(scaled, 0, bins - 1).astype(np.int64)


def _mutual_information(joint: np.ndarray) -> float:
    total = joint.sum()
    if total == 0:
        return 0.0
    p = joint / total
    px = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / (px @ py)[nz])))


@dataclass
class StageCheck:
    """What the verification found for one stage (scores in nats of mutual information)."""

    stage: int
    name: str
    before: float
    after: float
    kept: bool

    def to_dict(self) -> dict:
        return {"stage": self.stage, "name": self.name, "before": round(self.before, 6),
                "after": round(self.after, 6), "kept": self.kept}


@dataclass
class StageVerifier:
    """Judges each stage with one `Evaluation`; collects rollbacks and warnings for the result."""

    evaluation: Evaluation
    checks: list[StageCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    start_score: float | None = None
    guided_trade: bool = False  # a landmark-guided stage gave up similarity for landmark agreement
    failures: list[str] = field(default_factory=list)  # why the result is not to be trusted (subset of warnings)

    def begin(self, start: sitk.Transform | None) -> float:
        """Score the transform the whole run started from (identity or the given initial transform)."""
        self.start_score = self.evaluation.score(start)
        return self.start_score

    def accept(self, index: int, name: str, before: sitk.Transform | None, after: sitk.Transform,
               cancelled: bool = False, landmark_mm: tuple[float, float] | None = None) -> bool:
        """True when stage `index`'s result `after` is not worse than `before`; else record a warning.

        `landmark_mm` = (mean landmark error before, after) for a landmark-guided stage: its objective
        trades image similarity for landmark agreement, so a lower similarity with landmarks clearly
        closer is kept (and said), not undone."""
        s0, s1 = self.evaluation.score(before), self.evaluation.score(after)
        kept = not worse(s1, s0)
        if not kept and landmark_mm is not None and landmark_mm[1] < landmark_mm[0] - LANDMARK_GAIN_MM:
            self.guided_trade = True
            self.checks.append(StageCheck(index, name, s0, s1, True))
            self.warnings.append(f"Stage '{name}' lowered image similarity ({s0:.3f} -> {s1:.3f}) to follow the "
                                 f"landmarks (mean landmark error {landmark_mm[0]:.2f} -> {landmark_mm[1]:.2f} mm); "
                                 "it was kept because the landmark weight asks for that trade.")
            return True
        self.checks.append(StageCheck(index, name, s0, s1, kept))
        if not kept:
            how = "was stopped before it improved the alignment" if cancelled else "made the alignment worse"
            self.warnings.append(f"Stage '{name}' {how} (similarity {s0:.3f} -> {s1:.3f}); it was undone and "
                                 "the result is the transform that stage started from.")
        return kept

    def finish(self, start: sitk.Transform | None, final: sitk.Transform) -> tuple[bool, float]:
        """Compare the final transform with the run's start; (not worse, final score)."""
        final_score = self.evaluation.score(final)
        if self.start_score is None:
            self.begin(start)
        ok = not worse(final_score, self.start_score) or self.guided_trade
        if not ok:
            self.warnings.append(f"The registration did not improve on the starting alignment (similarity "
                                 f"{self.start_score:.3f} at the start, {final_score:.3f} after); the starting "
                                 "alignment was kept. Try another preset, landmarks or a manual alignment first.")
            self.failures.append(self.warnings[-1])
        return ok, final_score

    def compare_alternative(self, alternative: sitk.Transform, final_score: float) -> bool:
        """Warn when a rough alternative pose (the coarse pose search's) already beats the result: the
        optimiser then settled in a wrong optimum (e.g. an image turned 180 degrees). True when it does."""
        alt = self.evaluation.score(alternative)
        if not worse(final_score, alt):
            return False
        self.warnings.append(f"The result is probably wrong: a coarse search over rotations found a clearly "
                             f"different alignment that matches better (similarity {alt:.3f} against "
                             f"{final_score:.3f}). Try the 'auto' preset, landmarks or a manual alignment first.")
        self.failures.append(self.warnings[-1])
        return True

    def summary(self, final_score: float) -> dict:
        return {"evaluation": EVALUATION_NAME, "samples": self.evaluation.n_samples,
                "start": None if self.start_score is None else round(self.start_score, 6),
                "final": round(final_score, 6), "stages": [c.to_dict() for c in self.checks],
                "improved": not self.failures, "message": " ".join(self.failures) or None}


LANDMARK_GAIN_MM = 0.1  # a guided stage must bring the landmarks at least this much closer to be kept


def worse(after: float, before: float) -> bool:
    """True when `after` is clearly lower than `before` (beyond the tolerance)."""
    return after < before - max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(before))


__all__ = ["Evaluation", "StageVerifier", "StageCheck", "worse", "EVALUATION_NAME"]
