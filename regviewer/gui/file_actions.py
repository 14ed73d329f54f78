"""File dialogs and file actions of the main window: open (files, DICOM folders with a
series chooser, drag-and-drop, recent files), save (transform, resampled moving image,
screenshot). Each action is one core call; errors go to the window's error dialog.

Saves are atomic (core writers use `atomic_output`); saving over an input image asks
for explicit confirmation first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6 import QtCore, QtGui, QtWidgets

from regviewer.core.atomic import atomic_output
from regviewer.core.errors import ImageWriteError, MultipleSeriesError, RegviewerError
from regviewer.core.imaging.io import IMAGE_EXTENSIONS, image_files_in, list_dicom_series, read_image, write_image
from regviewer.core.transforms.io import is_transform_file, write_transform
from regviewer.core.transforms.io import read_transform
from regviewer.core.workspace.state import TransformSource
from regviewer.gui.background import call_in_background

if TYPE_CHECKING:
    from regviewer.gui.main_window import MainWindow

IMAGE_FILTER = "Images (" + " ".join(f"*{e}" for e in IMAGE_EXTENSIONS) + ");;All files (*)"
SAVE_IMAGE_FILTER = "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha *.mhd);;TIFF (*.tif);;PNG (*.png);;JPEG (*.jpg)"
TRANSFORM_FILTER = "ITK transform, text (*.tfm *.txt);;ITK transform, HDF5 (*.h5)"
OPEN_TRANSFORM_FILTER = ("Transforms (*.tfm *.txt *.h5 *.hdf5 *.mat *.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;"
                         "ITK transform (*.tfm *.txt *.h5 *.hdf5);;ANTs affine (*.mat);;"
                         "elastix (TransformParameters*.txt);;Displacement field (*.nii.gz *.nii *.nrrd *.mha);;All files (*)")
SCREENSHOT_FILTER = "PNG image (*.png);;JPEG image (*.jpg)"
MAX_RECENT = 8


# --- reading ---------------------------------------------------------------------------------
def read_with_chooser(window: "MainWindow", path: str | Path):
    """`read_image`, asking which series when a DICOM folder holds several. A large
    series takes seconds to read: the window keeps painting meanwhile."""
    try:
        return call_in_background(lambda: read_image(path))
    except MultipleSeriesError as exc:
        uid = window.choose_dicom_series(str(path), exc.series)
        if uid is None:
            return None
        return call_in_background(lambda: read_image(path, series_uid=uid))


class DicomSeriesDialog(QtWidgets.QDialog):
    """A list of the series in a DICOM folder; the user picks one."""

    def __init__(self, folder: str, series: list, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a DICOM series")
        self.series = series
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(f"{folder} holds {len(series)} series:"))
        self.list = QtWidgets.QListWidget()
        for s in series:
            self.list.addItem(f"{s.description or '(no description)'} — {s.n_files} files — {s.series_uid}")
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        layout.addWidget(self.list)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def chosen_uid(self) -> str | None:
        row = self.list.currentRow()
        return self.series[row].series_uid if 0 <= row < len(self.series) else None


def ask_dicom_series(window: QtWidgets.QWidget, folder: str, series: list) -> str | None:
    dialog = DicomSeriesDialog(folder, series, window)
    if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
        return dialog.chosen_uid()
    return None


def open_image_dialog(window: "MainWindow", role: str) -> None:
    path, _ = QtWidgets.QFileDialog.getOpenFileName(window, f"Open the {role} image", _last_dir(), IMAGE_FILTER)
    if path:
        _open_role(window, role, path)


def open_dicom_dialog(window: "MainWindow", role: str) -> None:
    folder = QtWidgets.QFileDialog.getExistingDirectory(window, f"Open a DICOM folder as the {role} image", _last_dir())
    if folder:
        try:
            if not list_dicom_series(folder):
                raise RegviewerError(f"Cannot open image '{folder}': the folder contains no DICOM series")
        except RegviewerError as exc:
            window.show_error(exc)
            return
        _open_role(window, role, folder)


def _open_role(window: "MainWindow", role: str, path: str) -> None:
    fixed = path if role == "fixed" else window.fixed_path()
    moving = path if role == "moving" else window.moving_path()
    if role == "moving" and fixed is None:
        window.show_message("Open a fixed image first")
        fixed, moving = path, None
    window.open_images(fixed, moving)


def open_transform(window: "MainWindow", path: str | Path) -> bool:
    """Make a transform file (ITK, elastix, ANTs .mat, displacement field) current; undoable."""
    if window.fixed_volume() is None:
        window.show_message("Open the images before a transform")
        return False
    try:
        transform = call_in_background(lambda: read_transform(path))  # a field takes a moment
        window.workspace.set_transform(transform, f"Open transform {Path(path).name}",
                                       TransformSource("file", path=str(path)))
    except RegviewerError as exc:
        window.show_error(exc)
        return False
    window.show_message(f"Opened the transform {Path(path).name} (fixed → moving); Ctrl+Z goes back")
    return True


def open_transform_dialog(window: "MainWindow") -> None:
    path, _ = QtWidgets.QFileDialog.getOpenFileName(window, "Open a transform (fixed → moving)", _last_dir(),
                                                    OPEN_TRANSFORM_FILTER)
    if path:
        open_transform(window, path)


def handle_dropped_paths(window: "MainWindow", paths: list[str]) -> None:
    """Transform files make themselves current (when images are open). Two images dropped:
    fixed then moving. One: fixed if none is open, else moving."""
    if window.fixed_volume() is not None:
        transforms = [str(p) for p in paths if is_transform_file(p)]
        for path in transforms:
            open_transform(window, path)
        paths = [p for p in paths if str(p) not in transforms]
        if transforms and not paths:
            return
    images = [str(p) for p in image_files_in(paths)]
    if not images:
        window.show_message("Nothing to open: drop image files, DICOM folders or transform files")
        return
    if len(images) >= 2:
        window.open_images(images[0], images[1])
    elif window.fixed_volume() is None:
        window.open_images(images[0], None)
    else:
        window.open_images(window.fixed_path(), images[0])


# --- recent files (QSettings) ---------------------------------------------------------------------
def _settings() -> QtCore.QSettings:
    return QtCore.QSettings("regviewer", "regviewer")


def _last_dir() -> str:
    return str(_settings().value("last_dir", ""))


def recent_pairs() -> list[tuple[str, str | None]]:
    """Recently opened (fixed, moving) pairs, newest first."""
    raw = _settings().value("recent_pairs", []) or []
    pairs = []
    for entry in raw if isinstance(raw, list) else [raw]:
        fixed, _, moving = str(entry).partition("\n")
        pairs.append((fixed, moving or None))
    return pairs


def remember_pair(fixed: str | None, moving: str | None) -> None:
    if not fixed:
        return
    entry = f"{fixed}\n{moving or ''}"
    settings = _settings()
    old = [f"{f}\n{m or ''}" for f, m in recent_pairs()]
    settings.setValue("recent_pairs", [entry] + [e for e in old if e != entry][: MAX_RECENT - 1])
    settings.setValue("last_dir", str(Path(fixed).parent))


def fill_recent_menu(window: "MainWindow", menu: QtWidgets.QMenu) -> None:
    menu.clear()
    pairs = recent_pairs()
    if not pairs:
        menu.addAction("(none)").setEnabled(False)
        return
    for fixed, moving in pairs:
        label = Path(fixed).name + (f"  +  {Path(moving).name}" if moving else "")
        action = menu.addAction(label)
        action.setToolTip(f"{fixed}\n{moving or ''}")
        action.triggered.connect(lambda _=False, f=fixed, m=moving: window.open_images(f, m))


# --- saving -----------------------------------------------------------------------------------
def _is_input(window: "MainWindow", path: str | Path) -> bool:
    target = Path(path).resolve()
    for vol in (window.fixed_volume(), window.moving_volume()):
        if vol is not None and vol.path and Path(vol.path).resolve() == target:
            return True
    return False


def guard_input_overwrite(window: "MainWindow", path: str | Path) -> bool:
    """True when writing `path` is fine; asks first if it is one of the open input images."""
    if not _is_input(window, path):
        return True
    return window.confirm("Overwrite an input image?",
                          f"'{path}' is one of the images you opened. Replace it with the new file?")


def save_transform(window: "MainWindow", path: str | Path) -> bool:
    """Write the current transform (fixed→moving; .tfm/.txt say so in a comment)."""
    if window.fixed_volume() is None:
        window.show_message("Nothing to save: open images first")
        return False
    try:
        write_transform(window.current_transform(), path)
    except RegviewerError as exc:
        window.show_error(exc)
        return False
    window.show_message(f"Saved the transform (maps FIXED points to MOVING points) to {Path(path).name}")
    return True


def save_resampled(window: "MainWindow", path: str | Path) -> bool:
    """Resample the moving image onto the fixed grid under the current transform and write it."""
    fixed, moving = window.fixed_volume(), window.moving_volume()
    if fixed is None or moving is None:
        window.show_message("Open both images first")
        return False
    if not guard_input_overwrite(window, path):
        return False
    window.show_message("Resampling and saving the moving image…")
    transform = window.current_transform()
    try:
        from regviewer.core.transforms.resample import resample_moving

        # A whole volume through a B-spline takes seconds: keep the window painting.
        call_in_background(lambda: write_image(resample_moving(moving, fixed, transform), path))
    except RegviewerError as exc:
        window.show_error(exc)
        return False
    window.show_message(f"Saved the moving image resampled onto the fixed grid to {Path(path).name}")
    return True


def save_screenshot(window: "MainWindow", path: str | Path, widget: QtWidgets.QWidget | None = None) -> bool:
    """A PNG/JPEG of the views (or of `widget`), written atomically."""
    target = widget or window.views_widget()
    if not guard_input_overwrite(window, path):
        return False
    pixmap = grab_with_3d(target)
    try:
        with atomic_output(path) as tmp:
            if not pixmap.save(str(tmp)):
                raise ImageWriteError(path, "Qt could not write the picture (use .png or .jpg)")
    except RegviewerError as exc:
        window.show_error(exc)
        return False
    except OSError as exc:
        window.show_error(ImageWriteError(path, exc.strerror or str(exc)))
        return False
    window.show_message(f"Saved a screenshot to {Path(path).name}")
    return True


def grab_with_3d(widget: QtWidgets.QWidget) -> QtGui.QPixmap:
    """`widget.grab()`, with any VTK view painted from its own frame buffer (an OpenGL
    widget grabs as black otherwise)."""
    pixmap = widget.grab()
    from regviewer.gui.views.volume_view import VolumeView

    views = widget.findChildren(VolumeView)
    if not views:
        return pixmap
    painter = QtGui.QPainter(pixmap)
    try:
        for view in views:
            if not view.isVisible():
                continue
            image = view.snapshot()
            if image is None:
                continue
            top_left = view.mapTo(widget, QtCore.QPoint(0, 0))
            painter.drawImage(QtCore.QRect(top_left, view.size()), image)
    finally:
        painter.end()
    return pixmap


def save_dialog(window: "MainWindow", what: str) -> None:
    """File > Save … for `what` in {"transform", "resampled", "screenshot"}."""
    title, file_filter, default = {
        "transform": ("Save the transform (fixed → moving)", TRANSFORM_FILTER, "transform_fixed_to_moving.tfm"),
        "resampled": ("Save the moving image resampled onto the fixed grid", SAVE_IMAGE_FILTER, "moving_resampled.nii.gz"),
        "screenshot": ("Save a screenshot of the views", SCREENSHOT_FILTER, "regviewer.png"),
    }[what]
    path, _ = QtWidgets.QFileDialog.getSaveFileName(window, title, str(Path(_last_dir() or ".") / default), file_filter)
    if not path:
        return
    {"transform": save_transform, "resampled": save_resampled, "screenshot": save_screenshot}[what](window, path)
