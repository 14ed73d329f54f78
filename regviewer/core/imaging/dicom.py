"""DICOM folders: the series in a folder and its sub-folders, and reading one of them.

Scanners and PACS export a study as one sub-folder per series, often beside a DICOMDIR;
`list_dicom_series` searches the folder, the folders a DICOMDIR names, and sub-folders
breadth first (bounded), so a study folder offers its series like a flat one does.
"""

from __future__ import annotations

import contextlib
import locale
import re
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from regviewer.core.errors import ImageReadError, MultipleSeriesError, itk_message


@dataclass(frozen=True)
class DicomSeries:
    """One series found in a DICOM folder."""

    series_uid: str
    description: str
    n_files: int
    files: tuple[str, ...]


@contextlib.contextmanager
def keep_locale():
    """GDCM switches the process locale to "C" while it reads and writes DICOM and does
    not always switch it back; Python then opens text files as ASCII. Restore it."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        with contextlib.suppress(locale.Error):
            locale.setlocale(locale.LC_ALL, saved)


def list_dicom_series(folder: str | Path) -> list[DicomSeries]:
    with keep_locale():
        return _list_dicom_series(folder)


def _list_dicom_series(folder: str | Path) -> list[DicomSeries]:
    """The DICOM series in a folder and its sub-folders, for the caller (or a dialog) to
    choose from. Scanners and PACS export a study as one sub-folder per series (often
    beside a DICOMDIR), so the folder itself may hold no image file at all."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(folder, "it is not a folder")
    series: dict[str, DicomSeries] = {}
    for directory in _study_folders(folder):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)):
            if uid in series:  # a series split over several folders: the first folder found wins
                continue
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(directory), uid)
            series[uid] = DicomSeries(uid, _dicom_description(files[0]) if files else "", len(files), tuple(files))
    return list(series.values())


_MAX_STUDY_DEPTH = 4
_MAX_STUDY_FOLDERS = 500


def _study_folders(folder: Path) -> list[Path]:
    """The folder, then its sub-folders breadth first (bounded, symlinks not followed);
    when a DICOMDIR is present, the folders its records point to come first."""
    ordered: list[Path] = [folder]
    seen = {folder.resolve()}
    for listed in _dicomdir_folders(folder):
        if listed.resolve() not in seen:
            seen.add(listed.resolve())
            ordered.append(listed)
    level = [folder]
    for _ in range(_MAX_STUDY_DEPTH):
        next_level = []
        for d in level:
            try:
                children = sorted(c for c in d.iterdir() if c.is_dir() and not c.is_symlink())
            except OSError:
                continue
            for c in children:
                if c.resolve() not in seen and len(seen) < _MAX_STUDY_FOLDERS:
                    seen.add(c.resolve())
                    ordered.append(c)
                    next_level.append(c)
        level = next_level
    return ordered


def _dicomdir_folders(folder: Path) -> list[Path]:
    """Folders named by a DICOMDIR's referenced file IDs (tag 0004,1500), read as text
    tokens: a DICOMDIR is a DICOM file, but its records need no DICOM library to find."""
    dicomdir = next((c for c in (folder / "DICOMDIR", folder / "dicomdir") if c.is_file()), None)
    if dicomdir is None:
        return []
    try:
        raw = dicomdir.read_bytes()[: 64 * 2**20]
    except OSError:
        return []
    folders: list[Path] = []
    for match in re.finditer(rb"\x04\x00\x00\x15(?:CS)?", raw):  # (0004,1500) Referenced File ID
        start = match.end()
        if raw[match.start() + 4 : match.start() + 6] == b"CS":
            length = int.from_bytes(raw[start : start + 2], "little")
            start += 2
        else:
            length = int.from_bytes(raw[start : start + 4], "little")
            start += 4
        if not 0 < length < 256:
            continue
        parts = raw[start : start + length].decode("ascii", "replace").strip(" \0").split("\\")
        target = folder.joinpath(*parts[:-1]) if len(parts) > 1 else folder
        if target.is_dir() and target not in folders:
            folders.append(target)
    return folders


def _dicom_description(file: str) -> str:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    try:
        reader.ReadImageInformation()
        for key in ("0008|103e", "0008|0060"):
            if reader.HasMetaDataKey(key):
                return reader.GetMetaData(key).strip()
    except RuntimeError:
        pass
    return ""


def read_dicom_folder(folder: Path, series_uid: str | None) -> sitk.Image:
    with keep_locale():
        return _read_dicom_folder(folder, series_uid)


def _read_dicom_folder(folder: Path, series_uid: str | None) -> sitk.Image:
    series = list_dicom_series(folder)
    if not series:
        raise ImageReadError(folder, "neither the folder nor its sub-folders contain a DICOM series")
    if series_uid is None:
        if len(series) > 1:
            raise MultipleSeriesError(folder, series)
        chosen = series[0]
    else:
        matches = [s for s in series if s.series_uid == series_uid]
        if not matches:
            raise ImageReadError(folder, f"it has no DICOM series with UID {series_uid}")
        chosen = matches[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(chosen.files))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(folder, f"the DICOM series could not be read ({itk_message(exc)})") from None




__all__ = ["DicomSeries", "list_dicom_series", "read_dicom_folder"]
