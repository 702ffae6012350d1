"""The static report page: a summary with what needs attention, then the dashboards' views as charts.

Pure: a ``Report`` in, one self-contained HTML document out (inline CSS and SVG, no script, no
fonts or images fetched from anywhere). Panels are found by their ids in the dashboards, so a
retitled panel keeps its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from mailfleet.monitoring.render_dashboards import BULK_TRANSPORT, TX_DELAY_THRESHOLD
from mailfleet.report.model import PanelResult, Report, Section
from mailfleet.report.render_svg import bar_chart, donut, format_number, heat_grid, meter

PASS_RATE_WARN = 95.0  # a domain below this DMARC pass rate is listed under "needs attention"
DEFERRAL_RATE_WARN = 10.0  # a recipient domain deferring more than this share of attempts
TABLE_ROWS = 25
HEAT_DAYS = 35  # the heat grid shows the latest days with reports, so cells stay readable
MS_COLUMNS = {"first_seen", "last_seen", "last_report"}
SECONDS_COLUMNS = {"p50", "p95", "p99", "max"}
PERCENT_COLUMNS = {"pass_rate", "deferral_rate"}
MONO_COLUMNS = {"source_ip", "reason", "host", "hosts", "ptr"}


def _date(epoch: float | None, fmt: str = "%Y-%m-%d") -> str:
    if epoch is None:
        return "–"
    return datetime.fromtimestamp(float(epoch), timezone.utc).strftime(fmt)


def _day_labels(days: Sequence[int]) -> list[str]:
    years = {_date(d, "%Y") for d in days}
    return [_date(d, "%b %d" if len(years) == 1 else "%Y-%m-%d") for d in days]


# ------------------------------------------------------------------ small pieces

def _empty(message: str) -> str:
    return f'<div class="empty">{escape(message)}</div>'


def _card(title: str, body: str, *, wide: bool = False, note: str = "") -> str:
    cls = "card wide" if wide else "card"
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section class="{cls}"><h3>{escape(title)}</h3>{note_html}{body}</section>'


def _pill(rate: float | None) -> str:
    if rate is None:
        return "–"
    cls = "good" if rate >= 99 else "warn" if rate >= PASS_RATE_WARN else "bad"
    return f'<span class="pill {cls}">{rate:.1f} %</span>'


def _cell(column: str, value: Any, peak: float) -> str:
    if value is None or value == "":
        return '<td class="muted">–</td>'
    if column in MS_COLUMNS:
        return f'<td class="num">{_date(float(value) / 1000)}</td>'
    if column == "pass_rate":
        return f'<td class="num">{_pill(float(value))}</td>'
    if column == "deferral_rate":
        cls = " bad-text" if float(value) > DEFERRAL_RATE_WARN else ""
        return f'<td class="num{cls}">{float(value):.1f} %</td>'
    if column in SECONDS_COLUMNS:
        return f'<td class="num">{escape(format_number(float(value), "s"))}</td>'
    if isinstance(value, (int, float)):
        bar = meter(float(value), peak) if column in ("messages", "attempts", "delivered", "deliveries") else ""
        return f'<td class="num">{bar}{escape(format_number(value))}</td>'
    cls = ' class="mono"' if column in MONO_COLUMNS else ""
    return f"<td{cls}>{escape(str(value))}</td>"


def _table(result: PanelResult | None, *, limit: int = TABLE_ROWS) -> str:
    if result is None or not result.rows:
        return _empty("No data in this range.")
    peaks = {c: max((float(r[i]) for r in result.rows if isinstance(r[i], (int, float))), default=0.0)
             for i, c in enumerate(result.columns)}
    head = "".join(f'<th class="{"num" if _numeric(result, i) else ""}">{escape(c.replace("_", " "))}</th>'
                   for i, c in enumerate(result.columns))
    body = "".join("<tr>" + "".join(_cell(c, row[i], peaks[c]) for i, c in enumerate(result.columns)) + "</tr>"
                   for row in result.rows[:limit])
    more = len(result.rows) - limit
    foot = f'<p class="more">… and {more} more rows (Grafana shows them all).</p>' if more > 0 else ""
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{foot}'


def _numeric(result: PanelResult, index: int) -> bool:
    return any(isinstance(row[index], (int, float)) for row in result.rows)


def _bars(result: PanelResult | None, *, stacked: bool = True, wide: bool = False) -> str:
    """A time-series panel (wide: time, a, b...; or long: time, label, value) as bars per day."""
    if result is None or not result.rows:
        return _empty("No data in this range.")
    cols = result.columns
    if len(cols) == 3 and all(isinstance(r[1], str) for r in result.rows):  # long format: pivot
        days = sorted({r[0] for r in result.rows})
        names = sorted({r[1] for r in result.rows})
        table = {(r[0], r[1]): float(r[2] or 0) for r in result.rows}
        series = {n: [table.get((d, n), 0.0) for d in days] for n in names}
    else:
        days = [r[0] for r in result.rows]
        series = {c: [float(r[i] or 0) for r in result.rows] for i, c in enumerate(cols) if i > 0}
    return bar_chart(_day_labels(days), series, stacked=stacked, unit=result.query.unit, label=result.query.title,
                     width=1240 if wide else 600, height=260 if wide else 240)


def _donut(result: PanelResult | None) -> str:
    if result is None or not result.rows:
        return _empty("No data in this range.")
    return donut([(str(r[0]), float(r[1] or 0)) for r in result.rows], label=result.query.title)


def _heat(result: PanelResult | None) -> str:
    if result is None or not result.rows:
        return _empty("No data in this range.")
    every_day = sorted({r[0] for r in result.rows})
    days = every_day[-HEAT_DAYS:]
    labels = dict(zip(days, _day_labels(days)))
    shown = [r for r in result.rows if r[0] in labels]
    volume: dict[str, int] = {}
    for r in shown:
        volume[r[1]] = volume.get(r[1], 0) + 1
    sources = sorted(volume, key=lambda s: (-volume[s], s))
    values = {(r[1], labels[r[0]]): float(r[2]) for r in shown if r[2] is not None}
    legend = ('<div class="legend"><span class="sw" style="background:#d64545"></span>0 % '
              '<span class="sw" style="background:#e3a13b"></span>50 % '
              '<span class="sw" style="background:#2f9e6e"></span>100 % pass'
              '<span class="sw" style="background:#f3f4f6"></span>no report'
              + (f' · the latest {len(days)} of {len(every_day)} days with reports' if len(every_day) > len(days) else '')
              + '</div>')
    return heat_grid(sources, [labels[d] for d in days], values, label=result.query.title) + legend


# ------------------------------------------------------------------ summary and attention

def _rows(section: Section | None, panel_id: int) -> list[dict[str, Any]]:
    if section is None:
        return []
    result = section.panel(panel_id)
    return result.dicts() if result is not None else []


def _first(section: Section | None, panel_id: int, column: str) -> Any:
    rows = _rows(section, panel_id)
    return rows[0].get(column) if rows else None


def tx_p95(section: Section | None) -> float | None:
    """The worst p95 of ``b`` over the transactional (non-bulk) transports."""
    values = [float(r["p95"]) for r in _rows(section, 6)
              if r.get("transport") != BULK_TRANSPORT and r.get("p95") is not None]
    return max(values) if values else None


def attention_items(report: Report) -> list[tuple[str, str]]:
    """(severity, text) for what a person should look at first: bad, then warn."""
    items: list[tuple[str, str]] = []
    dmarc, flow = report.dmarc, report.mailflow
    new = _rows(dmarc, 13)
    if new:
        shown = ", ".join(f"{r['source_ip']} ({r['domain']}, {format_number(r['fail'])} failed)" for r in new[:4])
        items.append(("bad", f"{len(new)} new source(s) failing DMARC: {shown}"
                             f"{' …' if len(new) > 4 else ''}. A new service sending as you, or spoofing."))
    for r in _rows(dmarc, 11):
        if r.get("pass_rate") is not None and float(r["pass_rate"]) < PASS_RATE_WARN:
            items.append(("bad" if float(r["pass_rate"]) < 80 else "warn",
                          f"{r['domain']}: only {float(r['pass_rate']):.1f} % of {format_number(r['messages'])} "
                          "messages pass DMARC."))
    loose = sorted({r["domain"] for r in _rows(dmarc, 14) if r.get("p") == "none"})
    if loose:
        items.append(("warn", f"p=none (monitoring only, spoofed mail is delivered) for: {', '.join(loose[:6])}"
                              f"{' …' if len(loose) > 6 else ''}."))
    worst = tx_p95(flow)
    if worst is not None and worst > TX_DELAY_THRESHOLD:
        items.append(("bad", f"Transactional mail waits {format_number(worst, 's')} (p95) in the active queue, over "
                             f"the {format_number(TX_DELAY_THRESHOLD, 's')} threshold: is bulk starving it?"))
    for r in _rows(flow, 4):
        attempts = sum(int(r.get(k) or 0) for k in ("delivered", "deferred", "bounced"))
        if r.get("deferral_rate") and float(r["deferral_rate"]) > DEFERRAL_RATE_WARN and attempts >= 5:
            items.append(("warn", f"{r['domain'] or '(no domain)'} defers {float(r['deferral_rate']):.0f} % of "
                                  f"{attempts} attempts."))
    reasons = _rows(flow, 5)
    if reasons:
        top = reasons[0]
        items.append(("warn", f"Most frequent deferral ({format_number(top['attempts'])} attempts): "
                              f"“{top['reason']}”."))
    items.sort(key=lambda item: item[0] != "bad")
    return items


def _kpi(label: str, value: str, tone: str = "", sub: str = "") -> str:
    sub_html = f'<div class="sub">{escape(sub)}</div>' if sub else ""
    return f'<div class="kpi {tone}"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>{sub_html}</div>'


def _summary(report: Report) -> str:
    kpis = []
    dmarc, flow = report.dmarc, report.mailflow
    if dmarc is not None:
        rate = _first(dmarc, 2, "pass_rate")
        new = len(_rows(dmarc, 13))
        kpis.append(_kpi("DMARC messages", format_number(_first(dmarc, 1, "messages") or 0),
                         sub=f"{format_number(_first(dmarc, 4, 'reports') or 0)} reports"))
        kpis.append(_kpi("DMARC pass rate", format_number(rate, "percent") if rate is not None else "–",
                         "good" if (rate or 0) >= 99 else "warn" if (rate or 0) >= PASS_RATE_WARN else "bad"))
        kpis.append(_kpi("Failing sources", format_number(_first(dmarc, 3, "failing_sources") or 0),
                         "bad" if new else "", sub=f"{new} new"))
    if flow is not None:
        totals = _rows(flow, 1)[0] if _rows(flow, 1) else {}
        kpis.append(_kpi("Delivered", format_number(totals.get("delivered") or 0), "good"))
        kpis.append(_kpi("Deferred", format_number(totals.get("deferred") or 0),
                         "warn" if totals.get("deferred") else ""))
        kpis.append(_kpi("Bounced", format_number(totals.get("bounced") or 0),
                         "bad" if totals.get("bounced") else ""))
        kpis.append(_kpi("Rejected", format_number(totals.get("rejected") or 0), sub="refused at SMTP"))
        worst = tx_p95(flow)
        kpis.append(_kpi("Transactional wait p95", format_number(worst, "s") if worst is not None else "–",
                         "bad" if worst is not None and worst > TX_DELAY_THRESHOLD else "good" if worst is not None else "",
                         sub=f"threshold {format_number(TX_DELAY_THRESHOLD, 's')}"))
    items = attention_items(report)
    if items:
        lis = "".join(f'<li class="{sev}"><span class="dot"></span>{escape(text)}</li>' for sev, text in items)
        tone = "attention" if any(sev == "bad" for sev, _ in items) else "attention warn"
        attention = f'<section class="{tone}"><h2>Needs attention</h2><ul>{lis}</ul></section>'
    elif dmarc is None and flow is None:
        attention = ""
    else:
        attention = ('<section class="attention clear"><h2>All clear</h2><p>No new failing sources, every domain '
                     'passes DMARC, transactional mail is not waiting.</p></section>')
    return f'<div class="kpis">{"".join(kpis)}</div>{attention}'


# ------------------------------------------------------------------ sections

def _dmarc_section(section: Section | None) -> str:
    if section is None:
        return ('<h2 id="dmarc">DMARC</h2>' + _empty("No DMARC store was given. Add --db with the file "
                "`mailfleet dmarc.ingest --db` or `dmarc.fetch --db` writes."))
    p = section.panel
    span = f"{_date(section.first)} → {_date(section.last)}" if section.first is not None else "no reports in range"
    head = f'<h2 id="dmarc">DMARC <span class="span">{escape(span)} · {escape(section.db)}</span></h2>'
    if section.first is None:
        return head + _empty("The DMARC store has no reports in this range. Ingest some with "
                             "`mailfleet dmarc.ingest` or let the monitoring host's dmarc.fetch timer run.")
    return head + "".join([
        '<div class="grid">',
        _card("Pass / fail per day", _bars(p(5), wide=True), wide=True),
        _card("Pass rate per source IP per day", _heat(p(6)), wide=True,
              note="The ten busiest sources; a red cell is a day a source failed DMARC."),
        '<div class="grid3">', _card("Disposition", _donut(p(7))), _card("DKIM alignment", _donut(p(8))),
        _card("SPF alignment", _donut(p(9))), "</div>",
        _card("New failing sources", _table(p(13)), wide=True,
              note="Failing, and never seen for the domain before this range."),
        _card("By domain", _table(p(11))), _card("By reporting organisation", _table(p(10))),
        _card("Published policies (as reported)", _table(p(14)), wide=True),
        _card("Sources", _table(p(12)), wide=True),
        "</div>"])


def _mailflow_section(section: Section | None) -> str:
    if section is None:
        return ('<h2 id="mailflow">Mail flow</h2>' + _empty("No Postfix log store was given. Add --db with the "
                "file `mailfleet logs.ingest --db` or `logs.pull --db` writes."))
    p = section.panel
    span = f"{_date(section.first)} → {_date(section.last)}" if section.first is not None else "no deliveries in range"
    head = f'<h2 id="mailflow">Mail flow <span class="span">{escape(span)} · {escape(section.db)}</span></h2>'
    if section.first is None:
        return head + _empty("The log store has no deliveries in this range. Pull logs with `mailfleet logs.pull`.")
    return head + "".join([
        '<div class="grid">',
        _card("Delivered / deferred / bounced / rejected per day", _bars(p(2), wide=True), wide=True),
        _card("Bulk vs transactional", _donut(p(7))),
        _card("Bulk vs transactional per day", _bars(p(8))),
        _card("Queue delay per transport", _table(p(6)),
              note="b of delays=a/b/c/d: seconds waiting in the active queue for a delivery agent."),
        _card("Queue delay p95 by class per day", _bars(p(9), stacked=False)),
        _card("Top deferral reasons", _table(p(5)), wide=True),
        _card("Per host and day", _table(p(3))), _card("Per recipient domain", _table(p(4))),
        "</div>"])


STYLE = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--good:#2f9e6e;--warn:#b7791f;--bad:#d64545}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1320px;margin:0 auto;padding:28px 28px 60px}
header{display:flex;justify-content:space-between;align-items:flex-end;border-bottom:1px solid var(--line);
padding-bottom:14px;margin-bottom:20px}
h1{font-size:26px;margin:0;letter-spacing:-.01em}
header .meta{color:var(--muted);text-align:right;font-size:13px}
h2{font-size:19px;margin:34px 0 12px}
h2 .span{font-weight:400;color:var(--muted);font-size:13px;margin-left:8px}
h3{font-size:14px;margin:0 0 10px;color:#374151}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(132px,1fr));gap:12px}
.kpi{background:#fff;border:1px solid var(--line);border-radius:10px;padding:12px 14px;border-top:3px solid #cbd5e1}
.kpi.good{border-top-color:var(--good)}.kpi.warn{border-top-color:#e3a13b}.kpi.bad{border-top-color:var(--bad)}
.kpi .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .value{font-size:26px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.kpi .sub{color:var(--muted);font-size:12px}
.attention{background:#fff;border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:10px;
padding:6px 18px 10px;margin-top:16px}
.attention.clear{border-left-color:var(--good)}.attention.warn{border-left-color:#e3a13b}
.attention h2{font-size:16px;margin:10px 0 6px}
.attention ul{margin:0;padding:0;list-style:none}
.attention li{padding:5px 0;display:flex;gap:10px;align-items:baseline}
.attention .dot{width:9px;height:9px;border-radius:50%;flex:none;background:#e3a13b;transform:translateY(-1px)}
.attention li.bad .dot{background:var(--bad)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px}
.grid3{grid-column:1/-1;display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card.wide{grid-column:1/-1}
.note{color:var(--muted);font-size:12px;margin:-6px 0 8px}
.chart{width:100%;height:auto;display:block}
.donut{max-width:420px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.04em;
border-bottom:1px solid var(--line);padding:6px 8px;white-space:nowrap}
td{padding:6px 8px;border-bottom:1px solid #f0f1f3;vertical-align:top}
tr:nth-child(even) td{background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;word-break:break-word}
.muted{color:var(--muted)}
.bad-text{color:var(--bad);font-weight:600}
.meter{width:54px;height:7px;margin-right:8px;vertical-align:middle}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600}
.pill.good{background:#e3f4ec;color:#1d7a52}.pill.warn{background:#fdf3dc;color:#8a5a12}
.pill.bad{background:#fbe4e4;color:#a42f2f}
.legend{color:var(--muted);font-size:12px;margin-top:6px;display:flex;gap:6px;align-items:center}
.legend .sw{display:inline-block;width:12px;height:12px;border-radius:3px;margin-left:10px}
.empty{background:#fff;border:1px dashed #cbd5e1;border-radius:10px;padding:18px;color:var(--muted);text-align:center}
.card .empty{border:none;padding:24px 8px}
.more{color:var(--muted);font-size:12px;margin:6px 0 0}
footer{color:var(--muted);font-size:12px;margin-top:40px;border-top:1px solid var(--line);padding-top:12px}
@media print{body{background:#fff}.card,.kpi{break-inside:avoid}}
"""


def render_report_html(report: Report, *, title: str = "Mail fleet report") -> str:
    generated = _date(report.generated_at, "%Y-%m-%d %H:%M UTC")
    scope = ("all data in the stores" if report.days is None
             else f"last {report.days} days ({_date(report.start)} → {_date(report.generated_at)})")
    body = "".join([
        f'<header><div><h1>{escape(title)}</h1><div class="meta" style="text-align:left">'
        f'Deliverability at a glance: DMARC reports and Postfix deliveries.</div></div>'
        f'<div class="meta">Generated {escape(generated)}<br>Range: {escape(scope)}</div></header>',
        _summary(report), _dmarc_section(report.dmarc), _mailflow_section(report.mailflow),
        '<footer>Made by <code>mailfleet report</code> from the same queries as the Grafana dashboards '
        '(Mailfleet · DMARC, Mailfleet · Mail flow). Days are UTC. Hover a bar or cell for its numbers.</footer>',
    ])
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><meta name="color-scheme" content="light">'
            f"<title>{escape(title)} · {escape(generated)}</title><style>{STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
