"""Shared fixtures: where the small real test images and the bundled demo data are.

Tests read only files inside the repository: `tests/data/` (built once from the MNI152
templates and the camera photograph by `scripts/make_test_data.py`) and `resources/demo/`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / "tests" / "data"
DEMO = ROOT / "resources" / "demo"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """4 mm MNI152 T1/GM/WM (`mni152_2009a_*_4mm.nii.gz`) and a 128 px camera photograph."""
    return TEST_DATA


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
