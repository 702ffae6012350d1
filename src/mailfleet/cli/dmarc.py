"""``dmarc.*`` tasks: parse, ingest, summary, alerts, fetch (IMAP), enrich.

``dmarc.parse FILE...`` and ``dmarc.ingest PATH...`` take any number of paths (the variadic
rewrite in ``cli/program.py`` turns extra words into repeated ``--path``); each may also hold
several paths separated by commas, a directory (walked recursively) or a quoted glob.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Exit, task

from mailfleet.cli.common import print_json, reports_errors
from mailfleet.errors import IngestError

if TYPE_CHECKING:  # every `mailfleet` start imports this module; mailfleet.dmarc loads inside the tasks
    from mailfleet.dmarc.model import Limits

MIB = 1024 * 1024
LIMIT_HELP = {
    "max_input_mb": "cap on an input file's own (compressed) size, MiB (default 64)",
    "max_decompressed_mb": "cap on the bytes decompressed from one input, all members together, MiB (default 128)",
    "max_zip_members": "cap on members in a zip (default 32)",
    "max_records": "cap on records in one report (default 1,000,000)",
}


def _limits(max_input_mb: int | None, max_decompressed_mb: int | None, max_zip_members: int | None,
            max_records: int | None) -> Limits:
    from mailfleet.dmarc.model import Limits

    base = Limits()
    try:
        return Limits(
            max_input_bytes=int(max_input_mb) * MIB if max_input_mb else base.max_input_bytes,
            max_decompressed_bytes=int(max_decompressed_mb) * MIB if max_decompressed_mb else base.max_decompressed_bytes,
            max_zip_members=int(max_zip_members) if max_zip_members else base.max_zip_members,
            max_records=int(max_records) if max_records else base.max_records)
    except ValueError as exc:
        raise IngestError(f"bad limit: {exc}") from None


def _paths(positional: str | None, repeated: list[str] | None) -> list[str]:
    raw = [p for p in (positional or "").split(",") if p] + list(repeated or [])
    if not raw:
        raise IngestError("no input given: pass FILE (or several separated by commas, a directory or a glob)")
    out: list[str] = []
    for item in raw:
        if any(ch in item for ch in "*?[") and not Path(item).exists():
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise IngestError(f"{item} matches no file; check the pattern")
            out.extend(matches)
        else:
            out.append(item)
    return out


def _since_seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = str(text).strip().lower()
    try:
        if text and text[-1] in units:
            value = int(text[:-1]) * units[text[-1]]
        else:
            value = int(text) * 3600
    except ValueError:
        value = -1
    if value <= 0:
        raise IngestError(f"--since {text!r} is not a duration; use e.g. 24h, 90m, 2d")
    return value


@task(positional=["files"], iterable=["path"],
      help={"files": "report file(s): comma-separated; directories and quoted globs work", "path": "another input",
            "json": "print the JSON of the command-line contract", **LIMIT_HELP})
@reports_errors
def parse(c, files=None, path=None, json=False, max_input_mb=None, max_decompressed_mb=None, max_zip_members=None,
          max_records=None):
    """Parse DMARC aggregate / SMTP TLS reports and print them; stores nothing. Exit 1 if any file is rejected."""
    from mailfleet.dmarc.ingest import gather_files
    from mailfleet.dmarc.parse_input import parse_input, report_to_json, tls_report_to_json

    limits = _limits(max_input_mb, max_decompressed_mb, max_zip_members, max_records)
    reports, tls, errors = [], [], []
    for file in gather_files(_paths(files, path)):
        try:
            with open(file, "rb") as handle:
                outcome = parse_input(str(file), handle, limits)
        except OSError as exc:
            errors.append({"file": str(file), "reason": f"cannot read it: {exc.strerror}"})
            continue
        except Exception as exc:  # noqa: BLE001 - one odd file must not hide the others' results
            errors.append({"file": str(file), "reason": f"could not be read ({exc.__class__.__name__}: {exc}); "
                                                         "please report it as a mailfleet bug"})
            continue
        if outcome.error:
            errors.append({"file": str(file), "reason": outcome.error})
        reports.extend(report_to_json(r) for r in outcome.reports)
        tls.extend(tls_report_to_json(r) for r in outcome.tls_reports)
    if json:
        print_json({"reports": reports, "errors": errors, "tls_reports": tls})
    else:
        for r in reports:
            messages = sum(rec["count"] for rec in r["records"])
            passed = sum(rec["count"] for rec in r["records"] if "pass" in (rec["dkim"], rec["spf"]))
            print(f"{r['begin'][:10]} {r['org_name']:<24} {r['domain']:<24} records={len(r['records'])} "
                  f"messages={messages} pass={passed} fail={messages - passed}  ({r['file']})")
        for t in tls:
            print(f"{t['begin'][:10]} TLS {t['org_name']:<20} policies={len(t['policies'])}  ({t['file']})")
        for e in errors:
            print(f"rejected: {e['file']}: {e['reason']}")
    if errors:
        raise Exit(code=1)


@task(positional=["paths"], iterable=["path"],
      help={"paths": "files or directories (comma-separated; quoted globs work)", "path": "another input",
            "db": "SQLite database (created if missing)",
            "quarantine": "where rejected files go, each with a .reason.txt (default: <db>.quarantine/ next to the db)",
            "json": "print per-file results as JSON",
            "workers": "parse small files in N processes while this one writes SQLite (default: the number "
                       "of CPUs, at most 4; 1 = a single process)",
            **LIMIT_HELP})
@reports_errors
def ingest(c, paths=None, db=None, path=None, quarantine=None, json=False, workers=0, max_input_mb=None,
           max_decompressed_mb=None, max_zip_members=None, max_records=None):
    """Ingest report files into SQLite (idempotent: a report already stored is counted as a duplicate)."""
    from mailfleet.dmarc.ingest import ingest_paths
    from mailfleet.dmarc.store import load_store

    db_path = _db(db)
    limits = _limits(max_input_mb, max_decompressed_mb, max_zip_members, max_records)
    quarantine_dir = Path(quarantine) if quarantine else db_path.with_name(db_path.name + ".quarantine")
    conn = load_store(db_path)
    try:
        summary = ingest_paths(conn, _paths(paths, path), limits=limits, quarantine=quarantine_dir,
                               workers=int(workers) if int(workers) > 0 else min(os.cpu_count() or 1, 4))
    finally:
        conn.close()
    if json:
        print_json(summary.as_json())
    else:
        print(f"{len(summary.files)} files: {summary.total('stored')} reports stored "
              f"({summary.total('records')} records, {summary.total('messages')} messages), "
              f"{summary.total('duplicates')} duplicates, {summary.total('tls_stored')} TLS reports, "
              f"{len(summary.rejected)} rejected")
        for f in summary.rejected:
            print(f"rejected: {f.file}: {f.rejected} -> {f.quarantined}")


@task(help={"db": "SQLite database", "days": "last N UTC days including today (0 = everything; default 7)",
            "json": "print [{day, domain, source_ip, messages, pass, fail}]", "now": "pretend it is this epoch",
            "domain": "only this policy domain"})
@reports_errors
def summary(c, db=None, days=7, json=False, now=None, domain=None):
    """Per UTC day, domain and source IP: messages, DMARC pass and fail."""
    from mailfleet.dmarc.store import SECONDS_PER_DAY, day_floor, load_store, load_summary

    conn = load_store(_existing_db(db))
    try:
        days = int(days)
        if days < 0:
            raise IngestError(f"--days {days} is negative; give 0 for everything or a number of days")
        today = day_floor(int(now) if now else int(time.time()))
        rows = load_summary(conn, None if days == 0 else today - (days - 1) * SECONDS_PER_DAY, domain)
    finally:
        conn.close()
    if json:
        print_json(rows)
        return
    print(f"{'day':<10}  {'domain':<28} {'source_ip':<39} {'messages':>9} {'pass':>9} {'fail':>9}")
    for row in rows:
        print(f"{row['day']:<10}  {row['domain']:<28} {row['source_ip']:<39} {row['messages']:>9} "
              f"{row['pass']:>9} {row['fail']:>9}")


@task(help={"db": "SQLite database", "since": "recent window, by ingestion time (default 24h; 90m, 2d work)",
            "baseline_days": "history to compare with (default 30)", "drop": "pass-rate drop that alerts (default 0.2)",
            "json": "print the alerts as JSON", "now": "pretend it is this epoch"})
@reports_errors
def alerts(c, db=None, since="24h", baseline_days=30, drop=0.2, json=False, now=None):
    """Sources that newly fail DMARC or whose pass rate dropped; exit 1 when there are any (for cron)."""
    from mailfleet.dmarc.classify_alerts import AlertRules, classify_alerts
    from mailfleet.dmarc.store import SECONDS_PER_DAY, load_source_totals, load_store

    window = _since_seconds(since)
    moment = int(now) if now else int(time.time())
    conn = load_store(_existing_db(db))
    try:
        start = moment - window
        recent = load_source_totals(conn, start)
        baseline = load_source_totals(conn, start - int(baseline_days) * SECONDS_PER_DAY, start)
    finally:
        conn.close()
    found = classify_alerts(recent, baseline, AlertRules(drop=float(drop)))
    if json:
        print_json({"alerts": [a.as_json() for a in found]})
    else:
        for alert in found:
            print(f"{alert.kind}: {alert.why}")
        if not found:
            print(f"no alerts: {len(recent)} sources reported in the last {since}, none newly failing")
    if found:
        raise Exit(code=1)


@task(help={"db": "SQLite database", "imap_host": "IMAP server", "imap_port": "port (default 993, or 143 with --starttls)",
            "user": "mailbox login", "password_ref": "secret reference for the password: env:NAME or file:PATH",
            "mailbox": "folder to read (default INBOX)", "processed": "folder for ingested messages (default Processed)",
            "rejected": "folder for messages with no usable report (default Rejected)",
            "starttls": "use STARTTLS on port 143 instead of implicit TLS", "cafile": "CA bundle to verify the server",
            "quarantine": "where rejected messages are copied (default: next to the db)",
            "inventory": "inventory: its fleet.dmarc_reports address is the default --user, and file: secrets "
                         "are resolved against its folder",
            "json": "print the result as JSON", "max_messages": "handle at most this many messages per run"})
@reports_errors
def fetch(c, db=None, imap_host=None, imap_port=None, user=None, password_ref=None, mailbox="INBOX",
          processed="Processed", rejected="Rejected", starttls=False, cafile=None, quarantine=None, inventory=None,
          json=False, max_messages=1000):
    """Read the report mailbox over IMAP (TLS), ingest each new message once, move it to Processed/Rejected."""
    from mailfleet.dmarc.fetch import ImapSettings, fetch_reports
    from mailfleet.dmarc.store import load_store
    from mailfleet.secrets import resolve_secret

    if inventory and not user:
        from mailfleet.inventory import load_valid_inventory

        fleet = load_valid_inventory(inventory).fleet
        user = fleet.settings.dmarc_reports if fleet is not None else None
    if not imap_host or not user or not password_ref:
        raise IngestError("dmarc.fetch needs --imap-host, --user and --password-ref (env:NAME or file:PATH); "
                          "the password itself is never passed on the command line")
    base_dir = Path(inventory).resolve().parent if inventory else Path.cwd()
    password = resolve_secret(password_ref, base_dir)
    settings = ImapSettings(host=imap_host, port=int(imap_port) if imap_port else (143 if starttls else 993),
                            user=user, password=password, mailbox=mailbox, processed=processed, rejected=rejected,
                            starttls=bool(starttls), cafile=cafile, max_messages=int(max_messages))
    db_path = _db(db)
    quarantine_dir = Path(quarantine) if quarantine else db_path.with_name(db_path.name + ".quarantine")
    conn = load_store(db_path)
    try:
        result = fetch_reports(conn, settings, quarantine=quarantine_dir)
    finally:
        conn.close()
    if json:
        print_json(result.as_json())
    else:
        print(f"{result.messages} messages: {result.ingested} ingested ({result.reports} new reports), "
              f"{result.duplicates} already known, {result.rejected} rejected")


@task(help={"db": "SQLite database", "nameserver": "resolver to ask (IP[:port]; default: the system's)",
            "ttl": "cache lifetime in hours (default 24)", "concurrency": "parallel lookups (default 16)",
            "timeout": "seconds per lookup (default 2)", "limit": "at most this many IPs per run (default 5000)"})
@reports_errors
def enrich(c, db=None, nameserver=None, ttl=24, concurrency=16, timeout=2.0, limit=5000):
    """Reverse DNS and a sender name for source IPs, cached in the db; separate from parsing by design."""
    from mailfleet.dmarc.enrich import DnsPtrResolver, enrich_sources
    from mailfleet.dmarc.store import load_store

    conn = load_store(_existing_db(db))
    try:
        resolver = DnsPtrResolver(nameserver=nameserver, timeout=float(timeout))
        done = enrich_sources(conn, resolver, ttl_seconds=int(float(ttl) * 3600), concurrency=int(concurrency),
                              limit=int(limit))
    finally:
        conn.close()
    print(f"{done.looked_up} IPs looked up ({done.named} named, {done.failed} failed), {done.cached} still cached")


def _db(db: str | None) -> Path:
    if not db:
        raise IngestError("no --db given: name the SQLite file to use, e.g. --db var/dmarc.sqlite")
    return Path(db)


def _existing_db(db: str | None) -> Path:
    path = _db(db)
    if not path.exists():
        raise IngestError(f"{path} does not exist; ingest reports first with `mailfleet dmarc.ingest PATH --db {path}`")
    return path


parse.variadic = "path"  # dmarc.parse FILE... (see cli/program.py)
ingest.variadic = "path"


def register(ns: Collection) -> None:
    ns.add_collection(Collection("dmarc", parse, ingest, summary, alerts, fetch, enrich))
