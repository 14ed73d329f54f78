"""A registration QA report a person can file: one self-contained HTML page.

Everything is inside the file (pictures as base64 PNG, charts as inline SVG, CSS
inline), so it can be mailed, archived or attached to a lab notebook and opens in
any browser without the data. Contents: verdict flags, the summary numbers,
checkerboards in three planes before and after, the deformation grid, the Jacobian
determinant map and histogram, the metric curve of the run, all tables, the
parameters and the software versions.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from regviewer.core.atomic import atomic_write_text
from regviewer.core.errors import ImageWriteError
from regviewer.core.imaging.image import as_volume
from regviewer.core.qa.evaluation import Evaluation, software_versions
from regviewer.core.qa.jacobian_colours import jacobian_log2_range
from regviewer.core.qa.report_images import checkerboard_pictures, grid_pictures, jacobian_pictures
from regviewer.core.qa.report_svg import colour_bar_svg, histogram_svg, metric_curve_svg

PICTURE_WIDTH = 330  # px of the longer side of each slice picture (three fit side by side)

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1120px;color:#222}
h1{font-size:24px;margin-bottom:4px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.meta{color:#555;font-size:13px} .meta code{font-size:12px}
.flags{border-left:5px solid #d98c00;background:#fff6e5;padding:8px 14px} .ok{border-left:5px solid #2e8b57;background:#eef8f1;padding:8px 14px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px} th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0} figcaption{font-size:12px;color:#444;text-align:center}
.pic{position:relative;background:#000} .pic img{display:block} .pic svg.over{position:absolute;left:0;top:0}
.pair{display:flex;gap:6px} pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto;max-height:420px}
.note{font-size:12px;color:#555}
"""


def write_report(evaluation: Evaluation, path, fixed=None, moving=None, transform: sitk.Transform | None = None) -> Path:
    """Write the HTML report of `evaluation` to `path` (atomically) and return the path.

    `fixed`, `moving` and `transform` (fixed → moving) default to the evaluation's own;
    pass them to picture other images (e.g. the full-resolution originals).
    """
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ImageWriteError(p, "a report is an HTML file; give a name ending in .html")
    fixed_v = as_volume(fixed) if fixed is not None else evaluation.fixed
    moving_v = as_volume(moving) if moving is not None else evaluation.moving
    tx = transform if transform is not None else evaluation.transform
    page = render_report(evaluation, fixed_v, moving_v, tx)
    try:
        atomic_write_text(p, page)
    except OSError as exc:
        raise ImageWriteError(p, exc.strerror or str(exc)) from None
    return p


def render_report(evaluation: Evaluation, fixed_v, moving_v, tx: sitk.Transform) -> str:
    """The report as one HTML string."""
    e = evaluation
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Registration QA report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Registration quality report</h1>",
        _meta(e),
        _flags(e),
        "<h2>Summary</h2>",
        _summary_table(e),
    ]
    planes = "three planes" if fixed_v.dimension == 3 else "the image plane"
    parts.append(f"<h2>Checkerboards: before and after</h2><p class='note'>Fixed and moving in alternating "
                 f"20 mm squares, middle slice of {planes}. Edges that run straight across square borders mean good "
                 "alignment. <b>Before</b>: the moving image as it lies (identity); <b>after</b>: through the transform.</p>")
    boards = checkerboard_pictures(fixed_v, moving_v, tx, width=PICTURE_WIDTH)
    parts.append("<div class='row'>" + "".join(before.html() for before, _ in boards) + "</div>")
    parts.append("<div class='row'>" + "".join(after.html() for _, after in boards) + "</div>")
    jac_values = e.jacobian_values()
    log2_range = jacobian_log2_range(jac_values)
    parts.append("<h2>Deformation</h2><p class='note'>Grid: a regular 8 mm grid on the fixed image, each point moved "
                 "to where the transform samples the moving image (straight lines = affine). Jacobian determinant: "
                 "local volume change, blue &lt; 1 (shrinks) … clear = 1 … red &gt; 1 (grows); yellow marks folding "
                 f"(≤ 0). The colour scale is fitted to this transform (full colour at ×{2 ** -log2_range:.3g} "
                 f"and ×{2 ** log2_range:.3g}).</p>")
    parts.append("<div class='row'>" + "".join(pic.html() for pic in grid_pictures(fixed_v, tx, width=PICTURE_WIDTH)) + "</div>")
    parts.append("<div class='row'>" + "".join(
        pic.html() for pic in jacobian_pictures(fixed_v, e.jacobian, log2_range, width=PICTURE_WIDTH)) + "</div>")
    parts.append(colour_bar_svg(log2_range))
    parts.append("<h3>Histogram of Jacobian determinants" + (" (inside the mask)" if e.mask is not None else "") + "</h3>")
    parts.append(histogram_svg(jac_values))
    if e.history:
        parts.append("<h2>Metric during the run</h2>")
        parts.append(metric_curve_svg(e.history))
        parts.append(f"<p class='note'>{len(e.history)} iterations; final metric {e.history[-1]['metric']:.6g}. "
                     "Dashed lines: a new stage or pyramid level starts.</p>")
    parts.append("<h2>Tables</h2>")
    for name, (headers, rows) in e.tables.items():
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(headers, rows))
    parts.append("<h2>Parameters</h2>")
    if e.params:
        parts.append("<pre>" + html.escape(json.dumps(e.params, indent=2, default=str)) + "</pre>")
    else:
        parts.append("<p class='note'>No registration parameters were given (e.g. a transform from another tool).</p>")
    parts.append("<h2>Software</h2>" + _table(["software", "version"], [[k, v] for k, v in software_versions().items()]))
    parts.append("<p class='note'>Numbers in JSON form: <code>regviewer evaluate … --json qa.json</code>.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _meta(e: Evaluation) -> str:
    rows = [
        ("Fixed image", e.fixed.path or e.fixed.name, f"{e.fixed.dimension}D, size {e.fixed.size}, spacing {tuple(round(s, 3) for s in e.fixed.spacing)} mm"),
        ("Moving image", e.moving.path or e.moving.name, f"{e.moving.dimension}D, size {e.moving.size}, spacing {tuple(round(s, 3) for s in e.moving.spacing)} mm"),
        ("Transform", e.transform_path or "(in memory)", e.transform.GetName()),
    ]
    body = "".join(f"<div><b>{a}:</b> <code>{html.escape(str(b))}</code> — {html.escape(c)}</div>" for a, b, c in rows)
    return (
        f"<div class='meta'>{body}<div>The transform maps FIXED points to MOVING points (ITK resampling direction, LPS mm). "
        f"Created {html.escape(e.created)}; evaluation took {e.elapsed_s:.1f} s.</div></div>"
    )


def _flags(e: Evaluation) -> str:
    flags = e.flags
    if not flags:
        return "<div class='ok'><b>No warning signs found</b> by the checks below (folding, extreme volume change, similarity, overlap, labels, landmarks).</div>"
    return "<div class='flags'><b>Look closer:</b><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in flags) + "</ul></div>"


def _summary_table(e: Evaluation) -> str:
    js, sa, sb = e.jacobian_stats, e.similarity_after, e.similarity_before
    rows = [
        ["Folding (det ≤ 0)", f"{js['folding_percent']:.4g} % ({js['folding_voxels']} voxels)" if js["folding_percent"] is not None else "—"],
        ["Jacobian determinant range", f"{_fmt(js['min'])} … {_fmt(js['max'])}"],
        ["Mutual information before → after", f"{_fmt(sb['mutual_information'])} → {_fmt(sa['mutual_information'])}"],
        ["Correlation before → after", f"{_fmt(sb['correlation'])} → {_fmt(sa['correlation'])}"],
        ["Points moved by the transform, mean / max (mm; the correction, not an error)", f"{_fmt(e.displacement_stats['mean'])} / {_fmt(e.displacement_stats['max'])}"],
    ]
    if e.dice:
        rows.append(["Dice mean over labels", _fmt(float(np.mean(list(e.dice.values()))))])
    if e.landmark_summary and e.landmark_summary.get("count"):
        ls = e.landmark_summary
        rows.append(["Landmark TRE mean / max (mm)", f"{_fmt(ls['mean_mm'])} / {_fmt(ls['max_mm'])} ({ls['count']} pairs)"])
    if e.inverse_consistency:
        rows.append(["Inverse consistency mean / p95 (mm)", f"{_fmt(e.inverse_consistency['mean'])} / {_fmt(e.inverse_consistency['p95'])}"])
    if e.mask is not None:
        rows.append(["Region", "inside the fixed mask"])
    return _table(["measure", "value"], rows)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "∞" if v > 0 else "—"
        return f"{float(v):.4g}"
    return str(v)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
