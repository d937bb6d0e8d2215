"""The drift report as one self-contained HTML page: a verdict, a table, an overlay plot per column.

Plots are inline SVG drawn here (no script, no stylesheet or font from elsewhere), so the file opens
anywhere, from a mail attachment too, and stays small (a few KB per column). Every text taken from
the data (column names, categories) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dativo_provider.ml.drift import ColumnDrift, DriftReport
    from dativo_provider.ml.drift_stats import NumericSample

#: Bars of a numeric column's histogram.
HISTOGRAM_BINS = 30
#: Categories drawn per column (the most frequent in either sample); the rest are one "other" bar.
PLOTTED_CATEGORIES = 12
_REF_COLOR, _CUR_COLOR = "#4c78a8", "#f58518"
_WIDTH, _HEIGHT, _PAD = 560, 180, 36


@dataclass(frozen=True)
class PlotData:
    """What the HTML report draws: shares per bin (numeric: ``edges``) or per category (``labels``)."""

    reference: list[float]
    current: list[float]
    edges: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def numeric_plot(reference: NumericSample, current: NumericSample) -> PlotData:
    """Shares of both samples in 30 equal bins between the 0.5th and 99.5th percentiles of both
    (values beyond fall in the end bins, so one outlier does not flatten the picture)."""
    low = min(_percentile(reference.values, 0.005), _percentile(current.values, 0.005))
    high = max(_percentile(reference.values, 0.995), _percentile(current.values, 0.995))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    return PlotData(_shares(reference.values, edges), _shares(current.values, edges), edges=edges.tolist())


def _percentile(values: np.ndarray, q: float) -> float:
    return float(values[min(values.size - 1, int(q * values.size))])


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    inner = np.searchsorted(values, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], inner, [values.size])))
    return (counts / values.size).tolist()


def category_plot(reference: Mapping[Any, int], current: Mapping[Any, int]) -> PlotData:
    ref_total, cur_total = sum(reference.values()) or 1, sum(current.values()) or 1
    keys = list(dict.fromkeys([*reference, *current]))
    keys.sort(key=lambda k: -max(reference.get(k, 0) / ref_total, current.get(k, 0) / cur_total))
    shown, rest = keys[:PLOTTED_CATEGORIES], keys[PLOTTED_CATEGORIES:]
    ref = [reference.get(k, 0) / ref_total for k in shown]
    cur = [current.get(k, 0) / cur_total for k in shown]
    labels = [str(k) for k in shown]
    if rest:
        ref.append(sum(reference.get(k, 0) for k in rest) / ref_total)
        cur.append(sum(current.get(k, 0) for k in rest) / cur_total)
        labels.append(f"({len(rest)} others)")
    return PlotData(ref, cur, labels=labels)


def render_html(report: DriftReport, title: str) -> str:
    esc = html.escape
    verdict = "Dataset drift" if report.dataset_drift else "No dataset drift"
    rows = "".join(_table_row(c) for c in report.columns)
    skipped = "".join(f"<li><b>{esc(name)}</b>: {esc(why)}</li>" for name, why in report.skipped.items())
    cards = "".join(_card(c) for c in report.columns)
    sources = " &nbsp;·&nbsp; ".join(
        f"{esc(which)}: {esc(_describe(meta))}" for which, meta in (("reference", report.reference),
                                                                   ("current", report.current)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1200px}}
h1{{font-size:22px;margin:0 0 4px}} .verdict{{font-size:18px;font-weight:600;padding:8px 12px;
border-radius:6px;display:inline-block;margin:8px 0}} .drift{{background:#fde2e1;color:#a61b1b}}
.ok{{background:#dff3e3;color:#17642b}} table{{border-collapse:collapse;font-size:13px;margin:12px 0}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}} th{{background:#f4f4f4}}
td.num{{text-align:right;font-variant-numeric:tabular-nums}} .yes{{color:#a61b1b;font-weight:600}}
.cards{{display:flex;flex-wrap:wrap;gap:12px}} .card{{border:1px solid #ddd;border-radius:6px;padding:8px;width:560px}}
.card h3{{font-size:14px;margin:0 0 4px}} .meta{{font-size:12px;color:#555}}
.key{{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}}
</style></head><body>
<h1>{esc(title)}</h1>
<div class="meta">{sources}</div>
<div class="verdict {'drift' if report.dataset_drift else 'ok'}">{verdict}: {len(report.drifted_columns)} of
{len(report.columns)} columns drifted ({report.share_drifted:.0%}; dataset drift at {report.drift_share:.0%})</div>
<div class="meta"><span class="key" style="background:{_REF_COLOR}"></span>reference
<span class="key" style="background:{_CUR_COLOR}"></span>current</div>
<table><tr><th>column</th><th>kind</th><th>test</th><th>value</th><th>threshold</th><th>drift</th>
<th>rows ref / cur</th><th>nulls ref / cur</th><th>new categories</th></tr>{rows}</table>
{f"<p>Not tested:</p><ul>{skipped}</ul>" if skipped else ""}
<div class="cards">{cards}</div>
</body></html>
"""


def _describe(meta: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta.items()) or "-"


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"


def _table_row(c: ColumnDrift) -> str:
    esc = html.escape
    new = f"{c.new_category_count} ({c.new_category_share:.1%} of rows)" if c.new_category_count else ""
    drift = '<span class="yes">yes</span>' if c.drifted else "no"
    return (f"<tr><td>{esc(c.column)}</td><td>{c.kind}</td><td>{c.stattest}</td><td class=num>{_fmt(c.value)}"
            f"</td><td class=num>{c.threshold:g}</td><td>{drift}</td><td class=num>{c.reference_rows:,} / "
            f"{c.current_rows:,}</td><td class=num>{c.reference_nulls:,} / {c.current_nulls:,}</td>"
            f"<td>{esc(new)}</td></tr>")


def _card(c: ColumnDrift) -> str:
    esc = html.escape
    stats = ", ".join(f"{k} {_fmt(v)}" for k, v in c.statistics.items())
    new = ""
    if c.new_categories:
        listed = ", ".join(c.new_categories)
        more = f" and {c.new_category_count - len(c.new_categories)} more" \
            if c.new_category_count > len(c.new_categories) else ""
        new = f"<div class=meta>new: {esc(listed)}{more}</div>"
    svg = _svg(c.plot) if c.plot is not None else ""
    verdict = '<span class="yes">drift</span>' if c.drifted else "no drift"
    return (f'<div class="card"><h3>{esc(c.column)} — {verdict}</h3><div class=meta>{c.stattest} '
            f"{_fmt(c.value)} (threshold {c.threshold:g}); {esc(stats)}</div>{new}{svg}</div>")


def _svg(plot: PlotData) -> str:
    """Reference and current shares as overlaid bars (numeric) or paired bars (categories)."""
    n = len(plot.reference)
    top = max([*plot.reference, *plot.current, 1e-12])
    inner_w, inner_h = _WIDTH - 2 * _PAD, _HEIGHT - 2 * _PAD
    slot = inner_w / max(n, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
             f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-size="10" font-family="sans-serif">',
             f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD}" y2="{_HEIGHT - _PAD}" '
             'stroke="#999"/>',
             f'<text x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{top:.0%}</text>',
             f'<text x="{_PAD - 4}" y="{_HEIGHT - _PAD}" text-anchor="end">0</text>']
    categorical = bool(plot.labels)
    for i, (ref, cur) in enumerate(zip(plot.reference, plot.current, strict=True)):
        x = _PAD + i * slot
        if categorical:
            half = slot * 0.4
            parts.append(_bar(x + slot * 0.1, half, ref, top, inner_h, _REF_COLOR, 1.0))
            parts.append(_bar(x + slot * 0.5, half, cur, top, inner_h, _CUR_COLOR, 1.0))
        else:
            parts.append(_bar(x, slot, ref, top, inner_h, _REF_COLOR, 0.55))
            parts.append(_bar(x, slot, cur, top, inner_h, _CUR_COLOR, 0.55))
    if categorical:
        for i, label in enumerate(plot.labels):
            short = label if len(label) <= 12 else label[:11] + "…"
            parts.append(f'<text x="{_PAD + (i + 0.5) * slot:.1f}" y="{_HEIGHT - _PAD + 12}" '
                         f'text-anchor="middle">{html.escape(short)}</text>')
    elif plot.edges:
        for x, value in ((_PAD, plot.edges[0]), (_WIDTH / 2, (plot.edges[0] + plot.edges[-1]) / 2),
                         (_WIDTH - _PAD, plot.edges[-1])):
            parts.append(f'<text x="{x:.1f}" y="{_HEIGHT - _PAD + 12}" text-anchor="middle">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bar(x: float, width: float, share: float, top: float, inner_h: float, color: str, opacity: float) -> str:
    height = inner_h * share / top
    if height <= 0:
        return ""
    return (f'<rect x="{x:.1f}" y="{_HEIGHT - _PAD - height:.1f}" width="{max(width - 1, 1):.1f}" '
            f'height="{height:.1f}" fill="{color}" fill-opacity="{opacity}"/>')
