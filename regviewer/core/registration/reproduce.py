"""Text that redoes a registration run outside the window: a Python script or a shell command.

"Copy as Python" and "Copy as command line" in the live-registration panel call
`as_python` and `as_command_line` with a `RunSpec`. Both run the same engine with the
same parameters and seed, so the result matches the run in the window bit for bit on
the same machine. Transforms map FIXED points to MOVING points throughout.

A linear starting transform (manual alignment, landmark fit) is written inline, as an
affine matrix; any other starting transform is referred to by file
(`RunSpec.initial_transform_path`; see `save_initial_transform`).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from regviewer.core.transforms import ops
from regviewer.core.transforms.io import write_transform
from regviewer.core.transforms.ops import matrix_offset as affine_matrix  # (A, t) with T(p) = A p + t


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs besides the pixels: where the images are and how to register.

    `params` is a `Pipeline` (or its `to_dict()`); `preset` names it when it is an
    unchanged preset (the command line then says `--preset NAME`). `initial_transform`
    maps fixed → moving; None or identity means "start from the images as they are".
    """

    fixed: str | None
    moving: str | None
    params: Any
    preset: str | None = None
    seed: int = 0
    fixed_mask: str | None = None
    moving_mask: str | None = None
    landmarks: str | None = None
    initial_transform: sitk.Transform | None = None
    initial_transform_path: str | None = None
    out_dir: str = "regviewer-run"


def _params_dict(params: Any) -> dict:
    if hasattr(params, "to_dict"):
        return params.to_dict()
    return dict(params or {})


def is_linear(transform: sitk.Transform | None) -> bool:
    """True when every part of the transform is an affine map (so it can be written as a matrix)."""
    return transform is None or ops.is_linear(transform)


def is_identity(transform: sitk.Transform | None, tol: float = 1e-12) -> bool:
    if transform is None:
        return True
    if not is_linear(transform):
        return False
    matrix, offset = affine_matrix(transform)
    return bool(np.allclose(matrix, np.eye(len(offset)), atol=tol) and np.allclose(offset, 0.0, atol=tol))


def save_initial_transform(transform: sitk.Transform, directory: str | Path, number: int) -> Path:
    """Write a run's starting transform (fixed → moving) as `run-<number>-initial.h5` for the text to refer to."""
    path = Path(directory) / f"run-{number}-initial.h5"
    write_transform(transform, path)
    return path


def _initial_needed(spec: RunSpec) -> bool:
    return spec.initial_transform_path is not None or not is_identity(spec.initial_transform)


def _py(value: Any) -> str:
    return repr(str(value))


def as_python(spec: RunSpec) -> str:
    """A self-contained Python script that reruns the registration and saves the transform."""
    params_json = json.dumps(_params_dict(spec.params), indent=2)
    lines = [
        "# Reproduce a regviewer registration. The result maps FIXED points to MOVING points.",
        "import SimpleITK as sitk",
        "",
        "import regviewer",
        "from regviewer.core.imaging.io import write_transform",
        "from regviewer.core.registration.params import Pipeline",
        "",
        f"params = Pipeline.from_json(r'''{params_json}''')",
    ]
    kwargs = ["params=params"]
    if _initial_needed(spec):
        if spec.initial_transform_path is not None:
            lines.append(f"initial = sitk.ReadTransform({_py(spec.initial_transform_path)})")
        elif is_linear(spec.initial_transform):
            matrix, offset = affine_matrix(spec.initial_transform)
            dim = len(offset)
            lines += [
                "# the starting alignment (fixed -> moving): p -> A p + t",
                f"initial = sitk.AffineTransform({dim})",
                f"initial.SetMatrix({[float(x) for x in matrix.ravel()]!r})",
                f"initial.SetTranslation({[float(x) for x in offset]!r})",
            ]
        else:
            lines.append("initial = None  # the starting transform was not linear and was not saved to a file")
        kwargs.append("initial_transform=initial")
    if spec.landmarks:
        lines.insert(6, "from regviewer.core.landmarks.model import load_landmarks")
        lines.append(f"landmarks = load_landmarks({_py(spec.landmarks)})")
        kwargs.append("landmarks=landmarks")
    if spec.fixed_mask:
        kwargs.append(f"fixed_mask={_py(spec.fixed_mask)}")
    if spec.moving_mask:
        kwargs.append(f"moving_mask={_py(spec.moving_mask)}")
    kwargs.append(f"seed={int(spec.seed)}")
    lines += [
        "",
        "result = regviewer.register(",
        f"    {_py(spec.fixed or 'FIXED_IMAGE')},",
        f"    {_py(spec.moving or 'MOVING_IMAGE')},",
        *[f"    {k}," for k in kwargs],
        ")",
        "print(result.stop_reason, f'{result.elapsed:.1f} s')",
        f"write_transform(result.transform, {_py(spec.out_dir + '/transform.h5')})",
        "",
    ]
    return "\n".join(lines)


def _itk_text(transform: sitk.Transform, max_parameters: int = 5000) -> str | None:
    """The transform as ITK text (what a .tfm file holds), or None when too large for a command."""
    if transform.GetNumberOfParameters() > max_parameters:
        return None
    with tempfile.TemporaryDirectory(prefix="regviewer-copy-") as tmp:
        path = Path(tmp) / "initial.tfm"
        try:
            sitk.WriteTransform(transform, str(path))
        except RuntimeError:
            return None
        return path.read_text(encoding="utf-8")


def as_command_line(spec: RunSpec, shell_params_file: str = "regviewer-params.json",
                    shell_initial_file: str = "regviewer-initial.tfm") -> str:
    """A shell command (bash) for `regviewer register`.

    An unchanged preset is passed by name; otherwise the parameters are written to
    `shell_params_file` by a here-document first (and a starting transform to
    `shell_initial_file` as ITK text), so the text pastes into a terminal as it is.
    """
    q = shlex.quote
    parts = ["regviewer", "register", q(spec.fixed or "FIXED_IMAGE"), q(spec.moving or "MOVING_IMAGE")]
    prefix = ""
    if spec.preset:
        parts += ["--preset", q(spec.preset)]
    else:
        params_json = json.dumps(_params_dict(spec.params), indent=2)
        prefix = f"cat > {q(shell_params_file)} <<'EOF'\n{params_json}\nEOF\n"
        parts += ["--params", q(shell_params_file)]
    if spec.landmarks:
        parts += ["--landmarks", q(spec.landmarks)]
    if spec.fixed_mask:
        parts += ["--fixed-mask", q(spec.fixed_mask)]
    if spec.moving_mask:
        parts += ["--moving-mask", q(spec.moving_mask)]
    if spec.initial_transform_path:
        parts += ["--initial-transform", q(spec.initial_transform_path)]
    elif _initial_needed(spec):
        text = _itk_text(spec.initial_transform)
        if text is not None:
            prefix += f"cat > {q(shell_initial_file)} <<'EOF'\n{text.rstrip()}\nEOF\n"
            parts += ["--initial-transform", q(shell_initial_file)]
        else:
            prefix = ("# NOTE: this run started from a manual/landmark alignment; save it with File > Save "
                      "transform and add --initial-transform FILE\n") + prefix
    if spec.seed:
        parts += ["--seed", str(int(spec.seed))]
    parts += ["--out", q(spec.out_dir)]
    return prefix + " ".join(parts)
