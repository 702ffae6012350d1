"""Every panel's SQL, read from the committed dashboard JSON, against stores filled by real ingests.

One test per panel (parametrised from the JSON itself): the query runs with Grafana's macros
expanded as Grafana would, returns exactly the columns the panel declares, returns rows, and
has the shape its panel type needs (a time column for time series, one row for a stat, a label
and a number for a pie).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mailfleet.monitoring import render_dashboards as rd
from mailfleet.monitoring.parse_panels import PanelQuery, parse_panel_queries, parse_variables, render_query

DASHBOARDS = Path(rd.__file__).with_name("dashboards")
STORE_OF = {"mailfleet-dmarc": "dmarc_db", "mailfleet-mailflow": "logs_db"}
EVER = (0, 2**32)


def _load(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))


def _panels() -> list[PanelQuery]:
    return [q for name in ("dmarc.json", "mailflow.json") for q in parse_panel_queries(_load(name))]


def _all_values(conn: sqlite3.Connection, dashboard_uid: str) -> dict[str, list[str]]:
    board = _load("dmarc.json" if dashboard_uid == "mailfleet-dmarc" else "mailflow.json")
    return {name: [row[0] for row in conn.execute(sql)] for name, sql in parse_variables(board).items()}


def _run(db: Path, panel: PanelQuery, start: int, end: int,
         values: dict[str, list[str]] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        chosen = values if values is not None else _all_values(conn, panel.dashboard)
        cursor = conn.execute(render_query(panel.sql, start, end, chosen))
        return [c[0] for c in cursor.description], cursor.fetchall()
    finally:
        conn.close()


def test_committed_json_is_what_the_builder_renders() -> None:
    for name, board in rd.render_dashboards().items():
        assert (DASHBOARDS / name).read_text(encoding="utf-8") == rd.render_dashboard_json(board), (
            f"{name} drifted: run `python -m mailfleet.monitoring.render_dashboards`")


@pytest.mark.parametrize("panel", _panels(), ids=lambda p: f"{p.dashboard}:{p.panel_id}:{p.title[:30]}")
def test_panel_query_returns_its_columns(panel: PanelQuery, request: pytest.FixtureRequest) -> None:
    db = request.getfixturevalue(STORE_OF[panel.dashboard])
    columns, rows = _run(db, panel, *EVER)
    assert columns == list(panel.columns)
    assert rows, f"{panel.title}: no rows from the fixtures"
    if panel.kind == "timeseries":
        assert panel.time_series and columns[0] == "time"
        assert all(isinstance(row[0], int) and row[0] % 86400 == 0 for row in rows), "time is a UTC day in epoch s"
        assert all(isinstance(v, (int, float)) for row in rows for v in row[1:] if not isinstance(v, str))
    elif panel.kind == "stat":
        assert len(rows) == 1 and all(isinstance(v, (int, float)) for v in rows[0])
    elif panel.kind == "piechart":
        assert len(columns) == 2 and all(isinstance(r[0], str) and isinstance(r[1], int) for r in rows)
    else:
        assert panel.kind == "table"


def _panel(uid: str, title_start: str) -> PanelQuery:
    return next(p for p in _panels() if p.dashboard == uid and p.title.startswith(title_start))


def test_domain_variable_filters_dmarc_panels(dmarc_db: Path) -> None:
    columns, rows = _run(dmarc_db, _panel("mailfleet-dmarc", "By domain"), *EVER,
                         {"domain": ["test.net"]})
    assert [row[0] for row in rows] == ["test.net"]
    assert dict(zip(columns, rows[0]))["fail"] == 2
    _, none = _run(dmarc_db, _panel("mailfleet-dmarc", "Messages reported"), *EVER, {"domain": []})
    assert none == [(0,)]


def test_new_failing_sources_respects_history(dmarc_db: Path) -> None:
    panel = _panel("mailfleet-dmarc", "New failing sources")
    _, everything = _run(dmarc_db, panel, *EVER)
    # Starting the range after a failing source's first report: it is no longer "new" for that day.
    source, domain, first_seen_ms = everything[0][0], everything[0][1], everything[0][2]
    _, later = _run(dmarc_db, panel, first_seen_ms // 1000 + 86400, EVER[1])
    assert (source, domain) not in {(r[0], r[1]) for r in later}


def test_time_range_limits_mail_flow(logs_db: Path) -> None:
    panel = _panel("mailfleet-mailflow", "Delivered")
    _, rows = _run(logs_db, panel, *EVER)
    first_day = rows[0][0]
    _, one_day = _run(logs_db, panel, first_day, first_day + 86400)
    assert [r[0] for r in one_day] == [first_day]


def test_bulk_and_transactional_are_split(logs_db: Path) -> None:
    _, rows = _run(logs_db, _panel("mailfleet-mailflow", "Bulk vs transactional"), *EVER)
    classes = dict(rows)
    assert set(classes) == {"bulk", "transactional"} and classes["bulk"] == 231
    _, delays = _run(logs_db, _panel("mailfleet-mailflow", "Queue delay per transport"), *EVER)
    by_transport = {r[0]: r for r in delays}
    assert {"bulk", "smtp", "lmtp"} <= set(by_transport)
    for _, n, p50, p95, p99, top in delays:
        assert n > 0 and p50 <= p95 <= p99 <= top


def test_alert_queries_return_one_number(dmarc_db: Path, logs_db: Path) -> None:
    for db, sql in ((dmarc_db, rd.ALERT_NEW_FAILING_SQL), (logs_db, rd.ALERT_TX_DELAY_SQL)):
        conn = sqlite3.connect(db)
        rows = conn.execute(render_query(sql, *EVER, {})).fetchall()
        conn.close()
        assert len(rows) == 1 and isinstance(rows[0][0], (int, float)) and rows[0][0] > 0


def test_unexpanded_macro_is_refused() -> None:
    with pytest.raises(Exception, match="unexpanded"):
        render_query("SELECT 1 WHERE x > $__timeFrom()", 0, 1, {})
    with pytest.raises(Exception, match="no value"):
        render_query("SELECT 1 WHERE d IN (${domain:sqlstring})", 0, 1, {})
