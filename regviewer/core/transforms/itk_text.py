"""Checks on ITK text transform files that ITK itself read without complaint.

ITK's reader accepts a file cut off mid-way: a missing Parameters line leaves the
identity, a short FixedParameters line a wrong centre, a missing last block one
transform fewer. `itk_text_problem` says why such a file must not be trusted.
"""

from __future__ import annotations

import SimpleITK as sitk

from regviewer.core.transforms.storable import elementary_transforms

COUNT_NOTE = "# regviewer: transforms in this file: "


def itk_text_problem(text: str, tx: sitk.Transform) -> str | None:
    """Why an ITK text transform that ITK did read must not be trusted, or None.

    ITK reads a file cut off mid-way without complaint: a missing Parameters line leaves
    the identity, a short FixedParameters line a wrong centre, a missing last block one
    transform fewer. So every block must carry both lines with the counts its type needs,
    the file must end with a line break, and a count written by regviewer must match."""
    lines = text.splitlines()
    blocks: list[dict[str, list[str]]] = []
    declared = None
    for line in lines:
        if line.startswith(COUNT_NOTE):
            declared = line[len(COUNT_NOTE):].strip()
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "Transform":
            blocks.append({"type": [value.strip()]})
        elif key in ("Parameters", "FixedParameters") and blocks:
            blocks[-1][key] = value.split()
    cut = "; the file looks cut off (incomplete)"
    if text and not text.endswith(("\n", "\r")):
        return "it does not end with a line break" + cut
    if declared is not None and declared != str(len(blocks)):
        return f"it should hold {declared} transforms but holds {len(blocks)}" + cut
    leaves = [b for b in blocks if not b["type"][0].startswith("CompositeTransform")]
    actual = elementary_transforms(tx)
    if not actual:
        return "it holds an empty composite transform (no transform inside)" + cut
    if len(leaves) != len(actual):
        return f"it lists {len(leaves)} transforms but {len(actual)} could be read" + cut
    for i, (block, leaf) in enumerate(zip(leaves, actual)):
        for key, want in (("Parameters", leaf.GetNumberOfParameters()),
                          ("FixedParameters", len(leaf.GetFixedParameters()))):
            if key not in block:
                return f"transform {i + 1} ({block['type'][0]}) has no '{key}' line" + cut
            if len(block[key]) != want:
                return f"transform {i + 1} ({block['type'][0]}) has {len(block[key])} {key}; it needs {want}" + cut
    return None


__all__ = ["COUNT_NOTE", "itk_text_problem"]
