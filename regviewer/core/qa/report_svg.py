"""Inline SVG charts for the QA report (no matplotlib): the metric curve of a run, a
histogram of Jacobian determinants and the Jacobian colour bar."""

from __future__ import annotations

import html

import numpy as np

from regviewer.core.qa.histogram import jacobian_histogram

from regviewer.core.registration.run_state import level_label, stage_label


def _nice(v: float) -> str:
    return f"{v:.4g}"


def metric_curve_svg(history: list[dict], width: int = 760, height: int = 260) -> str:
    """Metric against iteration (all stages and levels in order), with a dashed line and a
    label where a stage or pyramid level starts. Lower is better for ITK metrics."""
    metrics = np.array([h["metric"] for h in history], dtype=float)
    finite = np.isfinite(metrics)
    if not finite.any():
        return "<p>No metric values were recorded.</p>"
    left, right, top, bottom = 70, 15, 15, 35
    pw, ph = width - left - right, height - top - bottom
    lo, hi = float(metrics[finite].min()), float(metrics[finite].max())
    if hi <= lo:
        hi = lo + 1.0
    n = len(metrics)
    xs = left + (np.arange(n) / max(n - 1, 1)) * pw
    ys = top + (hi - metrics) / (hi - lo) * ph
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']
    last = None
    for i, h in enumerate(history):
        key = (h.get("stage"), h.get("level"))
        if key != last:
            x = xs[i]
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#999" stroke-dasharray="4 3"/>')
            label = f'{stage_label(h.get("stage") or 0, h.get("stage_name"))} {level_label(h.get("level") or 0)}'
            parts.append(f'<text x="{x + 3:.1f}" y="{top + 12}" font-size="10" fill="#555">{html.escape(label)}</text>')
            last = key
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y, ok in zip(xs, ys, finite) if ok)
    parts.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.5" points="{pts}"/>')
    for value, y in ((hi, top), (lo, top + ph)):
        parts.append(f'<text x="{left - 5}" y="{y + 4}" font-size="11" text-anchor="end">{_nice(value)}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">iteration 1</text>')
    parts.append(f'<text x="{left + pw}" y="{height - 8}" font-size="11" text-anchor="end">{n}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" font-size="11" text-anchor="middle">iterations (all stages)</text>')
    parts.append(f'<text x="14" y="{top + ph / 2}" font-size="11" transform="rotate(-90 14 {top + ph / 2})" text-anchor="middle">metric</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values: np.ndarray, width: int = 760, height: int = 220, bins: int = 60) -> str:
    """Histogram of Jacobian determinants (log count), bars at det <= 0 in the folding colour,
    a line at det = 1."""
    from regviewer.core.qa.jacobian_colours import FOLDING_RGB

    centres, counts, step = jacobian_histogram(values, bins)
    if counts.size == 0:
        return "<p>No values.</p>"
    edges = np.append(centres - step / 2.0, centres[-1] + step / 2.0)
    lo, hi = float(edges[0]), float(edges[-1])
    left, right, top, bottom = 55, 15, 10, 35
    pw, ph = width - left - right, height - top - bottom
    logc = np.log10(counts + 1.0)
    scale = ph / max(float(logc.max()), 1e-9)
    fold = "#%02x%02x%02x" % FOLDING_RGB
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="chart">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']

    def x_of(val: float) -> float:
        return left + (val - lo) / (hi - lo) * pw

    for c, a, b in zip(logc, edges[:-1], edges[1:]):
        if c <= 0:
            continue
        colour = fold if b <= 0 or a < 0 else "#6a8fc7"
        x0, x1 = x_of(a), x_of(b)
        parts.append(f'<rect x="{x0:.1f}" y="{top + ph - c * scale:.1f}" width="{max(x1 - x0 - 0.5, 0.5):.1f}" height="{c * scale:.1f}" fill="{colour}"/>')
    for val, label in ((1.0, "1"), (0.0, "0")):
        if lo <= val <= hi:
            x = x_of(val)
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#c33" stroke-width="1"/>')
            parts.append(f'<text x="{x:.1f}" y="{height - 20}" font-size="11" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{left}" y="{height - 5}" font-size="11">{_nice(lo)}</text>')
    parts.append(f'<text x="{left + pw}" y="{height - 5}" font-size="11" text-anchor="end">{_nice(hi)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 5}" font-size="11" text-anchor="middle">Jacobian determinant (log count)</text>')
    parts.append("</svg>")
    return "".join(parts)


def colour_bar_svg(log2_range: float = 2.0, width: int = 360, height: int = 46) -> str:
    """The Jacobian colour scale: 2**-r (blue) … 1 (white) … 2**r (red), folding in yellow."""
    from regviewer.core.qa.jacobian_colours import FOLDING_RGB, jacobian_rgba

    samples = 2.0 ** np.linspace(-log2_range, log2_range, 41)
    colours = jacobian_rgba(samples, log2_range)
    stops = "".join(
        f'<stop offset="{i / (len(samples) - 1):.3f}" stop-color="rgb({c[0]},{c[1]},{c[2]})"/>' for i, c in enumerate(colours)
    )
    fold = "rgb(%d,%d,%d)" % FOLDING_RGB
    bar_x, bar_w = 70, width - 80
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<defs><linearGradient id="jacbar">{stops}</linearGradient></defs>'
        f'<rect x="5" y="5" width="50" height="16" fill="{fold}" stroke="#666"/>'
        f'<text x="30" y="36" font-size="11" text-anchor="middle">folding ≤0</text>'
        f'<rect x="{bar_x}" y="5" width="{bar_w}" height="16" fill="url(#jacbar)" stroke="#666"/>'
        f'<text x="{bar_x}" y="36" font-size="11">{2.0 ** -log2_range:.3g}</text>'
        f'<text x="{bar_x + bar_w / 2}" y="36" font-size="11" text-anchor="middle">1 (volume kept)</text>'
        f'<text x="{bar_x + bar_w}" y="36" font-size="11" text-anchor="end">{2.0 ** log2_range:.3g}</text>'
        "</svg>"
    )
