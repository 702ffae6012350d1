"""``logs.ingest``, ``logs.pull``, ``logs.summary`` and the top-level ``trace``.

Invoke has no variadic positionals, so ``FILES`` is one argument that may hold several
paths separated by commas and shell-style globs (quote them: ``'/var/log/mail.log*'``);
rotated files are read oldest first.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import time
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from invoke import Collection, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors
from mailfleet.errors import IngestError, MailfleetError
from mailfleet.postfix import store
from mailfleet.postfix.parse_since import parse_since
from mailfleet.postfix.render_summary import render_summary_text
from mailfleet.postfix.render_trace import render_trace_json, render_trace_text
from mailfleet.postfix.summary import load_summary
from mailfleet.postfix.trace import load_trace


INGEST_USAGE = """Usage: mailfleet logs.ingest FILES --db FILE [--host NAME] [--tz ZONE] [--inventory PATH] [--json]

Ingest Postfix logs (syslog, RFC 3339, maillog_file, Docker json-file, Mailcow API JSON).

  FILES             paths, comma-separated; quoted globs allowed ('/var/log/mail.log*'); .gz read
  --db FILE         SQLite log store (created if missing)
  --host NAME       tag every line with this host (Docker logs, Mailcow API JSON)
  --tz ZONE         zone of year-less syslog stamps (default UTC)
  --inventory PATH  map relay addresses to fleet hosts with this inventory
  --json            print the per-file counts as JSON"""


def _out(text: str | None = None, data: Any = None) -> None:
    """Print text or JSON; a reader that went away (``| head``) ends the output quietly."""
    try:
        if data is not None:
            print_json(data)
        else:
            print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit


def _require_db(db: str | None) -> str:
    if not db:
        raise MailfleetError("--db FILE is required: the SQLite log store (e.g. --db var/logs.db).")
    return db


def _rotation_key(path: str) -> tuple[int, str]:
    """``mail.log.3.gz`` before ``mail.log.2`` before ``mail.log``: oldest first."""
    found = re.search(r"\.(\d+)(?:\.gz)?$", path)
    return (-int(found.group(1)) if found else 0, path)


def expand_files(spec: str) -> list[Path]:
    paths: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if any(ch in part for ch in "*?["):
            matches = glob.glob(part)
            if not matches:
                raise IngestError(f"{part!r} matches no file; check the path or the pattern.")
            paths.extend(sorted(matches, key=_rotation_key))
        else:
            paths.append(part)
    if not paths:
        raise IngestError("logs.ingest needs at least one file: `mailfleet logs.ingest /var/log/mail.log --db logs.db`.")
    return [Path(p) for p in paths]


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MailfleetError(
            f"--tz {name!r} is not a time zone name; give the zone the log's host writes local time in, "
            "e.g. Europe/Berlin or UTC."
        ) from None


def _inventory_addresses(path: Path) -> tuple[Any, list[tuple[str, str, str]]]:
    """The inventory, and every address and name by which a relay line may name a host."""
    from mailfleet.inventory import load_valid_inventory

    inventory = load_valid_inventory(path)
    pairs: list[tuple[str, str, str]] = []
    for name, host in inventory.fleet.hosts.items():
        pairs.append((name, name, "inventory name"))
        pairs.append((host.address, name, "inventory address"))
        if host.hostname:
            pairs.append((host.hostname, name, "inventory hostname"))
            pairs.append((host.hostname.split(".", 1)[0], name, "inventory hostname label"))
        pairs.extend((ip, name, "inventory public_ips") for ip in host.public_ips)
    return inventory, pairs


def _print_counts(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _out(data={"sources": rows})
        return
    lines = []
    for row in rows:
        notes = [row["note"]] if row.get("note") else []
        if row.get("skipped"):
            notes.append(f"{row['skipped']} lines already ingested, skipped")
        note = f" ({'; '.join(notes)})" if notes else ""
        lines.append(
            f"{row['source']}: {row['lines']} lines, {row['messages']} messages, {row['deliveries']} deliveries, "
            f"{row['rejects']} rejects, {row['links']} hand-offs linked; {row['unparsed']} unrecognised, "
            f"{row['other']} without message events{note}"
        )
        if row["unparsed"] >= 10 and row["unparsed"] > row["other"] + row["events"]:  # wrong file or format?
            lines += [f"    unrecognised: {sample}" for sample in row.get("unparsed_samples", [])]
    if lines:
        _out("\n".join(lines))


@task(
    positional=["files"],
    iterable=["file"],
    help={
        "files": "log files: paths, comma-separated, globs allowed (quote them); plain or .gz",
        "file": "another log file (extra words after FILES become --file; see cli/program.py)",
        "db": "SQLite log store (created if missing)",
        "host": "tag every line with this host (for formats whose host is a container id, and API JSON)",
        "tz": "zone of year-less syslog stamps (default UTC)",
        "inventory": "map relay addresses to fleet hosts with this inventory",
        "json": "print the per-file counts as JSON",
    },
)
@reports_errors
def ingest(c, files=None, db=None, host=None, tz="UTC", inventory=None, json=False, file=None):
    """Ingest Postfix logs (syslog, RFC 3339, maillog_file, Docker json-file, Mailcow API JSON)."""
    if files in (None, "-h", "--help"):  # Invoke hands --help to a missing positional
        print(INGEST_USAGE)
        return
    paths = expand_files(",".join([files, *(file or [])]))
    db = _require_db(db)
    zone = _zone(tz)
    from mailfleet.postfix.ingest import describe, save_log_files  # multiprocessing: load only when used

    conn = store.load_store(db)
    try:
        if inventory:
            _, pairs = _inventory_addresses(Path(inventory))
            with conn:
                store.save_host_addresses(conn, pairs)
        # A first big ingest's trace indexes are built while the next task runs (and waited
        # for before the command exits): see mailfleet.background.
        counts = save_log_files(conn, paths, host=host, zone=zone, now=time.time(), indexes_in_background=True)
    finally:
        conn.close()
    _print_counts([describe(c) for c in counts], json)


@task(
    help={
        "host": "inventory name of the host to pull from (several: comma-separated)",
        "all": "pull from every host that runs Mailcow (every role but monitoring)",
        "db": "SQLite log store",
        "inventory": "inventory file (default: $MAILFLEET_INVENTORY, the lab's, or inventory/example.yaml)",
        "since": "first pull only: start here (24h, 7d, ISO date); later pulls continue from the cursor",
        "json": "print the counts as JSON",
    }
)
@reports_errors
def pull(c, db=None, host=None, all=False, inventory=None, since=None, json=False):
    """Pull the postfix-mailcow container's log from hosts over SSH and ingest it, host by host.

    Every host's outcome is reported; one host's failure stores nothing for that host and
    does not stop the others (exit 1 at the end).
    """
    from mailfleet.postfix.pull import SshLineSource, save_pulled_logs
    from mailfleet.ssh import open_connection

    db = _require_db(db)
    now = time.time()
    inv, pairs = _inventory_addresses(default_inventory_path(inventory))
    if all:  # every host that runs Mailcow: inbound and outbound relays, not monitoring-only hosts
        names = sorted(name for name, h in inv.fleet.hosts.items() if set(h.roles) - {"monitoring"})
    elif host:
        names = [name.strip() for name in host.split(",") if name.strip()]
    else:
        raise MailfleetError("logs.pull needs --host NAME (or several, comma-separated) or --all.")
    unknown = [name for name in names if name not in inv.fleet.hosts]
    if unknown:
        known = ", ".join(sorted(inv.fleet.hosts)) or "none"
        raise MailfleetError(f"host {', '.join(unknown)} not in {inv.path}; known hosts: {known}. Nothing was pulled.")
    from mailfleet.postfix.ingest import describe  # multiprocessing: load only when used

    start = parse_since(since, now) if since else None
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    conn = store.load_store(db)
    try:
        with conn:
            store.save_host_addresses(conn, pairs)
        for name in names:
            try:
                connection = open_connection(inv.fleet.hosts[name], inv.fleet, inv.base_dir)
                try:
                    counts = save_pulled_logs(
                        conn, SshLineSource(connection, name), host=name,
                        install_dir=inv.fleet.settings.mailcow.install_dir, now=now, since=start,
                    )  # fmt: skip
                finally:
                    connection.close()
                rows.append(describe(counts))
            except MailfleetError as exc:
                failures.append(str(exc))
                rows.append({"source": f"{name}:postfix-mailcow", "error": str(exc)})
    finally:
        conn.close()
    if json:
        _out(data={"sources": rows})
    else:
        _print_counts([row for row in rows if "error" not in row], False)
    if failures:
        raise MailfleetError(
            f"{len(failures)} of {len(names)} host(s) failed:\n" + "\n".join(f"  {f}" for f in failures)
        )


@task(
    help={
        "db": "SQLite log store",
        "json": "print JSON (the contract's counts plus per day/domain/relay, deferral reasons, queue delay)",
        "since": "only lines since (24h, 7d, ISO date)",
        "top": "rows per breakdown (default 10)",
    }
)
@reports_errors
def summary(c, db=None, json=False, since=None, top=10):
    """Fleet-wide totals, per day, per domain, per relay, deferral reasons, queue delay per transport."""
    db = _require_db(db)
    start = parse_since(since, time.time()) if since else None
    conn = store.load_store(db, create=False)
    try:
        data = load_summary(conn, since=start, top=int(top))
    finally:
        conn.close()
    if json:
        _out(data=data)
    else:
        _out(render_summary_text(data))


@task(
    help={
        "db": "SQLite log store",
        "message_id": "Message-ID header (with or without <>)",
        "queue_id": "Postfix queue id on any host",
        "sender": "envelope sender",
        "recipient": "envelope recipient",
        "since": "only messages since (24h, 7d, ISO date)",
        "limit": "at most this many traces, newest first (default 20)",
        "json": "print JSON",
    }
)
@reports_errors
def trace(c, db=None, message_id=None, queue_id=None, sender=None, recipient=None, since=None, limit=20, json=False):
    """One message's path across the fleet: accepted, each attempt, hand-offs, bounce, removal."""
    db = _require_db(db)
    start = parse_since(since, time.time()) if since else None
    conn = store.load_store(db, create=False)
    try:
        traces = load_trace(conn, message_id=message_id, queue_id=queue_id, sender=sender, recipient=recipient,
                            since=start, limit=int(limit))  # fmt: skip
    finally:
        conn.close()
    query = {k: v for k, v in (("message_id", message_id), ("queue_id", queue_id), ("sender", sender),
                               ("recipient", recipient), ("since", since)) if v is not None}  # fmt: skip
    if json:
        _out(data=render_trace_json(traces, query))
    else:
        _out(render_trace_text(traces))


ingest.variadic = "file"  # logs.ingest FILE... (see cli/program.py)


def register(ns: Collection) -> None:
    ns.add_collection(Collection("logs", ingest, pull, summary))
    ns.add_task(trace)
