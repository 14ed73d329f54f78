"""The reference of a stack (blockface photographs or planes cut from a 3D volume) and the start
of each section's registration to it.

A section in pixel units against a reference in mm needs the scale between them from the start;
`scaled_start` guesses it from the spread of the tissue and lets the metric confirm the guess.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from regviewer.core.errors import IncompatibleImagesError
from regviewer.core.stack import pairwise
from regviewer.core.stack.sections import Section, read_sections


def reference_planes(reference, n: int, planes, spacing, max_side: int) -> tuple[list[Section], float, float, tuple]:
    """Reference sections (one per stack section), the z spacing and origin of the volume, its direction."""
    if isinstance(reference, (list, tuple)) or not isinstance(reference, sitk.Image) and _is_dir(reference):
        refs = read_sections(reference, spacing, max_side)
        if len(refs) != n:
            raise IncompatibleImagesError(f"the reference '{reference}' has {len(refs)} images but the stack has {n} "
                                          "sections; give one reference image per section, in the same order")
        return refs, (float(spacing[2]) if spacing is not None and len(spacing) > 2 else 1.0), 0.0, None
    if isinstance(reference, sitk.Image):
        volume = reference
    else:
        from regviewer.core.imaging.io import read_image

        volume = read_image(reference).scalar()
    if volume.GetDimension() != 3:
        raise IncompatibleImagesError(f"the reference must be a folder of 2D images or a 3D volume; "
                                      f"'{reference}' is {volume.GetDimension()}D")
    nz = volume.GetSize()[2]
    if planes is None:
        planes = list(range(nz)) if nz == n else [int(round(z)) for z in np.linspace(0, nz - 1, n)]
    planes = [int(p) for p in planes]
    if len(planes) != n or any(not 0 <= p < nz for p in planes):
        raise IncompatibleImagesError(f"reference_planes must give {n} z indices between 0 and {nz - 1}")
    sx, sy, sz = volume.GetSpacing()
    refs = []
    for k, z in enumerate(planes):
        plane = sitk.Cast(volume[:, :, z], sitk.sitkFloat32)
        plane.SetOrigin(volume.GetOrigin()[:2])
        plane.SetSpacing((sx, sy))
        plane.SetDirection((1.0, 0.0, 0.0, 1.0))
        refs.append(Section(f"reference_z{z}", f"reference[z={z}]", plane))
    step = (planes[-1] - planes[0]) / (n - 1) if n > 1 else 1.0
    # The stacked volume lies where the reference's planes do (same origin and direction),
    # so it overlays the reference in the window.
    origin3 = volume.TransformIndexToPhysicalPoint((0, 0, planes[0]))
    return refs, sz * step if step else sz, origin3, volume.GetDirection()


def _is_dir(path) -> bool:
    from pathlib import Path

    try:
        return Path(path).is_dir()
    except TypeError:
        return False


def scaled_start(fixed: sitk.Image, moving: sitk.Image, metric: str) -> sitk.Transform:
    """Rotation search with the scale guessed from the spread of the tissue (intensity-
    weighted radius of gyration) in both images: a section in pixel units against a
    reference in mm needs that scale from the start. Within 15 % it is taken as 1; beyond,
    the guess competes with scale 1 (a noisy background on the section, absent from a clean
    reference plane, also widens the spread) and the start the metric prefers is kept."""
    ratio = _spread(moving) / _spread(fixed)
    unit = pairwise.rotation_search(fixed, moving, metric)
    if abs(np.log(ratio)) <= np.log(1.15):
        return unit
    scaled = pairwise.rotation_search(fixed, moving, metric, scale=ratio)
    return min((unit, scaled), key=lambda tx: pairwise.start_cost(fixed, moving, metric, tx))


def _spread(image: sitk.Image) -> float:
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    w = pairwise.foreground_weights(arr)
    ys, xs = np.indices(arr.shape)
    sx, sy = image.GetSpacing()
    x, y = xs * sx, ys * sy
    mx, my = (x * w).sum() / w.sum(), (y * w).sum() / w.sum()
    return float(np.sqrt((((x - mx) ** 2 + (y - my) ** 2) * w).sum() / w.sum())) or 1.0


__all__ = ["reference_planes", "scaled_start"]
