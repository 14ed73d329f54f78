"""Rough edges of issue 14, core side: window/level on colour, presets that fit the image,
the drag direction the README states, parameter fields per model, plain QA labels and one
naming of pyramid levels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from regviewer.core.errors import ParameterError
from regviewer.core.imaging.composite import OverlaySettings, window_level
from regviewer.core.imaging.image import Volume
from regviewer.core.imaging.window_presets import CT_PRESETS, PERCENTILE_PRESETS, preset_window, window_presets_for
from regviewer.core.qa.evaluation import MEASURE_HELP, Evaluation
from regviewer.core.qa.report_svg import metric_curve_svg
from regviewer.core.registration.params import TRANSFORMS, TransformParams, applies_to
from regviewer.core.workspace.view_state import adjust_window, render_slice


def _volume(arr: np.ndarray, rgb: bool = False) -> Volume:
    return Volume(sitk.GetImageFromArray(arr, isVector=rgb))


def test_window_level_changes_a_colour_image_and_its_default_keeps_the_colours():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3)).astype(np.uint8)
    vol = _volume(rgb, rgb=True)
    assert np.array_equal(window_level(rgb, *vol.default_window_level()), rgb)
    brighter = window_level(rgb, 128.0, 64.0)  # narrower window, lower level
    assert brighter.shape == rgb.shape and brighter.mean() > rgb.mean() + 30


def test_presets_fit_the_modality():
    rng = np.random.default_rng(1)
    ct = _volume(rng.choice([-1000.0, 40.0, 1200.0], size=(6, 20, 20)).astype(np.float32))
    mr = _volume(rng.integers(0, 256, (6, 20, 20)).astype(np.uint8))
    photo = _volume(rng.integers(0, 256, (20, 20, 3)).astype(np.uint8), rgb=True)
    assert set(CT_PRESETS) <= set(window_presets_for(ct)) and not set(PERCENTILE_PRESETS) & set(window_presets_for(ct))
    assert not set(CT_PRESETS) & set(window_presets_for(mr)) and set(PERCENTILE_PRESETS) <= set(window_presets_for(mr))
    assert window_presets_for(photo) == ("auto", "full range")
    assert preset_window(ct, "brain (CT)") == (80.0, 40.0)
    with pytest.raises(ParameterError, match="not CT-like"):
        preset_window(mr, "brain (CT)")
    window, level = preset_window(mr, "percentiles 5–95")
    lo, hi = np.percentile(mr.array(), [5, 95])
    assert window == pytest.approx(hi - lo) and level == pytest.approx((hi + lo) / 2)


def test_dragging_down_darkens_and_right_lowers_contrast():
    """What the README says: down = higher level = darker; right = wider window."""
    grey = np.array([[100.0, 150.0]])
    w0, l0 = 100.0, 125.0
    w_down, l_down = adjust_window(w0, l0, 0.0, 20.0, 1.0)
    w_right, l_right = adjust_window(w0, l0, 20.0, 0.0, 1.0)
    show = lambda wl: render_slice("fixed", grey, None, wl, wl, OverlaySettings(), (1.0, 1.0)).astype(int)  # noqa: E731
    assert (show((w_down, l_down)) < show((w0, l0))).all()
    assert np.ptp(show((w_right, l_right))) < np.ptp(show((w0, l0)))


def test_model_specific_parameters_apply_only_to_their_models():
    fields = {f.name: f for f in dataclasses.fields(TransformParams)}
    assert not applies_to(fields["grid_spacing_mm"], "affine") and applies_to(fields["grid_spacing_mm"], "bspline")
    assert not applies_to(fields["field_smoothing_mm"], "affine")
    assert applies_to(fields["field_smoothing_mm"], "displacement") and applies_to(fields["field_smoothing_mm"], "demons")
    assert applies_to(fields["kind"], "affine")
    for f in fields.values():
        assert set(f.metadata.get("models", TRANSFORMS)) <= set(TRANSFORMS), f.name


def test_qa_tables_use_plain_labels_with_an_explanation():
    e = Evaluation.__new__(Evaluation)  # only the fields `tables` reads
    for name, value in {"jacobian_stats": dict.fromkeys(("min", "max", "mean", "folding_voxels", "folding_percent"), 1.0),
                        "displacement_stats": {"mean": 18.75, "p95": 20.0, "max": 22.0},
                        "similarity_before": {"mutual_information": 0.1, "correlation": 0.2, "overlap_percent": 80.0},
                        "similarity_after": {"mutual_information": 0.3, "correlation": 0.4, "overlap_percent": 87.99},
                        "dice": None, "landmark_rows": None, "inverse_consistency": None}.items():
        object.__setattr__(e, name, value)
    labels = [row[0] for _name, (_h, rows) in e.tables.items() for row in rows]
    assert "Overlap %" not in labels and not any(label.startswith("Displacement") for label in labels)
    moved = [label for label in labels if label.startswith("Points moved")]
    overlap = [label for label in labels if "covered by the moving image" in label]
    assert len(moved) == 3 and len(overlap) == 1
    assert all("not an error" in MEASURE_HELP[label] for label in moved) and "%" in overlap[0]
    assert MEASURE_HELP[overlap[0]]


def test_the_report_names_levels_as_the_window_does():
    history = [{"stage": 0, "stage_name": "affine", "level": lv, "iteration": i, "metric": -0.1 * i}
               for lv in (0, 1) for i in range(3)] + [{"stage": 1, "stage_name": "", "level": 0, "iteration": 0, "metric": -1.0}]
    svg = metric_curve_svg(history)
    assert "affine L1" in svg and "affine L2" in svg and "stage 2 L1" in svg
    assert "L0" not in svg and "stage 0" not in svg
