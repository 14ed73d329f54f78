"""What the stack window shows, computed without Qt: section k over k-1 (or over its
reference plane) in any overlay mode, the volume's three planes, and a manual correction
on one section carried to the sections after it.

The window only asks this model for uint8 arrays and status text; every number is here,
testable without a screen. Sections fill in as they are aligned (`set_section`), so the
volume grows live while `align_stack` runs.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.composite import OverlaySettings, composite


def to_display(arr: np.ndarray | None, shape: tuple[int, int], lo: float, hi: float) -> np.ndarray:
    """uint8 of `arr` windowed to [lo, hi]; zeros (a missing section) when arr is None."""
    if arr is None:
        return np.zeros(shape, np.uint8)
    scaled = (np.asarray(arr, np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


class StackViewModel:
    """Aligned sections on the output grid (float32 arrays, None until aligned or when missing).

    statuses / flags follow `StackResult.sections` once a result is set. `images` are the
    section images (their own frames) kept so a manual correction can re-resample them."""

    def __init__(self, n: int, grid: sitk.Image, references: list[np.ndarray] | None = None) -> None:
        self.n = n
        self.grid = grid
        w, h = grid.GetSize()
        self.shape = (h, w)
        self.aligned: list[np.ndarray | None] = [None] * n
        self.references = references
        self.statuses = ["waiting"] * n
        self.flags: list[list[str]] = [[] for _ in range(n)]
        self.metrics: list[float | None] = [None] * n
        self.names = [f"section {k}" for k in range(n)]
        self.transforms: list[sitk.Transform | None] = [None] * n
        self.images: list[sitk.Image | None] = [None] * n
        self._range: tuple[float, float] | None = None
        self.z_spacing = 1.0

    def grown(self, n: int) -> "StackViewModel":
        """The same model with room for `n` sections; what is already shown is kept."""
        if n <= self.n:
            return self
        bigger = StackViewModel(n, self.grid, self.references)
        for name in ("aligned", "statuses", "flags", "metrics", "names", "transforms", "images"):
            getattr(bigger, name)[:self.n] = getattr(self, name)
        bigger._range, bigger.z_spacing = self._range, self.z_spacing
        return bigger

    def display_thickness(self) -> float:
        """Drawn height of one section in the through-stack planes, in output pixels: the true
        section spacing, stretched when the stack is thin so it stays visible (at least
        half the section's height for the whole stack)."""
        true = self.z_spacing / min(self.grid.GetSpacing())
        return max(true, 0.5 * self.shape[0] / max(self.n, 1))

    @classmethod
    def from_result(cls, result, images: list[sitk.Image | None] | None = None) -> "StackViewModel":
        arr = sitk.GetArrayFromImage(result.volume)
        model = cls(len(result.sections), result.output_grid)
        for s in result.sections:
            model.names[s.index] = s.name
            if s.status != "missing":
                model.aligned[s.index] = arr[s.index]
        model.update_from(result, images)
        return model

    def update_from(self, result, images=None) -> None:
        for s in result.sections:
            self.names[s.index] = s.name
            self.statuses[s.index] = s.status
            self.flags[s.index] = list(s.flags)
            self.metrics[s.index] = s.metric
            self.transforms[s.index] = s.transform
        if images is not None:
            self.images = list(images)
        self._range = None

    def set_section(self, k: int, image: sitk.Image, name: str | None = None) -> None:
        """A section just aligned (from a progress event): the volume fills in."""
        self.aligned[k] = sitk.GetArrayFromImage(image)
        if name:
            self.names[k] = name
        if self.statuses[k] == "waiting":
            self.statuses[k] = "aligned"
        self._range = None

    # --- display -------------------------------------------------------------------
    def intensity_range(self) -> tuple[float, float]:
        """1st-99.5th percentile over the aligned sections (one window for the whole stack)."""
        if self._range is None:
            data = [a[::4, ::4].ravel() for a in self.aligned if a is not None]
            if not data:
                return 0.0, 1.0
            values = np.concatenate(data)
            lo, hi = np.percentile(values, (1.0, 99.5))
            self._range = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        return self._range

    def section(self, k: int) -> np.ndarray:
        lo, hi = self.intensity_range()
        return to_display(self.aligned[k], self.shape, lo, hi)

    def below(self, k: int) -> tuple[np.ndarray, str]:
        """What section k is compared with: its reference plane, else the nearest aligned
        section before it (after it for the first)."""
        if self.references is not None:
            ref = self.references[k]
            lo, hi = np.percentile(ref, (1.0, 99.5))
            return to_display(ref, self.shape, float(lo), float(hi)), "reference"
        for j in list(range(k - 1, -1, -1)) + list(range(k + 1, self.n)):
            if self.aligned[j] is not None:
                return self.section(j), self.names[j]
        return np.zeros(self.shape, np.uint8), "nothing"

    def overlay(self, k: int, settings: OverlaySettings, flicker_shows: str = "fixed") -> np.ndarray:
        """Section k (as 'moving') over what it is compared with (as 'fixed'), RGB uint8."""
        base, _ = self.below(k)
        spacing = self.grid.GetSpacing()
        return composite(base, self.section(k), settings, (spacing[0], spacing[1]), flicker_shows)

    def planes(self, k: int, row: int | None = None, col: int | None = None) -> dict[str, np.ndarray]:
        """The volume's three planes through section k, image row `row` and column `col`:
        'section' (rows x cols), 'rows' (sections x cols) and 'cols' (sections x rows)."""
        lo, hi = self.intensity_range()
        h, w = self.shape
        row = h // 2 if row is None else int(np.clip(row, 0, h - 1))
        col = w // 2 if col is None else int(np.clip(col, 0, w - 1))
        by_row = np.zeros((self.n, w), np.float32)
        by_col = np.zeros((self.n, h), np.float32)
        for z, a in enumerate(self.aligned):
            if a is not None:
                by_row[z] = a[row]
                by_col[z] = a[:, col]
        return {"section": self.section(k), "rows": to_display(by_row, by_row.shape, lo, hi),
                "cols": to_display(by_col, by_col.shape, lo, hi)}

    def status_text(self, k: int) -> str:
        metric = self.metrics[k]
        m = "" if metric is None or not math.isfinite(metric) else f", correlation {metric:.2f}"
        flags = ("; " + "; ".join(self.flags[k])) if self.flags[k] else ""
        return f"{k + 1}/{self.n} {self.names[k]}: {self.statuses[k]}{m}{flags}"

    # --- manual correction -------------------------------------------------------------
    def correct(self, k: int, dx: float, dy: float, angle_deg: float, propagate: bool = True) -> list[int]:
        """Move section k on the output grid by (dx, dy) mm and turn it by `angle_deg` about
        the grid centre; with `propagate`, every later section moves with it (they were
        aligned onto it). Returns the sections changed. Transforms stay output -> section:
        new T_j = T_j o C^-1, C being the correction as seen in the output frame."""
        w, h = self.grid.GetSize()
        centre = self.grid.TransformContinuousIndexToPhysicalPoint(((w - 1) / 2.0, (h - 1) / 2.0))
        correction = sitk.Euler2DTransform(centre, math.radians(angle_deg), (dx, dy))
        inverse = correction.GetInverse()
        changed = []
        for j in range(k, self.n if propagate else k + 1):
            tx, img = self.transforms[j], self.images[j]
            if tx is None or img is None:
                continue
            new = sitk.CompositeTransform([tx, inverse])  # inverse first, then the section's transform
            self.transforms[j] = new
            moved = sitk.Resample(img, self.grid, new, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
            self.aligned[j] = sitk.GetArrayFromImage(moved)
            changed.append(j)
        self._range = None
        return changed


__all__ = ["StackViewModel", "to_display"]
