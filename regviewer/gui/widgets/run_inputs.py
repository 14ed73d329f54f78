"""What a live run starts from: the mask files and seed the Registration dock edits, the
landmarks it may use, and the `RegistrationJob` built from them and the host's images and
current transform. A mixin of `LiveRegistrationDock`, kept apart so the dock keeps the run's
life (start, snapshots, Apply, Revert) and this file its inputs; nothing here computes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PyQt6 import QtWidgets

from regviewer.core.errors import ParameterError, RegviewerError
from regviewer.core.registration.reproduce import is_identity
from regviewer.gui.worker import RegistrationJob


class LandmarkCopy:
    """A frozen copy of the enabled landmark pairs, safe to read from the worker thread."""

    def __init__(self, landmark_set: Any) -> None:
        self.pairs = [SimpleNamespace(fixed=tuple(p.fixed), moving=tuple(p.moving), enabled=True)
                      for p in getattr(landmark_set, "pairs", []) or []
                      if getattr(p, "enabled", True) and getattr(p, "fixed", None) is not None
                      and getattr(p, "moving", None) is not None]


class RunInputs:
    """Mixed into `LiveRegistrationDock` (needs `self.host`, `self.workspace`, `self.params`)."""

    def _build_inputs_group(self) -> QtWidgets.QGroupBox:
        """The "Masks and seed" box: `self.mask_edits` and `self.seed_spin`."""
        self._masks: dict[str, Any] = {"fixed": None, "moving": None}
        inputs = QtWidgets.QGroupBox("Masks and seed")
        form = QtWidgets.QFormLayout(inputs)
        self.mask_edits: dict[str, QtWidgets.QLineEdit] = {}
        for which in ("fixed", "moving"):
            row = QtWidgets.QHBoxLayout()
            edit = QtWidgets.QLineEdit()
            edit.setPlaceholderText("none (whole image)")
            edit.setToolTip(f"A {which}-image mask file: the metric only looks where it is non-zero")
            browse = QtWidgets.QToolButton(text="…")
            browse.clicked.connect(lambda _=False, w=which: self._browse_mask(w))
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(f"{which.capitalize()} mask", row)
            self.mask_edits[which] = edit
            edit.editingFinished.connect(lambda w=which: self._mask_edited(w))
        self.seed_spin = QtWidgets.QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Random sampling seed: the same seed gives the same result")
        form.addRow("Random seed", self.seed_spin)
        return inputs

    def set_mask(self, which: str, mask: Any) -> None:
        """Use `mask` (a path, Volume or sitk image; None for none) as the fixed or moving mask.
        A mask file is a registration setting: it goes to the Workspace (saved with the session)."""
        self._masks[which] = None if isinstance(mask, (str, Path)) else mask
        self.mask_edits[which].setText(str(mask) if isinstance(mask, (str, Path)) else ("(in memory)" if mask is not None else ""))
        self._mask_edited(which)

    def _mask_edited(self, which: str) -> None:
        mask = self._mask(which)
        self.workspace.set_settings(**{f"{which}_mask": mask if isinstance(mask, str) else None})

    def _show_settings_masks(self, settings: Any) -> None:
        """The Workspace's mask files (a restored session, a script) shown in the fields."""
        for which in ("fixed", "moving"):
            path = getattr(settings, f"{which}_mask", None)
            if self._masks[which] is None and self.mask_edits[which].text().strip() != (path or ""):
                self.mask_edits[which].setText(path or "")

    def _mask(self, which: str) -> Any:
        if self._masks[which] is not None:
            return self._masks[which]
        text = self.mask_edits[which].text().strip()
        return text if text and text != "(in memory)" else None

    def _browse_mask(self, which: str) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, f"{which.capitalize()} mask")
        if path:
            self.set_mask(which, path)

    def _inputs(self) -> dict:
        fixed, moving = self.host.fixed_volume(), self.host.moving_volume()
        out = {"fixed": getattr(fixed, "path", None), "moving": getattr(moving, "path", None)}
        for which in ("fixed", "moving"):
            mask = self._mask(which)
            out[f"{which}_mask"] = mask if isinstance(mask, str) else None
        return out

    def _landmark_set(self) -> Any:
        return self.workspace.landmarks

    def _make_job(self) -> RegistrationJob:
        fixed, moving = self.host.fixed_volume(), self.host.moving_volume()
        if fixed is None or moving is None:
            raise RegviewerError("Open a fixed and a moving image before running a registration.")
        errors = self.params.errors()
        if errors:
            path, message = next(iter(errors.items()))
            raise ParameterError(f"A parameter was refused ({'.'.join(map(str, path))}: {message}); correct the "
                                 "field shown in red first.")
        pipeline = self.params.pipeline()
        current = self.host.current_transform()
        initial = None if is_identity(current) else current
        landmarks = self._landmark_set() if pipeline.stages[0].initializer == "landmarks" and initial is None else None
        if landmarks is None and any(s.landmark_weight > 0 for s in pipeline.stages):  # landmark-guided stages
            pairs = self._landmark_set()
            landmarks = pairs if pairs is not None and any(p.complete and p.enabled for p in pairs) else None
        return RegistrationJob(fixed, moving, params=pipeline, initial_transform=initial,
                               fixed_mask=self._mask("fixed"), moving_mask=self._mask("moving"),
                               seed=int(self.seed_spin.value()), landmarks=landmarks)
