"""The DMARC store: SQLite in WAL mode, versioned by ``PRAGMA user_version`` migrations.

Read by the CLI, Grafana (frser-sqlite-datasource) and the HTML report, so the schema is part of
the interface. All times are integer UTC epoch seconds; ``day`` columns are the epoch of 00:00
UTC of a day (``strftime('%Y-%m-%d', day, 'unixepoch')`` gives the date). Never local time.

Tables
------
``report``: one row per DMARC aggregate report.
    ``id`` (pk), ``org_name``, ``org_email``, ``report_id``, ``domain`` (policy_published domain),
    ``begin_ts``, ``end_ts`` (as sent: ends are 86399 or 86400 after begin depending on the
    sender), ``day`` (UTC day of the middle of the range; what summaries count it under),
    ``schema`` (draft | rfc7489 | rfc9990), ``namespace``, policy ``p``, ``sp`` (defaults to p),
    ``np``, ``adkim``, ``aspf``, ``pct``, ``fo``, ``testing``, ``discovery_method``, ``generator``,
    ``extra_contact_info``, ``errors`` (JSON list of the report's own <error> texts),
    ``warnings`` (JSON list of what the parser forgave or skipped), ``record_count``,
    ``message_count``, ``content_sha256`` (of the decompressed XML), ``source`` (file or message
    it came from), ``ingested_at``.
    UNIQUE (org_name, report_id, domain, begin_ts, end_ts) and UNIQUE (content_sha256): the same
    report ingested twice, or from two mailboxes, is stored once.
``record``: one row per <record>.
    ``id``, ``report_pk`` (-> report.id, cascade), ``day`` and ``domain`` (copied from the report
    so dashboards need no join), ``source_ip`` (text, IPv6 compressed), ``count``,
    ``disposition``, ``dkim``/``spf`` (policy-evaluated, DMARC-aligned, lower case),
    ``dmarc_pass`` (1 when dkim or spf is "pass"), ``header_from``, ``envelope_from``,
    ``envelope_to``, ``reasons`` (JSON [[type, comment], ...] or NULL),
    ``auth_dkim`` (JSON [[domain, selector, result], ...] or NULL),
    ``auth_spf`` (JSON [[domain, scope, result], ...] or NULL); read them with ``json_each``.
``daily_source`` (view): day, domain, source_ip, messages, pass, fail; what ``dmarc.summary``
    prints and the obvious Grafana table.
``tls_report``, ``tls_policy``, ``tls_failure``: SMTP TLS reports (RFC 8460); key
    (org_name, report_id, begin_ts, end_ts) and UNIQUE content_sha256.
``imap_message``: messages ``dmarc.fetch`` has handled, keyed by the SHA-256 of the raw
    message, with the outcome; a message seen again after a crash is moved, not re-ingested.
``ip_info``: enrichment cache (reverse DNS, sender name) with ``expires_at``.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from json.encoder import encode_basestring as _quote
from collections.abc import Iterable, Sequence
from pathlib import Path

from mailfleet.dmarc.model import SECONDS_PER_DAY, Record, ReportMeta, TlsReport
from mailfleet.errors import IngestError
from mailfleet.sqlite_binding import bind_none_directly
from mailfleet.sqlite_migrate import apply_migrations

MIGRATIONS: tuple[str, ...] = (
    # 1: aggregate reports and records
    """
    CREATE TABLE report (
        id INTEGER PRIMARY KEY,
        org_name TEXT NOT NULL, org_email TEXT NOT NULL DEFAULT '', report_id TEXT NOT NULL,
        domain TEXT NOT NULL, begin_ts INTEGER NOT NULL, end_ts INTEGER NOT NULL, day INTEGER NOT NULL,
        schema TEXT NOT NULL, namespace TEXT NOT NULL DEFAULT '',
        p TEXT, sp TEXT, np TEXT, adkim TEXT, aspf TEXT, pct INTEGER, fo TEXT, testing TEXT,
        discovery_method TEXT, generator TEXT, extra_contact_info TEXT,
        errors TEXT NOT NULL DEFAULT '[]', warnings TEXT NOT NULL DEFAULT '[]',
        record_count INTEGER NOT NULL DEFAULT 0, message_count INTEGER NOT NULL DEFAULT 0,
        content_sha256 TEXT UNIQUE, source TEXT NOT NULL DEFAULT '', ingested_at INTEGER NOT NULL,
        UNIQUE (org_name, report_id, domain, begin_ts, end_ts)
    );
    CREATE INDEX report_begin ON report (begin_ts);
    CREATE INDEX report_ingested ON report (ingested_at);
    CREATE TABLE record (
        id INTEGER PRIMARY KEY,
        report_pk INTEGER NOT NULL REFERENCES report (id) ON DELETE CASCADE,
        day INTEGER NOT NULL, domain TEXT NOT NULL, source_ip TEXT NOT NULL, count INTEGER NOT NULL,
        disposition TEXT NOT NULL, dkim TEXT NOT NULL, spf TEXT NOT NULL, dmarc_pass INTEGER NOT NULL,
        header_from TEXT NOT NULL, envelope_from TEXT NOT NULL DEFAULT '', envelope_to TEXT NOT NULL DEFAULT '',
        reasons TEXT, auth_dkim TEXT, auth_spf TEXT
    );
    CREATE INDEX record_report ON record (report_pk);
    CREATE INDEX record_day_domain_ip ON record (day, domain, source_ip);
    CREATE VIEW daily_source AS
        SELECT day, domain, source_ip, SUM(count) AS messages,
               SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END) AS pass,
               SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) AS fail
        FROM record GROUP BY day, domain, source_ip;
    """,
    # 2: SMTP TLS reports
    """
    CREATE TABLE tls_report (
        id INTEGER PRIMARY KEY, org_name TEXT NOT NULL, report_id TEXT NOT NULL,
        begin_ts INTEGER NOT NULL, end_ts INTEGER NOT NULL, contact_info TEXT NOT NULL DEFAULT '',
        warnings TEXT NOT NULL DEFAULT '[]', content_sha256 TEXT UNIQUE, source TEXT NOT NULL DEFAULT '',
        ingested_at INTEGER NOT NULL, UNIQUE (org_name, report_id, begin_ts, end_ts)
    );
    CREATE TABLE tls_policy (
        id INTEGER PRIMARY KEY, tls_report_pk INTEGER NOT NULL REFERENCES tls_report (id) ON DELETE CASCADE,
        policy_type TEXT NOT NULL, policy_domain TEXT NOT NULL, mx_hosts TEXT NOT NULL DEFAULT '[]',
        successful_sessions INTEGER NOT NULL, failed_sessions INTEGER NOT NULL
    );
    CREATE TABLE tls_failure (
        id INTEGER PRIMARY KEY, tls_policy_pk INTEGER NOT NULL REFERENCES tls_policy (id) ON DELETE CASCADE,
        result_type TEXT NOT NULL, sending_mta_ip TEXT NOT NULL, receiving_mx_hostname TEXT NOT NULL,
        receiving_ip TEXT NOT NULL, failed_session_count INTEGER NOT NULL,
        additional_information TEXT NOT NULL DEFAULT '', failure_reason_code TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: IMAP bookkeeping and the enrichment cache
    """
    CREATE TABLE imap_message (
        message_sha256 TEXT PRIMARY KEY, mailbox TEXT NOT NULL, uidvalidity INTEGER, uid INTEGER,
        outcome TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', fetched_at INTEGER NOT NULL
    );
    CREATE TABLE ip_info (
        ip TEXT PRIMARY KEY, ptr TEXT, sender TEXT, error TEXT,
        looked_up_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
    );
    """,
)

_RECORD_INSERT = (
    "INSERT INTO record (report_pk, day, domain, source_ip, count, disposition, dkim, spf, dmarc_pass, "
    "header_from, envelope_from, envelope_to, reasons, auth_dkim, auth_spf) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def load_store(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) the store, switch to WAL and bring the schema up to date.

    ``isolation_level=None``: transactions are explicit (``BEGIN``/``SAVEPOINT``), so one report
    is one unit that is either wholly stored or not at all."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise IngestError(f"the database directory {path.parent} does not exist; create it or pass another --db")
    bind_none_directly()
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise IngestError(f"{path} is not a usable DMARC database ({exc}); pass another --db or move it away") from None
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; return the schema version."""
    return apply_migrations(conn, MIGRATIONS, name="the DMARC database")


# -- aggregate reports ----------------------------------------------------------------------------
def report_key_exists(conn: sqlite3.Connection, meta: ReportMeta) -> bool:
    row = conn.execute(
        "SELECT 1 FROM report WHERE org_name=? AND report_id=? AND domain=? AND begin_ts=? AND end_ts=?",
        meta.natural_key).fetchone()
    return row is not None


def report_hash_exists(conn: sqlite3.Connection, sha256: str) -> bool:
    return conn.execute("SELECT 1 FROM report WHERE content_sha256=?", (sha256,)).fetchone() is not None


def save_report_header(conn: sqlite3.Connection, meta: ReportMeta, source: str, ingested_at: int) -> int:
    """Insert the report row (hash and counts are filled in by ``save_report_footer``)."""
    policy = meta.policy
    cursor = conn.execute(
        "INSERT INTO report (org_name, org_email, report_id, domain, begin_ts, end_ts, day, schema, namespace, "
        "p, sp, np, adkim, aspf, pct, fo, testing, discovery_method, generator, extra_contact_info, errors, "
        "source, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (meta.org_name, meta.org_email, meta.report_id, meta.domain, meta.begin, meta.end, meta.day, meta.schema,
         meta.namespace, policy.p, policy.sp, policy.np, policy.adkim, policy.aspf, policy.pct, policy.fo,
         policy.testing, policy.discovery_method, meta.generator, meta.extra_contact_info,
         json.dumps(list(meta.errors)), source, ingested_at))
    return int(cursor.lastrowid or 0)


def record_rows(records: Iterable[Record]) -> list[tuple[object, ...]]:
    """Records as plain tuples in column order (after report_pk, day, domain). Plain tuples also
    cross a process boundary far more cheaply than the record objects (parallel ingest)."""
    return [
        (r.source_ip, r.count, r.disposition, r.dkim, r.spf, 1 if (r.dkim == "pass" or r.spf == "pass") else 0,
         r.header_from, r.envelope_from, r.envelope_to,
         _json_rows(r.reasons) if r.reasons else None,
         _json_rows(r.dkim_results) if r.dkim_results else None,
         _json_rows(r.spf_results) if r.spf_results else None)
        for r in records]


def save_records(conn: sqlite3.Connection, report_pk: int, meta: ReportMeta, records: Sequence[Record]) -> None:
    save_record_rows(conn, report_pk, meta, record_rows(records))


def save_record_rows(conn: sqlite3.Connection, report_pk: int, meta: ReportMeta,
                     rows: Sequence[tuple[object, ...]]) -> None:
    head = (report_pk, meta.day, meta.domain)
    conn.executemany(_RECORD_INSERT, [head + row for row in rows])


@functools.lru_cache(maxsize=8192)
def _json_rows(rows: tuple[tuple[str, ...], ...]) -> str:
    """JSON for a tuple of string tuples, several times faster than ``json.dumps`` (a measurable
    share of ingest time); the C string encoder does the escaping. Cached: the same DKIM and SPF
    results (domain, selector, result) recur across most records of a domain."""
    return "[" + ",".join("[" + ",".join([_quote(v) for v in row]) + "]" for row in rows) + "]"


def save_report_footer(conn: sqlite3.Connection, report_pk: int, meta: ReportMeta, warnings: Iterable[str],
                       sha256: str, record_count: int, message_count: int) -> None:
    conn.execute(
        "UPDATE report SET content_sha256=?, warnings=?, errors=?, record_count=?, message_count=? WHERE id=?",
        (sha256, json.dumps(list(warnings)), json.dumps(list(meta.errors)), record_count, message_count, report_pk))


# -- TLS reports ----------------------------------------------------------------------------------
def save_tls_report(conn: sqlite3.Connection, report: TlsReport, ingested_at: int) -> bool:
    """Store a TLS report unless it is already there; return whether it was new."""
    known = conn.execute(
        "SELECT 1 FROM tls_report WHERE (org_name=? AND report_id=? AND begin_ts=? AND end_ts=?) "
        "OR content_sha256=?",
        (report.org_name, report.report_id, report.begin, report.end, report.content_sha256)).fetchone()
    if known:
        return False
    pk = conn.execute(
        "INSERT INTO tls_report (org_name, report_id, begin_ts, end_ts, contact_info, warnings, content_sha256, "
        "source, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (report.org_name, report.report_id, report.begin, report.end, report.contact_info,
         json.dumps(list(report.warnings)), report.content_sha256, report.source, ingested_at)).lastrowid
    for policy in report.policies:
        policy_pk = conn.execute(
            "INSERT INTO tls_policy (tls_report_pk, policy_type, policy_domain, mx_hosts, successful_sessions, "
            "failed_sessions) VALUES (?, ?, ?, ?, ?, ?)",
            (pk, policy.policy_type, policy.policy_domain, json.dumps(list(policy.mx_hosts)),
             policy.successful_sessions, policy.failed_sessions)).lastrowid
        conn.executemany(
            "INSERT INTO tls_failure (tls_policy_pk, result_type, sending_mta_ip, receiving_mx_hostname, "
            "receiving_ip, failed_session_count, additional_information, failure_reason_code) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(policy_pk, f.result_type, f.sending_mta_ip, f.receiving_mx_hostname, f.receiving_ip,
              f.failed_session_count, f.additional_information, f.failure_reason_code) for f in policy.failures])
    return True


# -- queries --------------------------------------------------------------------------------------
def load_summary(conn: sqlite3.Connection, since_day: int | None = None,
                 domain: str | None = None) -> list[dict[str, object]]:
    """Per UTC day, policy domain and source IP: messages, DMARC pass, fail (``dmarc.summary``)."""
    clauses: list[str] = []
    params: list[object] = []
    if since_day is not None:
        clauses.append("day >= ?")
        params.append(since_day)
    if domain:
        clauses.append("domain = ?")
        params.append(domain.lower().rstrip("."))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        "SELECT strftime('%Y-%m-%d', day, 'unixepoch') AS day, domain, source_ip, SUM(count), "
        "SUM(CASE WHEN dmarc_pass THEN count ELSE 0 END), SUM(CASE WHEN dmarc_pass THEN 0 ELSE count END) "
        f"FROM record {where} GROUP BY record.day, domain, source_ip ORDER BY record.day, domain, source_ip",
        params).fetchall()
    return [{"day": d, "domain": dom, "source_ip": ip, "messages": m, "pass": p, "fail": f}
            for d, dom, ip, m, p, f in rows]


def load_source_totals(conn: sqlite3.Connection, ingested_from: int, ingested_to: int | None = None
                       ) -> dict[tuple[str, str], tuple[int, int]]:
    """(domain, source_ip) -> (messages, pass) over reports ingested in [from, to)."""
    sql = ("SELECT r.domain, r.source_ip, SUM(r.count), SUM(CASE WHEN r.dmarc_pass THEN r.count ELSE 0 END) "
           "FROM record r JOIN report p ON p.id = r.report_pk WHERE p.ingested_at >= ?")
    params: list[int] = [ingested_from]
    if ingested_to is not None:
        sql += " AND p.ingested_at < ?"
        params.append(ingested_to)
    sql += " GROUP BY r.domain, r.source_ip"
    return {(d, ip): (int(m), int(p)) for d, ip, m, p in conn.execute(sql, params)}


def day_floor(epoch: int) -> int:
    return epoch - epoch % SECONDS_PER_DAY
