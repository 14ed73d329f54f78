"""The metric plot re-ranges its axes rarely while a run's metric keeps falling."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def test_a_falling_metric_changes_the_y_range_rarely_and_stays_in_view(qtbot):
    from regviewer.gui.widgets.metric_plot import MetricPlot

    plot = MetricPlot()
    qtbot.addWidget(plot)
    plot.min_redraw_s = 0.0  # redraw at every batch, as the worst case
    box = plot.plot.getPlotItem().getViewBox()
    metric = -0.2 - 1.3 * (1 - np.exp(-np.arange(600) / 150.0))  # a typical MI run: falls, then flattens
    ranges = set()
    for i in range(0, 600, 10):
        plot.add_points(SimpleNamespace(stage=0, stage_name="affine", level=0, metric=m) for m in metric[i:i + 10])
        (_, _), (y0, y1) = box.viewRange()
        ranges.add((round(y0, 9), round(y1, 9)))
        assert y0 <= metric[:i + 10].min() and metric[:i + 10].max() <= y1  # every point in view
    assert len(ranges) <= 8  # of 60 redraws (it re-ranged at nearly every one)


def test_a_growing_run_widens_the_iteration_axis_rarely_and_keeps_it_in_view(qtbot):
    """Each new x range re-letters both axes (about 5 ms of the GUI thread each time during a live run)."""
    from regviewer.gui.widgets.metric_plot import MetricPlot

    plot = MetricPlot()
    qtbot.addWidget(plot)
    plot.min_redraw_s = 0.0
    box = plot.plot.getPlotItem().getViewBox()
    ranges = set()
    for i in range(0, 550, 5):
        plot.add_points(SimpleNamespace(stage=0, stage_name="affine", level=0, metric=-float(i + k)) for k in range(5))
        (x0, x1), _ = box.viewRange()
        ranges.add((round(x0, 6), round(x1, 6)))
        assert x0 <= 0 and i + 4 <= x1
    assert len(ranges) <= 6  # 550 iterations, 110 redraws
