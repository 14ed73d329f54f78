"""Typed errors with messages a person understands.

Every error raised for bad input or a failed operation derives from
`RegviewerError`, so the GUI can show ``str(error)`` in a dialog and the CLI can
print it and exit non-zero without ever showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class RegviewerError(Exception):
    """Base of all regviewer errors; ``str()`` is the message for the user."""


class ImageReadError(RegviewerError):
    """A file or folder could not be read as an image."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"Cannot open image '{self.path}': {problem}")


class UnsupportedImageError(ImageReadError):
    """The file is an image, but not one regviewer can use as it is."""


class MultipleTimePointsError(UnsupportedImageError):
    """A 4D (time series) image; the caller should pick one time point."""

    def __init__(self, path: str | Path, n_time_points: int) -> None:
        self.n_time_points = n_time_points
        super().__init__(
            path,
            f"it is a 4D image with {n_time_points} time points; choose one time point "
            f"(0 to {n_time_points - 1}), e.g. read_image(path, time_point=0)",
        )


class MultipleSeriesError(ImageReadError):
    """A DICOM folder holds several series; the caller should pick one."""

    def __init__(self, path: str | Path, series: list) -> None:
        self.series = series
        names = "; ".join(f"{s.series_uid} ({s.description or 'no description'}, {s.n_files} files)" for s in series)
        super().__init__(path, f"the folder holds {len(series)} DICOM series, choose one: {names}")


class ImageWriteError(RegviewerError):
    """An image, transform or other file could not be written."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"Cannot save '{self.path}': {problem}")


class IncompatibleImagesError(RegviewerError):
    """Two images cannot be used together (e.g. 2D fixed with 3D moving)."""


class TransformReadError(RegviewerError):
    """A transform file could not be read."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"Cannot read transform '{self.path}': {problem}")


class LandmarkFileError(RegviewerError):
    """A landmark file is missing, malformed or inconsistent."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"Cannot read landmarks '{self.path}'{where}: {problem}")


class LandmarkFitError(RegviewerError):
    """Too few or degenerate landmarks for the chosen model."""


class LandmarkFitCancelled(LandmarkFitError):
    """The caller's `progress` callback asked a landmark fit to stop."""


class ParameterError(RegviewerError):
    """A registration parameter or preset is invalid."""


class RegistrationFailed(RegviewerError):
    """The optimiser or a filter failed; the message carries the reason."""


class RegistrationCancelled(RegviewerError):
    """The user cancelled; ``best_transform`` is the best result so far (may be None)."""

    def __init__(self, message: str = "Registration cancelled", best_transform=None) -> None:
        self.best_transform = best_transform
        super().__init__(message)


class SessionError(RegviewerError):
    """A session file could not be read or written."""


class LandmarkEditError(RegviewerError):
    """A landmark edit was refused (e.g. a name already taken, a point with NaN)."""


def itk_message(exc: Exception) -> str:
    """The informative part of an ITK exception, without the C++ file and line (for our messages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.lower().startswith("description:"):
            return ln.split(":", 1)[1].strip()
    useful = [ln for ln in lines if not ln.startswith(("/", "Exception thrown", "sitk::ERROR"))]
    return (useful or lines or ["unknown error"])[-1][:200]
