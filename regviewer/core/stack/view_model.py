"""What the stack window shows, computed without Qt: section k over k-1 (or over its
reference plane) in any overlay mode, the volume's three planes (flat and placed in 3D),
and a correction of one section (a drag, a nudge, or a fit to landmark pairs picked on it
and its neighbour) carried to the sections after it, with undo.

The window only asks this model for uint8 arrays and status text; every number is here,
testable without a screen. Sections fill in as they are aligned (`set_section`), so the
volume grows live while `align_stack` runs. A correction changes transforms at once and
marks the sections to resample; `resample_job` does the resampling on any thread.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from regviewer.core.imaging.composite import OverlaySettings, composite
from regviewer.core.imaging.slicing import PlaneGeometry
from regviewer.core.landmarks.model import LandmarkPair, LandmarkSet
from regviewer.core.stack import section_corrections as sc


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
        self._reset_corrections()

    def _reset_corrections(self) -> None:
        """No hand corrections: each section as the alignment left it."""
        self.corrections = [np.eye(3) for _ in range(self.n)]  # output-frame 3x3, see section_corrections
        self._base: list[sitk.Transform | None] = [None] * self.n  # transform before any correction
        self.versions = [0] * self.n
        self.dirty: set[int] = set()  # corrected sections whose shown array is older than their transform
        self._history: list[list[np.ndarray]] = []
        self._job = 0
        self._landmarks: dict[int, LandmarkSet] = {}

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
        self._reset_corrections()
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
        j = self.neighbour(k)
        return (self.section(j), self.names[j]) if j is not None else (np.zeros(self.shape, np.uint8), "nothing")

    def neighbour(self, k: int) -> int | None:
        """The aligned section k is compared with when there is no reference: the nearest one
        before it, else (for the first) the nearest after it."""
        for j in list(range(k - 1, -1, -1)) + list(range(k + 1, self.n)):
            if self.aligned[j] is not None:
                return j
        return None

    def apply_landmark_correction(self, k: int, step: np.ndarray, deferred: bool = False) -> list[int]:
        """A landmark fit between section k and what it is compared with becomes k's correction.
        The later sections follow only when that is an earlier section: when it is a later one
        (section k is the first), moving them too would leave k where it was relative to them."""
        j = None if self.references is not None else self.neighbour(k)
        return self.apply_correction(k, step, propagate=j is None or j < k, deferred=deferred)

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
    def correct(self, k: int, dx: float, dy: float, angle_deg: float, propagate: bool = True,
                undoable: bool = True, deferred: bool = False) -> list[int]:
        """Move section k on the output grid by (dx, dy) mm and turn it by `angle_deg` about
        the grid centre; with `propagate`, every later section moves with it (they were
        aligned onto it). Returns the sections changed. Transforms stay output -> section
        (see `section_corrections`). `deferred`: only mark them for `resample_job` (the
        window resamples off the GUI thread); otherwise they are resampled now."""
        w, h = self.grid.GetSize()
        centre = self.grid.TransformContinuousIndexToPhysicalPoint(((w - 1) / 2.0, (h - 1) / 2.0))
        return self.apply_correction(k, sc.rigid_matrix(centre, angle_deg, dx, dy), propagate, undoable, deferred)

    def drag_step(self, kind: str, last: Sequence[float], now: Sequence[float]) -> tuple[float, float, float]:
        """(dx mm, dy mm, angle degrees) of one mouse step between two pixel positions:
        'translate' follows the mouse, 'rotate' turns about the grid centre."""
        sx, sy = self.grid.GetSpacing()
        if kind == "translate":
            return (now[0] - last[0]) * sx, (now[1] - last[1]) * sy, 0.0
        h, w = self.shape
        c = ((w - 1) / 2.0, (h - 1) / 2.0)
        a0 = math.degrees(math.atan2(last[1] - c[1], last[0] - c[0]))
        a1 = math.degrees(math.atan2(now[1] - c[1], now[0] - c[0]))
        return 0.0, 0.0, float((a1 - a0 + 180.0) % 360.0 - 180.0)

    def apply_correction(self, k: int, step: np.ndarray, propagate: bool = True, undoable: bool = True,
                         deferred: bool = False) -> list[int]:
        """Correct section k (and with `propagate` every later one) by the 3x3 matrix `step`."""
        if undoable:
            self.checkpoint()
        changed = [j for j in range(k, self.n if propagate else k + 1)
                   if self.transforms[j] is not None and self.images[j] is not None]
        for j in changed:
            self._set_correction(j, step @ self.corrections[j])
        if not deferred:
            self.resample_now()
        return changed

    def carry_forward(self, k: int, before: np.ndarray, deferred: bool = False) -> list[int]:
        """Give every section after k the change section k had since its correction was
        `before` (the end of a drag that moved section k alone); part of the same undo step."""
        if k + 1 >= self.n:
            return []
        step = self.corrections[k] @ np.linalg.inv(before)
        return self.apply_correction(k + 1, step, propagate=True, undoable=False, deferred=deferred)

    def checkpoint(self) -> None:
        """Remember the corrections as they are, for one `undo` step."""
        self._history.append([c.copy() for c in self.corrections])
        del self._history[:-50]

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def undo(self, deferred: bool = False) -> list[int]:
        """Put every correction back as it was before the last undoable one; returns the
        sections that change."""
        if not self._history:
            return []
        old = self._history.pop()
        changed = [j for j in range(self.n) if not np.array_equal(old[j], self.corrections[j])]
        for j in changed:
            self._set_correction(j, old[j])
        if not deferred:
            self.resample_now()
        return changed

    def _set_correction(self, j: int, matrix: np.ndarray) -> None:
        if self._base[j] is None:
            self._base[j] = self.transforms[j]
        self.corrections[j] = matrix
        self.transforms[j] = sc.corrected(self._base[j], matrix)
        self.versions[j] += 1
        self.dirty.add(j)
        self._job += 1  # a job already running works for an older correction: it stops

    # --- resampling (the slow part; the window runs it off the GUI thread) ----------------
    def resample_job(self, first: int | None = None):
        """A function resampling every corrected section not yet shown (`first` before the
        rest), to run on any thread; it stops early once a newer job is asked for. Hand
        its result to `accept`."""
        self._job += 1
        job = self._job
        order = sorted(self.dirty, key=lambda j: (j != first, j))
        jobs = [(j, self.versions[j], self.images[j], self.transforms[j]) for j in order]
        grid = self.grid
        return lambda: sc.resample_sections(jobs, grid, stop=lambda: self._job != job)

    def accept(self, result: dict[int, tuple[int, np.ndarray]] | None) -> list[int]:
        """Show resampled sections whose correction has not changed since; returns them."""
        shown = []
        for j, (version, arr) in (result or {}).items():
            if self.versions[j] == version:
                self.aligned[j] = arr
                self.dirty.discard(j)
                shown.append(j)
        if shown:
            self._range = None
        return shown

    def resample_now(self) -> list[int]:
        return self.accept(self.resample_job()())

    def to_mm(self, col: float, row: float) -> tuple[float, float]:
        """Output-grid pixel (col, row) -> output mm (where a click on a section view lands)."""
        return tuple(self.grid.TransformContinuousIndexToPhysicalPoint((float(col), float(row))))

    def to_pixel(self, point: Sequence[float]) -> tuple[float, float]:
        return tuple(self.grid.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point)))

    # --- landmarks on one section ----------------------------------------------------------
    def landmarks(self, k: int) -> list[tuple[str, tuple | None, tuple | None]]:
        """Section k's pairs as (name, point on the neighbour, point on section k as shown), output mm."""
        out = []
        below = self._neighbour_correction(k)
        for p in self._landmarks.get(k, LandmarkSet(2)).pairs:
            shown = None if p.moving is None else tuple(sc.map_points(self.corrections[k], p.moving)[0])
            on_neighbour = None if p.fixed is None else tuple(sc.map_points(below, p.fixed)[0])
            out.append((p.name, on_neighbour, shown))
        return out

    def _neighbour_correction(self, k: int) -> np.ndarray:
        """The correction of what section k is compared with: identity for a reference plane."""
        j = None if self.references is not None else self.neighbour(k)
        return self.corrections[j] if j is not None else np.eye(3)

    def place_landmark(self, k: int, role: str, point: Sequence[float], index: int | None = None) -> int:
        """Put a 'fixed' (neighbour) or 'moving' (section k as shown) point, output mm: on pair
        `index`, else on the first pair missing it, else on a new pair. Returns the pair."""
        marks = self._landmarks.setdefault(k, LandmarkSet(2))
        stored = tuple(float(v) for v in point)
        # Both points are kept as on their uncorrected sections, so each stays on its anatomy when
        # a correction (of this section, or of an earlier one that the later ones follow) moves it.
        frame = self.corrections[k] if role == "moving" else self._neighbour_correction(k)
        stored = tuple(sc.map_points(np.linalg.inv(frame), stored)[0])
        if index is None:
            index = next((i for i, p in enumerate(marks.pairs) if p.point(role) is None), None)
        if index is None:
            return marks.add_pair(**{role: stored})
        marks.set_point(index, role, stored)
        return index

    def clear_landmarks(self, k: int) -> None:
        self._landmarks.pop(k, None)

    def landmark_pairs(self, k: int) -> list[LandmarkPair]:
        """Section k's pairs with the moving point where section k shows it now (what a fit uses)."""
        return [LandmarkPair(name, fixed, moving) for name, fixed, moving in self.landmarks(k)]

    # --- 3D ------------------------------------------------------------------------------
    def volume_planes(self, k: int) -> dict[str, tuple[PlaneGeometry, float, np.ndarray]]:
        """The three planes of `planes(k)` placed in 3D: {key: (plane, depth, RGB uint8)}.

        The frame is the one a 3D view looks at from the front, superior up: a section's
        columns run along x, its rows downwards (-z), and the sections one behind the other
        along +y, as thick as drawn in 2D (`display_thickness`). Output mm in the plane."""
        h, w = self.shape
        sx, sy = self.grid.GetSpacing()
        ox, oy = self.grid.GetOrigin()
        dz = self.display_thickness() * min(sx, sy)
        origin = (ox, 0.0, -oy)
        planes = self.planes(k)
        depth_range, n = (0.0, dz * max(self.n - 1, 0)), self.n

        def geometry(name, u, v, normal, spacing, shape):
            return PlaneGeometry(name, origin, u, v, normal, spacing, shape, depth_range, dz)

        rgb = {key: np.repeat(a[..., None], 3, axis=2) for key, a in planes.items()}
        return {
            "section": (geometry("section", (1, 0, 0), (0, 0, -1), (0, 1, 0), (sx, sy), (h, w)), k * dz, rgb["section"]),
            "rows": (geometry("rows", (1, 0, 0), (0, 1, 0), (0, 0, -1), (sx, dz), (n, w)), (h // 2) * sy, rgb["rows"]),
            "cols": (geometry("cols", (0, 0, -1), (0, 1, 0), (1, 0, 0), (sy, dz), (n, h)), (w // 2) * sx, rgb["cols"]),
        }

    def volume_corners(self) -> np.ndarray:
        """The 8 corners of the stacked volume in the frame of `volume_planes`."""
        h, w = self.shape
        sx, sy = self.grid.GetSpacing()
        ox, oy = self.grid.GetOrigin()
        dz = self.display_thickness() * min(sx, sy)
        xs, ys, zs = (ox, ox + (w - 1) * sx), (0.0, dz * max(self.n - 1, 0)), (-oy, -oy - (h - 1) * sy)
        return np.array([(x, y, z) for x in xs for y in ys for z in zs])


__all__ = ["StackViewModel", "to_display"]
