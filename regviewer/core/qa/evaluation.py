"""One call that evaluates a registration: "is this result trustworthy?" in numbers.

`evaluate_registration` gathers every measure of `evaluate.py` (and landmark TRE from
`landmarks.py`) for one fixed image, one moving image and one transform mapping FIXED
points to MOVING points (the ITK resampling direction, whatever tool produced it: see
`transform_io.read_transform`). The result, an `Evaluation`, keeps the maps for
display (Jacobian, displacement) and gives `summary()` (JSON-ready numbers, what the
CLI prints and writes as qa.json) and `tables` (rows for the report and the GUI).
The GUI's QA panel and `regviewer evaluate` both call exactly this function.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from regviewer.core.qa import labels
from regviewer.core.qa import measures as ev
from regviewer.core.qa.jacobian_colours import jacobian_log2_range
from regviewer.core.qa.tre import summarise
from regviewer.core.errors import IncompatibleImagesError
from regviewer.core.imaging.image import Volume, as_volume

# Maps (Jacobian, displacement) are computed on at most this many voxels: a 1 mm brain
# (9M voxels) is evaluated on a grid about 1.3x coarser, which keeps memory < ~250 MB.
MAX_MAP_VOXELS = 4_000_000

# Plain-language thresholds for the flags (not pass/fail rules; reasons to look closer).
EXTREME_JACOBIAN = (0.2, 5.0)
MIN_OVERLAP_MASKED = 95.0  # % of the mask that must map inside the moving image
MIN_OVERLAP_UNMASKED = 50.0  # % of the whole fixed image


@dataclass
class Evaluation:
    """Everything measured about one registration (fixed → moving transform)."""

    fixed: Volume
    moving: Volume
    transform: sitk.Transform
    jacobian: sitk.Image  # det of the transform's Jacobian on the (analysis) fixed grid
    displacement: sitk.Image  # |T(x) - x| in mm on the same grid
    jacobian_stats: dict
    displacement_stats: dict
    similarity_before: dict  # identity transform
    similarity_after: dict  # under `transform`
    mask: sitk.Image | None = None
    dice: dict[int, float] | None = None
    hausdorff95: dict[int, float] | None = None
    label_volumes_fixed: dict[int, float] | None = None
    landmark_rows: list[dict] | None = None  # name, fixed, moving, mapped, error_mm
    landmark_summary: dict | None = None
    inverse_consistency: dict | None = None
    history: list[dict] | None = None
    params: dict | None = None
    transform_path: str | None = None
    elapsed_s: float = 0.0
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    # --- the Jacobian map as the report and the GUI show it ---------------------------------
    def jacobian_values(self) -> np.ndarray:
        """Jacobian determinants inside the mask (all voxels without one), 1D."""
        values = sitk.GetArrayViewFromImage(self.jacobian)
        inside = ev.mask_on_grid(self.mask, self.jacobian)
        return np.asarray(values[inside] if inside is not None else values.ravel())

    def jacobian_colour_range(self) -> float:
        """Half-width (log2) of the Jacobian colour scale fitted to this transform."""
        return jacobian_log2_range(self.jacobian_values())

    # --- plain-language warnings -------------------------------------------------------
    @property
    def flags(self) -> list[str]:
        """Sentences pointing at reasons to distrust the result (empty: nothing found)."""
        out = []
        js = self.jacobian_stats
        where = "inside the mask" if self.mask is not None else "in the fixed image"
        if js.get("folding_voxels"):
            out.append(
                f"The transform folds (Jacobian determinant <= 0) in {js['folding_voxels']} voxels "
                f"({js['folding_percent']:.3f} %) {where}: it is not invertible there."
            )
        lo, hi = EXTREME_JACOBIAN
        if js.get("min") is not None and (js["min"] < lo and js["min"] > 0 or js["max"] > hi):
            out.append(
                f"Local volume changes are extreme {where} (Jacobian {js['min']:.2f} to {js['max']:.2f}; "
                f"outside {lo}-{hi} is rare in anatomy)."
            )
        before, after = self.similarity_before["mutual_information"], self.similarity_after["mutual_information"]
        if after < before:
            out.append(f"Mutual information is LOWER after registration ({after:.3f}) than before ({before:.3f}).")
        # Inside a mask (the anatomy) every voxel should land in the moving image; without
        # one, background falling outside is normal, so only a gross loss is worth a flag.
        least = MIN_OVERLAP_MASKED if self.mask is not None else MIN_OVERLAP_UNMASKED
        if self.similarity_after.get("overlap_percent", 100.0) < least:
            out.append(
                f"Only {self.similarity_after['overlap_percent']:.0f} % of the "
                f"{'mask' if self.mask is not None else 'fixed image'} maps inside the moving image."
            )
        if self.dice:
            low = [f"{k} ({v:.2f})" for k, v in self.dice.items() if v < 0.5]
            if low:
                out.append("Labels with Dice below 0.5: " + ", ".join(low) + ".")
        if self.landmark_summary and self.landmark_summary.get("max_mm") is not None:
            if self.landmark_summary["max_mm"] > 3 * max(self.fixed.spacing):
                out.append(
                    f"The largest landmark error is {self.landmark_summary['max_mm']:.2f} mm, more than 3 voxels."
                )
        if self.inverse_consistency and (self.inverse_consistency.get("p95") or 0) > max(self.fixed.spacing):
            out.append(
                f"Forward and backward transforms disagree by more than a voxel (p95 {self.inverse_consistency['p95']:.2f} mm)."
            )
        return out

    # --- outputs -------------------------------------------------------------------------
    def summary(self) -> dict:
        """JSON-ready numbers (no inf/NaN; label keys as strings)."""
        s: dict[str, Any] = {
            "fixed": self.fixed.path or self.fixed.name,
            "moving": self.moving.path or self.moving.name,
            "transform": self.transform_path or self.transform.GetName(),
            "direction": "fixed -> moving (ITK resampling direction, LPS mm)",
            "jacobian": self.jacobian_stats,
            "displacement_mm": self.displacement_stats,
            "similarity_before": self.similarity_before,
            "similarity_after": self.similarity_after,
            "masked": self.mask is not None,
        }
        if self.dice is not None:
            s["dice"] = self.dice
            s["dice_mean"] = float(np.mean(list(self.dice.values()))) if self.dice else None
            s["hausdorff95_mm"] = self.hausdorff95
        if self.landmark_summary is not None:
            s["landmarks"] = {
                **self.landmark_summary,
                "pairs": [{"name": r["name"], "error_mm": r["error_mm"], "enabled": r.get("enabled", True)}
                          for r in self.landmark_rows or []],
            }
        if self.inverse_consistency is not None:
            s["inverse_consistency_mm"] = self.inverse_consistency
        if self.history:
            s["final_metric"] = self.history[-1]["metric"]
            s["iterations"] = len(self.history)
        s["flags"] = self.flags
        s["elapsed_s"] = self.elapsed_s
        return ev.json_ready(s)

    @property
    def tables(self) -> dict[str, tuple[list[str], list[list]]]:
        """Named tables as (headers, rows) for the report and the GUI panel."""
        t: dict[str, tuple[list[str], list[list]]] = {}
        js, ds = self.jacobian_stats, self.displacement_stats
        sb, sa = self.similarity_before, self.similarity_after
        t["Deformation"] = (
            ["measure", "value"],
            [
                ["Jacobian determinant min", js["min"]],
                ["Jacobian determinant max", js["max"]],
                ["Jacobian determinant mean", js["mean"]],
                ["Folding voxels (det <= 0)", js["folding_voxels"]],
                ["Folding %", js["folding_percent"]],
                [MOVED_MEAN, ds["mean"]],
                [MOVED_P95, ds["p95"]],
                [MOVED_MAX, ds["max"]],
            ],
        )
        t["Similarity"] = (
            ["measure", "before", "after"],
            [
                ["Mutual information (nats)", sb["mutual_information"], sa["mutual_information"]],
                ["Correlation (Pearson r)", sb["correlation"], sa["correlation"]],
                [OVERLAP, sb["overlap_percent"], sa["overlap_percent"]],
            ],
        )
        if self.dice is not None:
            vols = self.label_volumes_fixed or {}
            rows = [
                [label, self.dice[label], (self.hausdorff95 or {}).get(label), vols.get(label)]
                for label in sorted(self.dice)
            ]
            t["Labels"] = (["label", "Dice", "HD95 (mm)", "fixed volume (ml)"], rows)
        if self.landmark_rows is not None:
            rows = [
                [r["name"], _fmt_point(r.get("fixed")), _fmt_point(r.get("moving")), r.get("error_mm")]
                for r in self.landmark_rows
            ]
            t["Landmarks (TRE)"] = (["landmark", "fixed (mm)", "moving (mm)", "error (mm)"], rows)
        if self.inverse_consistency is not None:
            ic = self.inverse_consistency
            t["Inverse consistency"] = (["measure", "mm"], [["mean", ic["mean"]], ["p95", ic["p95"]], ["max", ic["max"]]])
        return t


MOVED_MEAN = "Points moved by the transform, mean (mm)"
MOVED_P95 = "Points moved by the transform, 95th percentile (mm)"
MOVED_MAX = "Points moved by the transform, max (mm)"
OVERLAP = "Fixed image covered by the moving image (%)"
_MOVED_HELP = ("|T(x) - x|: how far the transform carries each fixed-image point. This is the size of the "
               "correction (a large value is normal when the images started far apart), not an error.")
MEASURE_HELP: dict[str, str] = {
    MOVED_MEAN: _MOVED_HELP, MOVED_P95: _MOVED_HELP, MOVED_MAX: _MOVED_HELP,
    OVERLAP: "Share of the fixed image (inside the mask, if any) that lands inside the moving image: the "
             "region the similarity numbers are computed on. Below about 50 % they say little.",
    "Mutual information (nats)": "How well one image's intensities predict the other's; higher is better, "
                                 "works across modalities.",
    "Correlation (Pearson r)": "Linear agreement of intensities, -1 to 1; meaningful for the same modality.",
    "Folding voxels (det <= 0)": "Voxels where the transform folds space over itself: should be 0.",
}


def _fmt_point(p) -> str:
    if p is None:
        return ""
    return "(" + ", ".join(f"{float(v):.1f}" for v in p) + ")"


# --- the call -------------------------------------------------------------------------------
def evaluate_registration(
    fixed,
    moving,
    transform,
    labels_fixed=None,
    labels_moving=None,
    landmarks=None,
    mask=None,
    history=None,
    params=None,
    backward=None,
    max_map_voxels: int = MAX_MAP_VOXELS,
) -> Evaluation:
    """Measure a registration. `transform` maps FIXED → MOVING points (an sitk transform
    or any file `read_transform` knows). Images, labels and the mask may be paths,
    Volumes or SimpleITK images; `landmarks` a LandmarkSet or a landmark file;
    `history` the engine's HistoryEntry list; `params` a Pipeline or dict;
    `backward` an optional moving → fixed transform for inverse consistency.

    The mask (on the fixed image) restricts the Jacobian, displacement and similarity
    numbers; Dice/HD95 use the label maps themselves (moving labels warped onto the
    fixed grid with nearest neighbour).
    """
    start = time.perf_counter()
    fixed_v, moving_v = as_volume(fixed), as_volume(moving)
    if fixed_v.dimension != moving_v.dimension:
        raise IncompatibleImagesError(
            f"The fixed image '{fixed_v.name}' is {fixed_v.dimension}D but the moving image "
            f"'{moving_v.name}' is {moving_v.dimension}D"
        )
    transform_path = None
    if not isinstance(transform, sitk.Transform):
        from regviewer.core.transforms.io import read_transform

        transform_path = str(transform)
        transform = read_transform(transform)
    if transform.GetDimension() != fixed_v.dimension:
        raise IncompatibleImagesError(
            f"The transform is {transform.GetDimension()}D but the images are {fixed_v.dimension}D"
        )
    mask_img = as_volume(mask).sitk if mask is not None else None
    grid = analysis_grid(fixed_v.sitk, max_map_voxels)
    jac, disp = ev.deformation_maps(transform, grid)
    evaluation = Evaluation(
        fixed=fixed_v,
        moving=moving_v,
        transform=transform,
        jacobian=jac,
        displacement=disp,
        jacobian_stats=ev.jacobian_stats(jac, mask_img),
        displacement_stats=ev.displacement_stats(disp, mask_img),
        similarity_before=ev.similarity(fixed_v.sitk, moving_v.sitk, None, mask_img),
        similarity_after=ev.similarity(fixed_v.sitk, moving_v.sitk, transform, mask_img),
        mask=mask_img,
        transform_path=transform_path,
    )
    if (labels_fixed is None) != (labels_moving is None):
        raise IncompatibleImagesError("Dice needs both label maps: give the fixed and the moving labels")
    if labels_fixed is not None:
        lf = as_volume(labels_fixed).sitk
        lm = as_volume(labels_moving).sitk
        warped = labels.warp_labels(lm, transform, lf)
        evaluation.dice = labels.dice_per_label(lf, warped)
        evaluation.hausdorff95 = labels.hausdorff95_per_label(lf, warped)
        evaluation.label_volumes_fixed = labels.label_volumes_ml(lf)
    if landmarks is not None:
        evaluation.landmark_rows, evaluation.landmark_summary = landmark_table(transform, landmarks)
    if backward is not None:
        if not isinstance(backward, sitk.Transform):
            from regviewer.core.transforms.io import read_transform

            backward = read_transform(backward)
        evaluation.inverse_consistency = ev.inverse_consistency_error(transform, backward, grid, mask_img)
    evaluation.history = _history_rows(history)
    evaluation.params = _params_dict(params)
    evaluation.elapsed_s = time.perf_counter() - start
    return evaluation


def analysis_grid(reference: sitk.Image, max_voxels: int = MAX_MAP_VOXELS) -> sitk.Image:
    """The fixed grid, or one covering the same region with fewer (larger) voxels."""
    n = int(np.prod(reference.GetSize()))
    if n <= max_voxels:
        return reference
    factor = (n / max_voxels) ** (1.0 / reference.GetDimension())
    size = [max(1, int(math.floor(s / factor))) for s in reference.GetSize()]
    spacing = [sp * s / ns for sp, s, ns in zip(reference.GetSpacing(), reference.GetSize(), size)]
    direction = np.array(reference.GetDirection()).reshape(reference.GetDimension(), -1)
    # keep the physical extent (voxel edges) the same: shift the first centre
    shift = direction @ ((np.array(spacing) - np.array(reference.GetSpacing())) / 2.0)
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetDirection(reference.GetDirection())
    grid.SetOrigin(tuple(np.array(reference.GetOrigin()) + shift))
    return grid


def landmark_table(transform: sitk.Transform, landmarks) -> tuple[list[dict], dict]:
    """Per-pair TRE rows and a summary over the ENABLED pairs (count, mean, median, max,
    rms in mm). Error = |T(fixed) - moving|, T fixed -> moving. `landmarks` is a
    LandmarkSet (or anything with `.pairs` of name/fixed/moving/enabled) or a file.
    """
    from regviewer.core.landmarks import model as lm_module  # lazy: landmarks import qa's summaries

    landmark_set = lm_module.load_landmarks(landmarks) if isinstance(landmarks, (str, Path)) else landmarks
    pairs = list(getattr(landmark_set, "pairs", []))
    rows: list[dict] = []
    for pair in pairs:
        if pair.fixed is None or pair.moving is None:
            continue
        mapped = np.asarray(transform.TransformPoint(tuple(float(v) for v in pair.fixed)))
        err = float(np.linalg.norm(mapped - np.asarray(pair.moving, dtype=float)))
        enabled = bool(getattr(pair, "enabled", True))
        rows.append({"name": pair.name if enabled else f"{pair.name} (disabled)", "fixed": tuple(pair.fixed),
                     "moving": tuple(pair.moving), "mapped": tuple(float(v) for v in mapped),
                     "error_mm": float(err), "enabled": enabled})
    s = summarise([r["error_mm"] for r in rows if r["enabled"]]).as_dict(none_for_nan=True)
    summary = {"count": s["n"], **{k: s[k] for k in ("mean_mm", "median_mm", "p95_mm", "max_mm", "rms_mm")}}
    return rows, summary


def _history_rows(history) -> list[dict] | None:
    if not history:
        return None
    rows = []
    for h in history:
        if isinstance(h, dict):
            rows.append({k: h.get(k) for k in ("stage", "stage_name", "level", "iteration", "metric", "elapsed")})
        else:
            rows.append({k: getattr(h, k, None) for k in ("stage", "stage_name", "level", "iteration", "metric", "elapsed")})
    return rows


def _params_dict(params) -> dict | None:
    if params is None:
        return None
    if isinstance(params, dict):
        return params
    if hasattr(params, "to_dict"):
        return params.to_dict()
    from dataclasses import asdict, is_dataclass

    return asdict(params) if is_dataclass(params) else {"value": repr(params)}


def software_versions() -> dict[str, str]:
    """Versions of regviewer and the libraries that computed the numbers."""
    import scipy

    from regviewer import __version__ as regviewer_version

    return {
        "regviewer": str(regviewer_version),
        "SimpleITK": sitk.Version_VersionString() if hasattr(sitk, "Version_VersionString") else sitk.Version().VersionString(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


__all__ = ["Evaluation", "evaluate_registration", "analysis_grid", "landmark_table", "software_versions"]
