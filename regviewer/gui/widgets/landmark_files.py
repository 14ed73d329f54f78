"""The landmark dock's files: import and export of landmark pairs (CSV, BigWarp, Slicer)
and of the fitted transform, with their dialogs. A mixin of `LandmarkDock`, kept apart so
each file has one job; it edits the Workspace's landmarks (`self._set`), one undo step
per import.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtWidgets

from regviewer.core.errors import RegviewerError
from regviewer.core.landmarks import model as lm

IMPORT_FILTERS = ("Landmark CSV (*.csv);;BigWarp landmarks (*.csv);;3D Slicer markups (*.mrk.json *.json);;"
                  "3D Slicer fiducials (*.fcsv);;All files (*)")
EXPORT_FILTERS = ("Landmark CSV (*.csv);;BigWarp landmarks (*.csv);;3D Slicer markups (*.mrk.json);;"
                  "3D Slicer fiducials (*.fcsv)")


class LandmarkFiles:
    """Mixed into `LandmarkDock`."""

    def import_landmarks(self, path: str | Path, moving_path: str | Path | None = None,
                         format: str | None = None) -> None:
        """Replace the landmarks with a file's (formats of `core.landmarks.load_landmarks`;
        `format` as there, e.g. "bigwarp"); one undo step."""
        loaded = lm.load_landmarks(path, moving_path, format=format)
        if loaded.dimension != self._set.dimension:
            raise RegviewerError(f"'{Path(path).name}' holds {loaded.dimension}D landmarks but the images are "
                                 f"{self._set.dimension}D")
        self._set.replace_all(loaded.pairs, f"Import landmarks from {Path(path).name}")  # one undo step
        self.host.show_message(f"Loaded {len(loaded.pairs)} landmark pairs from {Path(path).name}")

    def export_landmarks(self, path: str | Path, moving_path: str | Path | None = None,
                         format: str | None = None) -> None:
        self._set.save(path, moving_path, format=format)
        self.host.show_message(f"Saved {len(self._set.pairs)} landmark pairs to {Path(path).name}")

    def export_fit_transform(self, path: str | Path) -> None:
        """Save the current fit (fixed→moving) as an ITK transform file."""
        from regviewer.core.transforms.io import write_transform

        if self.fit_result is None:
            raise RegviewerError("There is no landmark fit to save yet: place enough enabled pairs first")
        write_transform(self.fit_result.transform, path)
        self.host.show_message(f"Saved the {self.model} landmark fit (fixed→moving) to {Path(path).name}")

    def _import_dialog(self) -> None:
        path, chosen = QtWidgets.QFileDialog.getOpenFileName(self, "Import landmarks", "", IMPORT_FILTERS)
        if not path:
            return
        moving_path = None
        if "Slicer" in chosen or path.endswith((".mrk.json", ".fcsv")):
            moving_path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "The MOVING image's landmarks (pairs are matched by label)", str(Path(path).parent), IMPORT_FILTERS)
            if not moving_path:
                return
        try:
            self.import_landmarks(path, moving_path, format="bigwarp" if "BigWarp" in chosen else None)
        except RegviewerError as exc:
            self.host.show_error(exc)

    def _export_dialog(self) -> None:
        filters = EXPORT_FILTERS + ";;Fitted transform, fixed→moving (*.tfm *.h5)"
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export landmarks", "", filters)
        if not path:
            return
        try:
            if "transform" in chosen or path.endswith((".tfm", ".h5", ".txt")):
                self.export_fit_transform(path)
                return
            moving_path = None
            if "Slicer" in chosen or path.endswith((".mrk.json", ".fcsv")):
                moving_path, _ = QtWidgets.QFileDialog.getSaveFileName(
                    self, "Save the MOVING image's landmarks as", str(Path(path).parent), EXPORT_FILTERS)
                if not moving_path:
                    return
            self.export_landmarks(path, moving_path, format="bigwarp" if "BigWarp" in chosen else None)
        except RegviewerError as exc:
            self.host.show_error(exc)

