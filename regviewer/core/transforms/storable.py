"""Make any transform a person can build writable by ITK's transform files.

ITK's text (.tfm/.txt) and HDF5 writers refuse a composite inside a composite
("Composite Transform can only be 1st transform in a file"), yet nesting is what
normal work produces: two applied runs, a landmark fit on top of a run, a manual
move on a file's transform. `storable` rewrites such a transform into the same
fixed→moving mapping as ONE flat composite (or a single transform), merging each
run of consecutive linear pieces into one AffineTransform. Deformable pieces
(B-splines, displacement fields) are kept as they are, so nothing is resampled.
"""

from __future__ import annotations

import SimpleITK as sitk

from regviewer.core.transforms.ops import to_affine


def elementary_transforms(transform: sitk.Transform) -> list[sitk.Transform]:
    """The non-composite pieces of `transform`, in ITK's stored order (the LAST
    one is applied first to a fixed point), nested composites opened recursively.
    Pieces share data with `transform` (SimpleITK copies on write): nothing is copied."""
    if transform.GetTransformEnum() != sitk.sitkComposite:
        return [transform]
    composite = sitk.CompositeTransform(transform)
    out: list[sitk.Transform] = []
    for i in range(composite.GetNumberOfTransforms()):
        out.extend(elementary_transforms(composite.GetNthTransform(i)))
    return out


def _merge_linear(pieces: list[sitk.Transform]) -> sitk.Transform:
    """One AffineTransform equal to the stored-order chain `pieces` (all linear)."""
    if len(pieces) == 1:
        return pieces[0]
    chain = sitk.CompositeTransform(pieces[0].GetDimension())
    for piece in pieces:
        chain.AddTransform(piece)
    return to_affine(chain)


def storable(transform: sitk.Transform) -> sitk.Transform:
    """The same fixed→moving mapping with no composite nested in another (see module doc).

    A chain that is linear throughout becomes one AffineTransform; a single deformable
    piece is returned on its own; otherwise one flat CompositeTransform.
    """
    if transform.GetTransformEnum() != sitk.sitkComposite:
        return transform
    pieces = elementary_transforms(transform)
    merged: list[sitk.Transform] = []
    run: list[sitk.Transform] = []
    for piece in pieces:
        if piece.IsLinear():
            run.append(piece)
            continue
        if run:
            merged.append(_merge_linear(run))
            run = []
        merged.append(piece)
    if run:
        merged.append(_merge_linear(run))
    if len(merged) == 1:
        return merged[0]
    flat = sitk.CompositeTransform(merged[0].GetDimension())
    for piece in merged:
        flat.AddTransform(piece)
    return flat


__all__ = ["elementary_transforms", "storable"]
