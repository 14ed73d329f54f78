"""The one Qt bridge: re-emits the Workspace's plain-callback events as Qt signals.

Workspace events may fire on any thread (a background load, a script); Qt delivers
these signals to widgets on the GUI thread (queued when emitted elsewhere), so a panel
connects here and never touches threads. One signal per Workspace field, carrying the
field's new value.
"""

from __future__ import annotations

from PyQt6 import QtCore

from regviewer.core.workspace.model import Workspace


class WorkspaceBridge(QtCore.QObject):
    """Qt signals for `Workspace.events` (see the module docstring)."""

    imagesChanged = QtCore.pyqtSignal(object)  # (fixed Volume, moving Volume | None)
    transformChanged = QtCore.pyqtSignal(object)  # TransformState
    previewChanged = QtCore.pyqtSignal(object)  # sitk.Transform | None
    landmarksChanged = QtCore.pyqtSignal(object)  # LandmarkSet
    settingsChanged = QtCore.pyqtSignal(object)  # RegistrationSettings
    runsChanged = QtCore.pyqtSignal(object)  # RunHistory
    viewStateChanged = QtCore.pyqtSignal(object)  # dict
    qaChanged = QtCore.pyqtSignal(object)  # dict of QA inputs
    historyChanged = QtCore.pyqtSignal(object)  # UndoStack
    roiChanged = QtCore.pyqtSignal(object)  # RegionOfInterest

    _SIGNALS = {"images": "imagesChanged", "transform": "transformChanged", "preview": "previewChanged",
                "landmarks": "landmarksChanged", "settings": "settingsChanged", "runs": "runsChanged",
                "view_state": "viewStateChanged", "qa": "qaChanged", "history": "historyChanged",
                "roi": "roiChanged"}

    def __init__(self, workspace: Workspace, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        for event in workspace.events:
            event.connect(getattr(self, self._SIGNALS[event.name]).emit)
