"""SQLite store and ingest: WAL, migrations, natural keys, idempotency, UTC days, summary, alerts,
TLS reports, enrichment cache, and the command line."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mailfleet.dmarc.classify_alerts import AlertRules, classify_alerts
from mailfleet.dmarc.enrich import enrich_sources, sender_name
from mailfleet.dmarc.ingest import ingest_paths, ingest_source
from mailfleet.dmarc.store import MIGRATIONS, load_store, load_summary

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "dmarc"
MAILFLEET = Path(sys.executable).parent / "mailfleet"
DAY = 86_400


def report_xml(report_id: str, begin: int, records: list[tuple[str, int, str, str]], org: str = "google.com",
               domain: str = "example.com") -> bytes:
    body = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers></record>"
        for ip, count, dkim, spf in records)
    return (f"<feedback><report_metadata><org_name>{org}</org_name><email>noreply@{org}</email>"
            f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin><end>{begin + DAY - 1}</end>"
            f"</date_range></report_metadata><policy_published><domain>{domain}</domain><p>reject</p>"
            f"</policy_published>{body}</feedback>").encode()


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = load_store(tmp_path / "dmarc.sqlite")
    yield connection
    connection.close()


def test_wal_and_migrations(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    load_store(path).close()
    again = load_store(path)  # a second open migrates nothing and keeps the data
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in again.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"report", "record", "daily_source", "tls_report", "tls_policy", "tls_failure", "imap_message",
            "ip_info"} <= tables


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    from mailfleet.errors import IngestError

    path = tmp_path / "d.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(IngestError, match="newer than this mailfleet"):
        load_store(path)


def test_ingesting_twice_stores_once(conn: sqlite3.Connection, tmp_path: Path) -> None:
    files = [FIXTURES / "parsedmarc" / name for name in ("nice-input.xml", "nice-input.xml.gz", "nice-input.xml.zip")]
    first = ingest_paths(conn, files)
    assert (first.total("stored"), first.total("duplicates")) == (1, 2)
    second = ingest_paths(conn, files)
    assert (second.total("stored"), second.total("duplicates")) == (0, 3)
    assert conn.execute("SELECT COUNT(*), SUM(message_count) FROM report").fetchone() == (1, 3047)
    assert conn.execute("SELECT COUNT(*), SUM(count) FROM record").fetchone() == (20, 3047)


def test_same_content_from_two_mailboxes_is_stored_once(conn: sqlite3.Connection) -> None:
    xml = report_xml("r1", 1_700_000_000, [("192.0.2.1", 5, "pass", "pass")])
    assert ingest_source(conn, "mailbox-a", xml).stored == 1
    assert ingest_source(conn, "mailbox-b", gzip.compress(xml)).duplicates == 1
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 1


def test_report_id_reused_on_another_day_is_a_new_report(conn: sqlite3.Connection) -> None:
    """Google and Mimecast reuse report ids across days (dmarc-srg #81): the key includes the range."""
    ingest_source(conn, "a", report_xml("same-id", 1_700_000_000, [("192.0.2.1", 5, "pass", "pass")]))
    ingest_source(conn, "b", report_xml("same-id", 1_700_000_000 + DAY, [("192.0.2.1", 6, "pass", "pass")]))
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 2


def test_same_key_different_content_is_a_duplicate(conn: sqlite3.Connection) -> None:
    ingest_source(conn, "a", report_xml("k", 1_700_000_000, [("192.0.2.1", 5, "pass", "pass")]))
    result = ingest_source(conn, "b", report_xml("k", 1_700_000_000, [("192.0.2.1", 7, "pass", "pass")]))
    assert result.duplicates == 1
    assert conn.execute("SELECT SUM(count) FROM record").fetchone()[0] == 5


def test_summary_per_utc_day(conn: sqlite3.Connection) -> None:
    midnight = 1_700_006_400  # 2023-11-15T00:00:00Z
    assert midnight % DAY == 0
    ingest_source(conn, "a", report_xml("a", midnight, [("192.0.2.1", 5, "pass", "fail"),
                                                        ("192.0.2.1", 2, "fail", "fail"),
                                                        ("2001:db8::1", 4, "fail", "pass")]))
    # a report running 08:00 to 08:00 counts for its first day (the day of its middle)
    ingest_source(conn, "b", report_xml("b", midnight + DAY + 8 * 3600, [("192.0.2.1", 3, "pass", "pass")],
                                        org="zoho.com"))
    rows = load_summary(conn)
    assert rows == [
        {"day": "2023-11-15", "domain": "example.com", "source_ip": "192.0.2.1", "messages": 7, "pass": 5, "fail": 2},
        {"day": "2023-11-15", "domain": "example.com", "source_ip": "2001:db8::1", "messages": 4, "pass": 4,
         "fail": 0},
        {"day": "2023-11-16", "domain": "example.com", "source_ip": "192.0.2.1", "messages": 3, "pass": 3, "fail": 0},
    ]
    assert load_summary(conn, since_day=midnight + DAY) == rows[2:]
    assert load_summary(conn, domain="Example.COM.") == rows and load_summary(conn, domain="other.example") == []
    view = conn.execute("SELECT day, messages, pass, fail FROM daily_source ORDER BY day, source_ip").fetchall()
    assert view[0] == (midnight, 7, 5, 2)


def test_summary_is_the_same_in_any_time_zone(tmp_path: Path) -> None:
    db = tmp_path / "tz.sqlite"
    conn = load_store(db)
    ingest_source(conn, "a", report_xml("a", 1_700_006_400, [("192.0.2.1", 5, "pass", "pass")]))
    conn.close()
    outputs = set()
    for tz in ("UTC", "America/New_York", "Asia/Tokyo"):
        run = subprocess.run([str(MAILFLEET), "dmarc.summary", "--db", str(db), "--days", "0", "--json"],
                             capture_output=True, text=True, timeout=60, env={"TZ": tz, "PATH": "/usr/bin:/bin"})
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1 and '"day": "2023-11-15"' in outputs.pop()


def test_tls_reports_are_stored_once(conn: sqlite3.Connection) -> None:
    path = FIXTURES / "parsedmarc" / "rfc8460.json"
    assert ingest_paths(conn, [path]).total("tls_stored") == 1
    assert ingest_paths(conn, [path]).total("tls_stored") == 0
    assert conn.execute("SELECT COUNT(*) FROM tls_failure").fetchone()[0] == 3
    assert conn.execute("SELECT successful_sessions, failed_sessions FROM tls_policy").fetchone() == (5326, 303)


def test_auth_results_are_json_for_dashboards(conn: sqlite3.Connection) -> None:
    ingest_paths(conn, [FIXTURES / "cry-inc" / "outlook.xml"])
    rows = conn.execute("SELECT auth_dkim, auth_spf, envelope_to FROM record ORDER BY id").fetchall()
    assert json.loads(rows[0][0]) == [["random.net", "def", "pass"]]
    assert json.loads(rows[0][1]) == [["random.net", "mfrom", "pass"]]
    selectors = conn.execute("SELECT j.value ->> 1 FROM record, json_each(record.auth_dkim) j").fetchall()
    assert selectors == [("def",), ("def",)]


def test_alert_rules() -> None:
    recent = {("example.com", "192.0.2.1"): (10, 10), ("example.com", "203.0.113.9"): (4, 0),
              ("example.com", "198.51.100.2"): (20, 8), ("example.com", "198.51.100.3"): (20, 19)}
    baseline = {("example.com", "192.0.2.1"): (100, 100), ("example.com", "198.51.100.2"): (100, 95),
                ("example.com", "198.51.100.3"): (100, 100)}
    alerts = classify_alerts(recent, baseline, AlertRules(drop=0.2))
    kinds = {(a.source_ip, a.kind) for a in alerts}
    # .3 newly fails one message: new failing source; .2 had failures before but dropped 95% -> 40%
    assert kinds == {("203.0.113.9", "new_failing_source"), ("198.51.100.2", "pass_rate_drop"),
                     ("198.51.100.3", "new_failing_source")}


def test_alerts_command_exits_1_on_a_new_failing_source(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite"
    conn = load_store(db)
    now = 1_800_000_000
    old = report_xml("old", 1_700_000_000, [("192.0.2.1", 50, "pass", "pass")])
    ingest_source(conn, "old", old, clock=lambda: now - 10 * DAY)
    conn.close()
    quiet = subprocess.run([str(MAILFLEET), "dmarc.alerts", "--db", str(db), "--since", "24h", "--now", str(now)],
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    conn = load_store(db)
    new = report_xml("new", 1_700_000_000 + DAY, [("192.0.2.1", 50, "pass", "pass"),
                                                  ("203.0.113.66", 7, "fail", "fail")])
    ingest_source(conn, "new", new, clock=lambda: now - 3600)
    conn.close()
    loud = subprocess.run([str(MAILFLEET), "dmarc.alerts", "--db", str(db), "--since", "24h", "--now", str(now),
                           "--json"], capture_output=True, text=True, timeout=60)
    assert loud.returncode == 1
    alerts = json.loads(loud.stdout)["alerts"]
    assert [(a["kind"], a["source_ip"], a["fail"]) for a in alerts] == [("new_failing_source", "203.0.113.66", 7)]


def test_cli_parse_json_contract(tmp_path: Path) -> None:
    run = subprocess.run([str(MAILFLEET), "dmarc.parse",
                          f"{FIXTURES}/cry-inc/outlook.xml,{FIXTURES}/parsedmarc/empty.xml", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1  # one file was rejected
    data = json.loads(run.stdout)
    report = data["reports"][0]
    assert {k: report[k] for k in ("org_name", "report_id", "domain", "begin", "end")} == {
        "org_name": "Outlook.com", "report_id": "a4f4ef0654474d3faa5dca167a34a86a", "domain": "random.net",
        "begin": "2024-03-06T00:00:00Z", "end": "2024-03-07T00:00:00Z"}
    assert report["records"][1] == {"source_ip": "1.2.3.4", "count": 2, "disposition": "none", "dkim": "pass",
                                    "spf": "pass", "header_from": "random.net"}
    assert data["errors"] == [{"file": f"{FIXTURES}/parsedmarc/empty.xml", "reason": "empty file: not a report"}]


def test_cli_ingest_and_summary(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite"
    run = subprocess.run([str(MAILFLEET), "dmarc.ingest", str(FIXTURES), "--db", str(db), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["stored"] == 14 and data["tls_stored"] == 3
    rejected = {Path(r["file"]).name for r in data["rejected"]}
    assert rejected == {"LICENSE", "SOURCE.md", "empty.xml"}
    assert Path(str(db) + ".quarantine").is_dir()
    summary = subprocess.run([str(MAILFLEET), "dmarc.summary", "--db", str(db), "--days", "0", "--json"],
                             capture_output=True, text=True, timeout=60)
    rows = json.loads(summary.stdout)
    assert set(rows[0]) == {"day", "domain", "source_ip", "messages", "pass", "fail"}
    assert sum(r["messages"] for r in rows) == 3191


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    run = subprocess.run([str(MAILFLEET), "dmarc.summary", "--db", str(tmp_path / "missing.sqlite")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "ingest reports first" in run.stderr + run.stdout


def test_enrichment_cache_with_ttl(conn: sqlite3.Connection) -> None:
    ingest_source(conn, "a", report_xml("a", 1_700_000_000, [("192.0.2.1", 1, "pass", "pass"),
                                                             ("192.0.2.2", 1, "pass", "pass"),
                                                             ("192.0.2.3", 1, "fail", "fail")]))
    asked: list[str] = []

    def resolver(ip: str) -> str | None:
        asked.append(ip)
        if ip.endswith(".3"):
            raise LookupError("timeout")
        return {"192.0.2.1": "mail-ed1-f41.google.com", "192.0.2.2": None}[ip]

    first = enrich_sources(conn, resolver, ttl_seconds=3600, clock=lambda: 1000)
    assert (first.looked_up, first.named, first.failed) == (3, 1, 1)
    assert enrich_sources(conn, resolver, ttl_seconds=3600, clock=lambda: 2000).looked_up == 0  # cached
    assert enrich_sources(conn, resolver, ttl_seconds=3600, clock=lambda: 5000).looked_up == 3  # expired
    assert sorted(asked) == sorted(["192.0.2.1", "192.0.2.2", "192.0.2.3"] * 2)
    row = conn.execute("SELECT ptr, sender FROM ip_info WHERE ip='192.0.2.1'").fetchone()
    assert row == ("mail-ed1-f41.google.com", "Google")
    assert sender_name("o1.ptr1234.sendgrid.net") == "Twilio SendGrid" and sender_name("mx.example") is None


def test_parallel_ingest_stores_the_same_as_serial(tmp_path: Path) -> None:
    files = sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    tables = {}
    for workers in (1, 2):
        conn = load_store(tmp_path / f"w{workers}.sqlite")
        summary = ingest_paths(conn, files, workers=workers, quarantine=tmp_path / f"q{workers}")
        assert summary.total("stored") == 14 and summary.total("tls_stored") == 3
        tables[workers] = (
            conn.execute("SELECT org_name, report_id, domain, begin_ts, end_ts, content_sha256, record_count, "
                         "message_count FROM report ORDER BY content_sha256").fetchall(),
            conn.execute("SELECT r.source_ip, r.count, r.disposition, r.dkim, r.spf, r.dmarc_pass, r.auth_dkim, "
                         "r.auth_spf, p.content_sha256 FROM record r JOIN report p ON p.id = r.report_pk "
                         "ORDER BY p.content_sha256, r.id").fetchall())
        conn.close()
    assert tables[1] == tables[2]


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from mailfleet.dmarc.ingest import Progress

    quiet = io.StringIO()
    bar = Progress(3, stream=quiet)  # StringIO is not a terminal
    for _ in range(3):
        bar.advance("file.xml")
    bar.close()
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    bar = Progress(2, stream=loud, enabled=True)
    bar.advance("a.xml")
    bar.advance("b.xml")
    bar.close()
    assert "2/2" in loud.getvalue() and loud.getvalue().endswith("\n")


def test_an_unexpected_parser_failure_rejects_the_file_not_the_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailfleet.dmarc.ingest as ingest_module

    real = ingest_module.parse_tlsrpt

    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("a bug")

    monkeypatch.setattr(ingest_module, "parse_tlsrpt", broken)
    conn = load_store(tmp_path / "u.sqlite")
    summary = ingest_paths(conn, [FIXTURES / "parsedmarc" / "rfc8460.json", FIXTURES / "cry-inc" / "google.xml"],
                           quarantine=tmp_path / "q")
    assert summary.total("stored") == 1
    assert "KeyError" in summary.rejected[0].rejected and "bug" in summary.rejected[0].rejected
    monkeypatch.setattr(ingest_module, "parse_tlsrpt", real)
