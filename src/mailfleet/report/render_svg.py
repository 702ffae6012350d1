"""Small inline SVG charts for the static report: bars (stacked or grouped), a donut, a heat grid.

Pure: data in, SVG text out. No JavaScript and no fonts or images from anywhere: the report
opens offline and survives being attached to an e-mail. Every chart carries a <title> per mark
(hover text) and an aria-label, and draws nothing misleading when data is missing: callers show
an empty state instead of an empty axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = {
    "pass": "#2f9e6e", "fail": "#d64545", "delivered": "#2f9e6e", "deferred": "#e3a13b",
    "bounced": "#c2410c", "rejected": "#7c5cbf", "bulk": "#4f7cd6", "transactional": "#14a3a3",
    "none": "#2f9e6e", "quarantine": "#e3a13b", "reject": "#d64545",
}
CYCLE = ("#4f7cd6", "#14a3a3", "#e3a13b", "#7c5cbf", "#d64545", "#2f9e6e", "#c2410c", "#8a94a6", "#b5487d",
         "#3b8fc2")
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"


def color_for(name: str, index: int) -> str:
    return PALETTE.get(str(name).lower(), CYCLE[index % len(CYCLE)])


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def format_number(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:.1f} h"
        if value >= 60:
            return f"{value / 60:.1f} min"
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u2009")
    value = int(value)
    if abs(value) >= 10_000_000:
        return f"{value / 1_000_000:.0f} M"
    return f"{value:,}".replace(",", "\u2009")


def bar_chart(categories: Sequence[str], series: Mapping[str, Sequence[float]], *, stacked: bool = True,
              unit: str = "", width: int = 640, height: int = 240, label: str = "") -> str:
    """Vertical bars per category; several series stacked (counts) or side by side (rates, delays)."""
    names = list(series)
    n = max(len(categories), 1)
    left, right, top, bottom = 64, 8, 10, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    if stacked:
        peak = max((sum(series[s][i] or 0 for s in names) for i in range(len(categories))), default=0)
    else:
        peak = max((v or 0 for s in names for v in series[s]), default=0)
    top_value = _nice_max(float(peak))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="{MUTED}">'
                     f'{escape(format_number(value if value % 1 else int(value), unit))}</text>')
    slot = plot_w / n
    bar_w = max(2.0, min(46.0, slot * 0.7))
    label_every = max(1, math.ceil(n / 12))
    for i, category in enumerate(categories):
        x0 = left + slot * i + (slot - bar_w) / 2
        base = top + plot_h
        each = bar_w / max(len(names), 1)
        for s_index, name in enumerate(names):
            value = float(series[name][i] or 0)
            h = plot_h * value / top_value
            if value <= 0:
                continue
            x = x0 if stacked else x0 + each * s_index
            w = bar_w if stacked else each
            y = base - h if stacked else top + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w - 0.5, 1):.1f}" height="{h:.1f}" rx="1.5" '
                         f'fill="{color_for(name, s_index)}"><title>{escape(category)} · {escape(name)}: '
                         f'{escape(format_number(value, unit))}</title></rect>')
            if stacked:
                base -= h
        if i % label_every == 0:
            parts.append(f'<text x="{left + slot * i + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'font-size="11" fill="{MUTED}">{escape(category)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{INK}" '
                 'stroke-width="0.6"/>')
    x = left
    for s_index, name in enumerate(names):
        parts.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" rx="2" fill="{color_for(name, s_index)}"/>'
                     f'<text x="{x + 14}" y="{height - 5}" font-size="11" fill="{INK}">{escape(name)}</text>')
        x += 22 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def donut(items: Sequence[tuple[str, float]], *, size: int = 170, label: str = "", unit: str = "") -> str:
    """A donut with the largest share's percentage in the middle, and a legend beside it."""
    total = sum(max(v, 0) for _, v in items) or 1
    r, inner = size / 2 - 4, size / 2 - 30
    cx = cy = size / 2
    width = size + 250
    parts = [f'<svg class="chart donut" viewBox="0 0 {width} {size}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    angle = -math.pi / 2
    for index, (name, value) in enumerate(items):
        share = max(value, 0) / total
        if share <= 0:
            continue
        color = color_for(name, index)
        tip = f"<title>{escape(name)}: {escape(format_number(value, unit))} ({share * 100:.1f} %)</title>"
        if share >= 0.9999:
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{(r + inner) / 2:.1f}" fill="none" stroke="{color}" '
                         f'stroke-width="{r - inner:.1f}">{tip}</circle>')
            continue
        end = angle + share * 2 * math.pi
        large = 1 if share > 0.5 else 0
        p1 = (cx + r * math.cos(angle), cy + r * math.sin(angle))
        p2 = (cx + r * math.cos(end), cy + r * math.sin(end))
        p3 = (cx + inner * math.cos(end), cy + inner * math.sin(end))
        p4 = (cx + inner * math.cos(angle), cy + inner * math.sin(angle))
        parts.append(f'<path d="M{p1[0]:.2f},{p1[1]:.2f} A{r},{r} 0 {large} 1 {p2[0]:.2f},{p2[1]:.2f} '
                     f'L{p3[0]:.2f},{p3[1]:.2f} A{inner},{inner} 0 {large} 0 {p4[0]:.2f},{p4[1]:.2f} Z" '
                     f'fill="{color}">{tip}</path>')
        angle = end
    if items:
        top_name, top_value = max(items, key=lambda item: item[1])
        parts.append(f'<text x="{cx}" y="{cy + 2}" text-anchor="middle" font-size="20" font-weight="600" '
                     f'fill="{INK}">{100 * top_value / total:.0f}%</text>'
                     f'<text x="{cx}" y="{cy + 18}" text-anchor="middle" font-size="11" fill="{MUTED}">'
                     f'{escape(top_name)}</text>')
    for index, (name, value) in enumerate(items[:8]):
        y = 22 + index * 20
        parts.append(f'<rect x="{size + 14}" y="{y - 10}" width="11" height="11" rx="2" fill="{color_for(name, index)}"/>'
                     f'<text x="{size + 31}" y="{y}" font-size="12" fill="{INK}">{escape(name)}</text>'
                     f'<text x="{width - 4}" y="{y}" font-size="12" text-anchor="end" fill="{MUTED}">'
                     f'{escape(format_number(value, unit))} · {100 * max(value, 0) / total:.0f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rate_color(rate: float) -> str:
    """Red (0 %) through amber to green (100 %)."""
    rate = min(max(rate, 0.0), 100.0) / 100
    if rate < 0.5:
        a, b, t = (214, 69, 69), (227, 161, 59), rate / 0.5
    else:
        a, b, t = (227, 161, 59), (47, 158, 110), (rate - 0.5) / 0.5
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def heat_grid(rows: Sequence[str], columns: Sequence[str], values: Mapping[tuple[str, str], float], *,
              label: str = "") -> str:
    """Rows x columns of cells coloured by a 0-100 rate (pass rate per source per day); blank = no data."""
    left, top, cell_w, cell_h = 150, 84, max(14, min(40, 620 // max(len(columns), 1))), 20
    width = left + cell_w * len(columns) + 70  # room for the last rotated date label
    height = top + cell_h * len(rows) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg" style="max-width:{width}px">']
    for c, column in enumerate(columns):
        x = left + c * cell_w + cell_w / 2
        parts.append(f'<text transform="translate({x:.1f},{top - 6}) rotate(-50)" font-size="10" fill="{MUTED}">'
                     f'{escape(column)}</text>')
    for r, row in enumerate(rows):
        y = top + r * cell_h
        parts.append(f'<text x="{left - 8}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end" font-size="11" '
                     f'font-family="ui-monospace, SFMono-Regular, Menlo, monospace" fill="{INK}">{escape(row)}</text>')
        for c, column in enumerate(columns):
            value = values.get((row, column))
            x = left + c * cell_w
            if value is None:
                parts.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" rx="3" '
                             f'fill="#f3f4f6"/>')
            else:
                parts.append(f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" rx="3" '
                             f'fill="{_rate_color(value)}"><title>{escape(row)} on {escape(column)}: '
                             f'{value:.1f} % pass</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def meter(value: float, peak: float, color: str = "#4f7cd6") -> str:
    """An inline bar for table cells (share of the column's largest value)."""
    share = 0 if peak <= 0 else max(0.0, min(1.0, value / peak))
    return (f'<svg class="meter" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" '
            f'xmlns="http://www.w3.org/2000/svg"><rect width="100" height="8" rx="2" fill="#eef0f3"/>'
            f'<rect width="{100 * share:.1f}" height="8" rx="2" fill="{color}"/></svg>')
