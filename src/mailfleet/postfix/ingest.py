"""Ingest log files into the store, incrementally and exactly once per line.

Each file is one transaction: its rows, its links and its cursor commit together, so an
interrupted ingest leaves nothing half-stored and the next run starts where the last
commit ended.

The cursor is keyed by a fingerprint of the file's first line, not by its path, because
logrotate renames (``mail.log`` → ``mail.log.1`` → ``mail.log.2.gz``): the renamed or
compressed file keeps its cursor and only its new tail is read, and the fresh ``mail.log``
starts at zero. Only complete lines (ending in a newline) are consumed; a line being
written stays for the next run.

Formats are sniffed per line (see ``parse_line``); a file that starts with ``[`` is the
Mailcow API's JSON array and is de-duplicated by a time cursor instead (the API has no
offsets: it is newest-first and trimmed every minute).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import IO, Any

from mailfleet.errors import IngestError
from mailfleet.postfix import store
from mailfleet.postfix.correlate import Correlator
from mailfleet.postfix.model import IngestCounts
from mailfleet.postfix.parse_events import parse_event
from mailfleet.postfix.parse_line import Envelope, SyslogClock, parse_any_line, parse_api_entries

CHUNK = 4 << 20
FLUSH_ROWS = 20000
MAX_API_FILE = 256 << 20
SAMPLES = 5


def _fingerprint(first_line: bytes) -> str:
    return hashlib.sha256(first_line.rstrip(b"\r\n")).hexdigest()[:32]


def _open(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


class LineFeeder:
    """Feeds envelopes through parse → correlate → store, flushing rows in batches."""

    def __init__(self, conn: sqlite3.Connection, host_override: str | None) -> None:
        self.conn = conn
        self.host_override = host_override
        self.first_delivery_id = store.next_delivery_id(conn)
        self.first_message_id = store.next_message_id(conn)
        self.correlator = Correlator(self.first_message_id, store.load_open_messages(conn))
        self.lines = self.unparsed = self.other = self.events = 0
        self.deliveries = self.rejects = 0
        self.samples: list[str] = []
        self.hosts: set[str] = set()

    def feed_lines(self, lines: Iterable[str], parse: Callable[[str], Envelope | None]) -> None:
        correlator = self.correlator
        feed = correlator.feed
        override = self.host_override
        hosts = self.hosts
        unparsed = other = events = count = 0
        for line in lines:
            count += 1
            envelope = parse(line)
            if envelope is None:
                if line.strip():
                    unparsed += 1
                    if len(self.samples) < SAMPLES:
                        self.samples.append(line[:200])
                continue
            host = override or envelope[1]
            event = parse_event(envelope[0], host, envelope[2], envelope[3])
            if event is None:
                other += 1
                continue
            events += 1
            if host not in hosts:
                hosts.add(host)
            feed(event)
            if len(correlator.deliveries) >= FLUSH_ROWS:
                self.flush()
        self.lines += count
        self.unparsed += unparsed
        self.other += other
        self.events += events

    def feed_envelopes(self, envelopes: Iterable[Envelope]) -> None:
        self.feed_lines(envelopes, lambda envelope: envelope)  # type: ignore[arg-type]

    def flush(self, final: bool = False) -> None:
        messages, deliveries, rejects = self.correlator.drain(final)
        self.deliveries += len(deliveries)
        self.rejects += len(rejects)
        store.save_rows(self.conn, messages, deliveries, rejects)

    def finish(self, source: str) -> IngestCounts:
        """Write what is left, record hosts seen, link hand-offs; caller commits."""
        self.flush(final=True)
        if self.hosts:  # names seen in logs never override the inventory's mapping
            self.conn.executemany(
                "INSERT OR IGNORE INTO host_addresses (address, host, why) VALUES (lower(?), ?, 'syslog hostname')",
                [(name, name) for name in sorted(self.hosts)],
            )
        links = store.save_links(self.conn, self.first_delivery_id, self.first_message_id)
        return IngestCounts(
            source=source, lines=self.lines, unparsed=self.unparsed, other=self.other,
            events=self.events, messages=self.correlator.message_count, deliveries=self.deliveries,
            rejects=self.rejects, links=links, unparsed_samples=tuple(self.samples),
        )  # fmt: skip


def _iter_complete_lines(handle: IO[bytes], consumed: list[int]) -> Iterator[str]:
    """Decoded complete lines from the handle's position; ``consumed[0]`` grows by the bytes
    of every complete line handed out (a trailing partial line is left unread)."""
    rest = b""
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        data = rest + chunk
        end = data.rfind(b"\n")
        if end == -1:
            rest = data
            continue
        rest = data[end + 1 :]
        block = data[: end + 1]
        text = block.decode("utf-8", errors="replace")
        lines = text.split("\n")
        lines.pop()  # after the final newline
        consumed[0] += len(block)
        yield from (line[:-1] if line.endswith("\r") else line for line in lines)


def save_log_file(
    conn: sqlite3.Connection,
    path: Path,
    *,
    host: str | None = None,
    zone: tzinfo = timezone.utc,
    reference: datetime | None = None,
    now: float,
) -> IngestCounts:
    """Ingest one file (plain, gzip, Docker json-file, RFC 3339, or Mailcow API JSON)."""
    if not path.is_file():
        raise IngestError(f"{path} is not a file; pass Postfix log files (plain or .gz) to logs.ingest.")
    if reference is None:
        reference = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    clock = SyslogClock(reference, zone)
    try:
        with _open(path) as handle:
            first = handle.readline(1 << 16)
            if not first.strip():
                return IngestCounts(source=str(path), note="empty file")
            if first.lstrip()[:1] == b"[":
                return _save_api_file(conn, path, handle, first, host, now)
            fingerprint = _fingerprint(first)
            key = f"file:{fingerprint}"
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = store.load_source(conn, key) or {
                    "key": key, "kind": "file", "fingerprint": fingerprint, "offset": 0,
                    "last_ts": None, "last_hashes": None,
                }  # fmt: skip
                offset = int(cursor["offset"])
                handle.seek(offset)
                if offset and handle.tell() != offset:
                    offset = 0
                    handle.seek(0)
                consumed = [offset]
                feeder = LineFeeder(conn, host)
                feeder.feed_lines(
                    _iter_complete_lines(handle, consumed), lambda line: parse_any_line(line, clock)
                )
                counts = feeder.finish(str(path))
                cursor.update(path=str(path), host=host, offset=consumed[0])
                store.save_source(conn, cursor, now)
                if offset:
                    counts = replace(counts, note=f"resumed at byte {offset}")
                store.save_ingest_record(conn, now, counts)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise IngestError(f"cannot read {path}: {exc}; nothing from it was stored.") from None
    return counts


def _entry_hash(envelope: Envelope) -> str:
    return hashlib.sha256(f"{envelope[0]}|{envelope[2]}|{envelope[3]}".encode()).hexdigest()[:16]


def save_time_ordered(
    conn: sqlite3.Connection,
    key: str,
    kind: str,
    envelopes: list[Envelope],
    *,
    host: str,
    path: str | None,
    now: float,
    bad: int = 0,
) -> IngestCounts:
    """Ingest envelopes from a source without offsets (Mailcow API, ``docker compose logs``):
    lines older than the cursor, or at its exact time and already hashed, are skipped."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = store.load_source(conn, key) or {
            "key": key, "kind": kind, "fingerprint": None, "offset": 0, "last_ts": None, "last_hashes": None,
        }  # fmt: skip
        last_ts = cursor["last_ts"]
        seen = set(json.loads(cursor["last_hashes"])) if cursor["last_hashes"] else set()
        fresh: list[Envelope] = []
        skipped = 0
        for envelope in envelopes:
            ts = envelope[0]
            if last_ts is not None and (ts < last_ts or (ts == last_ts and _entry_hash(envelope) in seen)):
                skipped += 1
                continue
            fresh.append(envelope)
        feeder = LineFeeder(conn, host)
        feeder.feed_envelopes(fresh)
        counts = feeder.finish(path or key)
        if fresh:
            newest = max(e[0] for e in fresh)
            hashes = {_entry_hash(e) for e in fresh if e[0] == newest}
            if newest == last_ts:
                hashes |= seen
            cursor.update(last_ts=newest, last_hashes=json.dumps(sorted(hashes)))
        cursor.update(path=path, host=host)
        store.save_source(conn, cursor, now)
        counts = replace(counts, skipped=skipped, unparsed=counts.unparsed + bad)
        store.save_ingest_record(conn, now, counts)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return counts


def _save_api_file(
    conn: sqlite3.Connection, path: Path, handle: IO[bytes], first: bytes, host: str | None, now: float
) -> IngestCounts:
    if host is None:
        raise IngestError(
            f"{path} is Mailcow API log JSON, which names no host; pass --host NAME "
            "(the fleet host it was fetched from) so its messages can be traced."
        )
    data = first + handle.read(MAX_API_FILE + 1)
    if len(data) > MAX_API_FILE:
        raise IngestError(f"{path} is larger than {MAX_API_FILE >> 20} MB of API JSON; split it or ingest Docker logs.")
    try:
        envelopes, bad = parse_api_entries(json.loads(data), host)
    except ValueError as exc:
        raise IngestError(f"{path} looks like Mailcow API JSON but does not parse: {exc}") from None
    return save_time_ordered(conn, f"api:{host}", "api", envelopes, host=host, path=str(path), now=now, bad=bad)


def save_log_files(
    conn: sqlite3.Connection,
    paths: Iterable[Path],
    *,
    host: str | None = None,
    zone: tzinfo = timezone.utc,
    reference: datetime | None = None,
    now: float,
) -> list[IngestCounts]:
    """Ingest several files in the order given (rotate order: oldest first is best)."""
    return [save_log_file(conn, Path(p), host=host, zone=zone, reference=reference, now=now) for p in paths]


def describe(counts: IngestCounts) -> dict[str, Any]:
    data = {
        "source": counts.source, "lines": counts.lines, "unparsed": counts.unparsed, "other": counts.other,
        "events": counts.events, "messages": counts.messages, "deliveries": counts.deliveries,
        "rejects": counts.rejects, "links": counts.links,
    }  # fmt: skip
    if counts.skipped:
        data["skipped"] = counts.skipped
    if counts.note:
        data["note"] = counts.note
    if counts.unparsed_samples:
        data["unparsed_samples"] = list(counts.unparsed_samples)
    return data

