"""What `align_stack` returns, and how it is assembled and written.

Every section transform maps the OUTPUT (aligned) frame to the section's own frame, the
fixed -> moving convention used everywhere in regviewer: the aligned section is
``section(transform(x))`` for each output point x. The volume stacks the aligned
sections along z on the output grid; a section that could not be read is a blank plane
so every other section keeps its z position.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

STATUSES = ("ok", "flagged", "failed", "missing")


@dataclass
class SectionResult:
    """One section's outcome. status: ok | flagged (aligned, but see `flags`) | failed
    (could not be registered; its transform is the best guess from its neighbours) |
    missing (could not be read; no transform)."""

    index: int
    name: str
    source: str
    status: str
    transform: sitk.Transform | None
    metric: float | None = None  # correlation with its best aligned neighbour (or its reference plane)
    flags: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reference_metric: float | None = None


@dataclass
class StackResult:
    """The aligned stack.

    volume: 3D float32 SimpleITK image, one z plane per section in cutting order, on the
    output grid (with a reference, the reference's frame; otherwise the anchor's).
    output_grid: the 2D grid every section was resampled onto. anchor: index of the anchor
    section (None with a reference). mode: "reference" or "neighbours". Large pyramidal
    sections are registered and shown at a reduced level; `write_full_resolution` writes
    them at full resolution, tile by tile.
    """

    sections: list[SectionResult]
    volume: sitk.Image
    output_grid: sitk.Image
    anchor: int | None
    mode: str
    slides: list = field(default_factory=list, repr=False)
    details: dict = field(default_factory=dict)
    images: list = field(default_factory=list, repr=False)  # each section as registered (its own frame), or None
    references: list | None = field(default=None, repr=False)  # reference planes on the output grid

    @property
    def transforms(self) -> list[sitk.Transform | None]:
        return [s.transform for s in self.sections]

    @property
    def n_ok(self) -> int:
        return sum(s.status in ("ok", "flagged") for s in self.sections)

    def table(self) -> str:
        """The per-section CSV text: section, status, metric, flags, seconds."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "section", "status", "metric", "flags", "seconds"])
        for s in self.sections:
            metric = "" if s.metric is None or not math.isfinite(s.metric) else f"{s.metric:.4f}"
            w.writerow([s.index, s.name, s.status, metric, "; ".join(s.flags), f"{s.seconds:.2f}"])
        return buf.getvalue()

    def write(self, out_dir: str | Path, volume_name: str | None = None) -> list[Path]:
        """Write the volume, transforms/<section>.tfm and stack.csv atomically; return the paths.

        The volume is stack.nii.gz, or stack.ome.tif (tiled, full resolution, written tile by
        tile) when the sections are large pyramidal slides."""
        from regviewer.core.atomic import atomic_write_text
        from regviewer.core.imaging.io import write_image, write_transform

        out = Path(out_dir)
        written = []
        for s in self.sections:
            if s.transform is not None:
                path = out / "transforms" / f"{s.name}.tfm"
                write_transform(s.transform, path)
                written.append(path)
        if self.slides and any(x is not None for x in self.slides):
            from regviewer.core.stack.slide import write_aligned_ome_tiff

            path = out / (volume_name or "stack.ome.tif")
            write_aligned_ome_tiff(self, path)
        else:
            path = out / (volume_name or "stack.nii.gz")
            write_image(self.volume, path)
        written.append(path)
        table = out / "stack.csv"
        atomic_write_text(table, self.table())
        written.append(table)
        return written


def affine_from(matrix: np.ndarray, offset: np.ndarray, center=None) -> sitk.AffineTransform:
    """2D AffineTransform x -> matrix x + offset, centred at `center` (only the parametrisation)."""
    from regviewer.core.transforms.ops import from_matrix

    return from_matrix(matrix, offset, center)


def volume_of(images: list[sitk.Image | None], grid: sitk.Image, z_spacing: float, z_origin=0.0,
              direction3: tuple | None = None) -> sitk.Image:
    """Stack aligned 2D images (None = blank) into a 3D float32 volume on `grid`; `z_origin`
    is the first plane's z, or a whole 3D origin."""
    w, h = grid.GetSize()
    arr = np.zeros((len(images), h, w), np.float32)
    for z, img in enumerate(images):
        if img is not None:
            arr[z] = sitk.GetArrayViewFromImage(img)
    vol = sitk.GetImageFromArray(arr)
    sx, sy = grid.GetSpacing()
    vol.SetSpacing((sx, sy, float(z_spacing)))
    if isinstance(z_origin, (tuple, list)):  # a full 3D origin (planes cut from a reference volume)
        vol.SetOrigin(tuple(float(v) for v in z_origin))
    else:
        ox, oy = grid.GetOrigin()
        vol.SetOrigin((ox, oy, float(z_origin)))
    if direction3 is not None:
        vol.SetDirection(direction3)
    return vol


def resample_section(image: sitk.Image, grid: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """`image` seen on the output `grid` through `transform` (output -> section), float32, 0 outside."""
    return sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


__all__ = ["SectionResult", "StackResult", "STATUSES", "volume_of", "resample_section", "affine_from"]
