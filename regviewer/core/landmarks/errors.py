"""How far a transform maps each landmark pair's fixed point from its moving point.

For the target registration error after an intensity registration and for the QA report;
`fitting.py` fits transforms to the pairs, this module judges any transform on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from regviewer.core.qa.tre import ErrorSummary, summarise


@dataclass(frozen=True)
class LandmarkErrorRow:
    index: int  # into landmark_set.pairs
    name: str
    enabled: bool
    error_mm: float  # |T(fixed) - moving|
    vector_mm: tuple[float, ...]  # T(fixed) - moving, LPS


@dataclass(frozen=True)
class LandmarkErrors:
    """Per-pair error of a transform on landmark pairs; the summary is over ENABLED pairs."""

    rows: tuple[LandmarkErrorRow, ...]

    def stats(self) -> ErrorSummary:
        return summarise([r.error_mm for r in self.rows if r.enabled])

    @property
    def n(self) -> int:
        return self.stats().n

    @property
    def mean_mm(self) -> float:
        return self.stats().mean_mm

    @property
    def median_mm(self) -> float:
        return self.stats().median_mm

    @property
    def rms_mm(self) -> float:
        return self.stats().rms_mm

    @property
    def max_mm(self) -> float:
        return self.stats().max_mm

    def summary(self) -> dict[str, float]:
        return {"n": self.n, "mean_mm": self.mean_mm, "median_mm": self.median_mm,
                "rms_mm": self.rms_mm, "max_mm": self.max_mm}

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(),
                "pairs": [{"index": r.index, "name": r.name, "enabled": r.enabled, "error_mm": r.error_mm,
                           "vector_mm": list(r.vector_mm)} for r in self.rows]}


def landmark_errors(transform: sitk.Transform, landmark_set) -> LandmarkErrors:
    """Error |T(fixed) - moving| (mm) of every complete pair under a fixed→moving transform.

    For the target registration error after an intensity registration and the QA
    report. Disabled pairs are listed (with ``enabled=False``) but left out of the summary.
    """
    rows = []
    for i, pair in enumerate(landmark_set.pairs):
        if not pair.complete:
            continue
        mapped = np.array(transform.TransformPoint(tuple(float(v) for v in pair.fixed)))
        vector = mapped - np.array(pair.moving)
        rows.append(LandmarkErrorRow(i, pair.name, pair.enabled, float(np.linalg.norm(vector)),
                                     tuple(float(v) for v in vector)))
    return LandmarkErrors(tuple(rows))


__all__ = ["LandmarkErrorRow", "LandmarkErrors", "landmark_errors"]
