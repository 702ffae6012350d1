"""Read the stores for the report: detect each one's kind by its schema, run the dashboards' queries.

Effectful (SQLite, read-only). The queries are the dashboards' own (``dashboards/*.json``), with
Grafana's macros expanded for the report's range and every variable set to all its values, so
the report and Grafana never disagree about what a number means.
"""

from __future__ import annotations

import json
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from mailfleet.errors import MailfleetError
from mailfleet.monitoring.parse_panels import parse_panel_queries, parse_variables, render_query
from mailfleet.report.model import PanelResult, Report, Section

KINDS = {"dmarc": ("dmarc.json", "SELECT MIN(day), MAX(day) + 86399 FROM record WHERE day >= ? AND day <= ?"),
         "mailflow": ("mailflow.json", "SELECT MIN(ts), MAX(ts) FROM deliveries WHERE ts >= ? AND ts < ?")}


class ReportError(MailfleetError):
    """A --db argument cannot be used for the report."""


def load_dashboard(name: str) -> dict[str, Any]:
    text = resources.files("mailfleet.monitoring").joinpath("dashboards", name).read_text(encoding="utf-8")
    return json.loads(text)


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise ReportError(f"{path} does not exist; give the DMARC store (dmarc.ingest --db) and/or the log store "
                          "(logs.ingest --db) to report on")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"{path} is not an SQLite database ({exc}); give a mailfleet DMARC or log store") from None
    return conn


def detect_kind(conn: sqlite3.Connection, path: Path) -> str:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    if {"report", "record"} <= tables:
        return "dmarc"
    if {"deliveries", "messages", "rejects"} <= tables:
        return "mailflow"
    raise ReportError(f"{path} is neither a DMARC store (tables report, record) nor a Postfix log store "
                      f"(tables messages, deliveries, rejects); it has {', '.join(sorted(tables)) or 'no tables'}. "
                      "Give the files `dmarc.ingest --db` and `logs.ingest --db` write.")


def load_section(conn: sqlite3.Connection, kind: str, path: Path, start: int, end: int) -> Section:
    board_name, span_sql = KINDS[kind]
    board = load_dashboard(board_name)
    values = {name: [row[0] for row in conn.execute(sql)] for name, sql in parse_variables(board).items()}
    panels: dict[int, PanelResult] = {}
    for query in parse_panel_queries(board):
        try:
            cursor = conn.execute(render_query(query.sql, start, end, values))
        except sqlite3.DatabaseError as exc:
            raise ReportError(f"{path}: the query of panel {query.title!r} failed ({exc}); the store's schema may be "
                              "older or newer than this mailfleet: run an ingest with this version to migrate it") from None
        panels[query.panel_id] = PanelResult(query, tuple(c[0] for c in cursor.description),
                                             tuple(tuple(r) for r in cursor.fetchall()))
    first, last = conn.execute(span_sql, (start, end)).fetchone()
    return Section(kind=kind, db=str(path), first=first, last=last, panels=panels)


def load_report(db_paths: list[Path], *, now: float, days: int | None) -> Report:
    """Every store's views over the last ``days`` days before ``now`` (or everything: ``days=None``)."""
    if not db_paths:
        raise ReportError("report needs at least one --db: the DMARC store and/or the Postfix log store")
    end = int(now) + 86400 if days is None else int(now)
    start = 0 if days is None else int(now) - int(days) * 86400
    sections: dict[str, Section] = {}
    for path in db_paths:
        conn = _connect(path)
        try:
            kind = detect_kind(conn, path)
            if kind in sections:
                raise ReportError(f"{path} and {sections[kind].db} are both {kind} stores; give one of each kind "
                                  "(several hosts' logs already share one log store via logs.pull)")
            sections[kind] = load_section(conn, kind, path, start, end)
        finally:
            conn.close()
    return Report(generated_at=now, start=start, end=end, days=days, dmarc=sections.get("dmarc"),
                  mailflow=sections.get("mailflow"))
