"""Shared fixtures: where the real test images and the bundled demo data are."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO = ROOT / "resources" / "demo"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the project")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_data() -> Path:
    return DEMO


@pytest.fixture(autouse=True)
def _restore_locale():
    """GDCM's DICOM writer (used by tests that build DICOM series) leaves the process locale
    at "C", after which Python opens text files as ASCII and a later test fails far away."""
    import locale

    saved = locale.setlocale(locale.LC_ALL)
    yield
    locale.setlocale(locale.LC_ALL, saved)
