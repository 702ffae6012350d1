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

import gc
import gzip
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import IO, Any

from mailfleet import background
from mailfleet.errors import IngestError
from mailfleet.postfix import store
from mailfleet.postfix.model import IngestCounts
from mailfleet.postfix.parallel import produce_in_child
from mailfleet.postfix.parse_line import Envelope, SyslogClock, parse_api_entries
from mailfleet.postfix.produce import SAMPLES, Producer, Totals, open_log, produce_file

MAX_API_FILE = 256 << 20
WAL_AUTOCHECKPOINT = 1000  # SQLite's default, in pages
# Below this many bytes to read, a second process costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20

def _fingerprint(first_line: bytes) -> str:
    return hashlib.sha256(first_line.rstrip(b"\r\n")).hexdigest()[:32]


class LineFeeder:
    """Ingest from envelopes already in memory (pulled logs, Mailcow API JSON)."""

    def __init__(self, conn: sqlite3.Connection, host_override: str | None) -> None:
        self.conn = conn
        self.first_delivery_id = store.next_delivery_id(conn)
        self.first_message_id = store.next_message_id(conn)
        self.producer = Producer(
            self.first_message_id, store.load_open_messages(conn), host_override,
            lambda batch: store.save_rows(conn, *batch, first_new_id=self.first_message_id),
        )  # fmt: skip

    def feed_envelopes(self, envelopes: Iterable[Envelope]) -> None:
        self.producer.feed_envelopes(envelopes)

    def finish(self, source: str) -> IngestCounts:
        totals = self.producer.finish(0)
        return _finish(self.conn, source, totals, self.first_delivery_id, self.first_message_id)


def _finish(
    conn: sqlite3.Connection, source: str, totals: Totals, first_delivery_id: int, first_message_id: int
) -> IngestCounts:
    """Record hosts seen, link hand-offs; the caller commits."""
    if totals.hosts:  # names seen in logs never override the inventory's mapping
        conn.executemany(
            "INSERT OR IGNORE INTO host_addresses (address, host, why) VALUES (lower(?), ?, 'syslog hostname')",
            [(name, name) for name in sorted(totals.hosts)],
        )
    links = store.save_links(conn, first_delivery_id, first_message_id)
    return IngestCounts(
        source=source, lines=totals.lines, unparsed=totals.unparsed, other=totals.other,
        events=totals.events, messages=totals.messages, deliveries=totals.deliveries,
        rejects=totals.rejects, links=links, unparsed_samples=tuple(totals.samples[:SAMPLES]),
        peak_rss_mb=totals.peak_rss_mb,
    )  # fmt: skip


def save_log_file(
    conn: sqlite3.Connection,
    path: Path,
    *,
    host: str | None = None,
    zone: tzinfo = timezone.utc,
    reference: datetime | None = None,
    now: float,
    parallel: bool | None = None,
    indexes_in_background: bool = False,
) -> IngestCounts:
    """Ingest one file (plain, gzip, Docker json-file, RFC 3339, or Mailcow API JSON).

    ``parallel`` None decides by size: big plain files are parsed in a child process while
    this one writes SQLite. A big first ingest into an empty store builds the lookup-only
    indexes after its rows; ``indexes_in_background`` builds them after the commit on a
    thread (``mailfleet.background``) instead of before it, so a next task (the summary,
    which does not use them) runs meanwhile.
    """
    if not path.is_file():
        raise IngestError(f"{path} is not a file; pass Postfix log files (plain or .gz) to logs.ingest.")
    if reference is None:
        reference = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    clock = SyslogClock(reference, zone)
    deferred: list[str] = []  # lookup indexes left to the background build
    try:
        with open_log(path) as handle:
            first = handle.readline(1 << 16)
            if not first.strip():
                return IngestCounts(source=str(path), note="empty file")
            if first.lstrip()[:1] == b"[":
                return _save_api_file(conn, path, handle, first, host, now)
            fingerprint = _fingerprint(first)
            key = f"file:{fingerprint}"
            # The previous file's background index build first: it needs the write lock this
            # transaction takes, and no thread may be inside SQLite when the parser forks.
            background.join_all()
            store.begin_write(conn, str(path))
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
                first_delivery_id = store.next_delivery_id(conn)
                first_message_id = store.next_message_id(conn)
                fresh = first_message_id == first_delivery_id == 1
                if not fresh:  # a background build that was cut off: rebuild before adding rows
                    store.create_indexes(conn, store.missing_deferred_indexes(conn))
                open_messages = store.load_open_messages(conn)
                size = path.stat().st_size
                if parallel is None:
                    parallel = size - offset >= PARALLEL_MIN_BYTES and not isinstance(handle, gzip.GzipFile)
                # The rows are acyclic tuples: the cyclic collector would only rescan them.
                gc_was_enabled = gc.isenabled()
                gc.disable()
                try:
                    if parallel:
                        # An empty store gets its lookup-only indexes built once, at the end.
                        deferred = store.drop_deferred_indexes(conn) if fresh else []
                        totals = produce_in_child(
                            conn, path, offset, first, clock, first_message_id, open_messages, host
                        )
                        if not indexes_in_background:
                            store.create_indexes(conn, deferred)
                            deferred = []
                    else:
                        producer = Producer(
                            first_message_id, open_messages, host,
                            lambda batch: store.save_rows(conn, *batch, first_new_id=first_message_id),
                        )  # fmt: skip
                        totals = produce_file(handle, offset, first, clock, producer)
                finally:
                    if gc_was_enabled:
                        gc.enable()
                counts = _finish(conn, str(path), totals, first_delivery_id, first_message_id)
                cursor.update(path=str(path), host=host, offset=totals.consumed)
                store.save_source(conn, cursor, now)
                if offset:
                    counts = replace(counts, note=f"resumed at byte {offset}")
                store.save_ingest_record(conn, now, counts)
                if deferred:  # the background build checkpoints once its indexes are in
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                if deferred:
                    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise IngestError(f"cannot read {path}: {exc}; nothing from it was stored.") from None
    if deferred:
        db_path = store.database_file(conn)
        try:
            builder = store.open_for_thread(db_path)
        except sqlite3.Error:  # no second connection (out of descriptors?): build them here
            store.create_indexes(conn, store.missing_deferred_indexes(conn))
        else:
            background.start(f"building the trace indexes of {db_path}", lambda: store.build_deferred_indexes(builder))
    return counts


def _entry_hash(envelope: Envelope) -> str:
    return hashlib.sha256(f"{envelope[0]}|{envelope[2]}|{envelope[3]}".encode()).hexdigest()[:16]


def save_time_ordered(
    conn: sqlite3.Connection,
    key: str,
    kind: str,
    envelopes: Iterable[Envelope],
    *,
    host: str,
    path: str | None,
    now: float,
    bad: int | Callable[[], int] = 0,
) -> IngestCounts:
    """Ingest envelopes from a source without offsets (Mailcow API, ``docker compose logs``):
    lines older than the cursor, or at its exact time and already hashed, are skipped.

    ``envelopes`` may be a stream (a remote command's output): it is consumed once, inside
    the transaction, so memory does not grow with the size of the pull. ``bad`` (or a
    callable giving it after the stream ends) is the count of lines that were not Postfix.
    """
    store.begin_write(conn, path or key)
    try:
        cursor = store.load_source(conn, key) or {
            "key": key, "kind": kind, "fingerprint": None, "offset": 0, "last_ts": None, "last_hashes": None,
        }  # fmt: skip
        last_ts = cursor["last_ts"]
        seen = set(json.loads(cursor["last_hashes"])) if cursor["last_hashes"] else set()
        state: dict[str, Any] = {"skipped": 0, "newest": None, "hashes": set()}

        def fresh() -> Iterator[Envelope]:
            for envelope in envelopes:
                ts = envelope[0]
                if last_ts is not None and ts <= last_ts:
                    if ts < last_ts or _entry_hash(envelope) in seen:
                        state["skipped"] += 1
                        continue
                newest = state["newest"]
                if newest is None or ts > newest:
                    state["newest"] = ts
                    state["hashes"] = {_entry_hash(envelope)}
                elif ts == newest:
                    state["hashes"].add(_entry_hash(envelope))
                yield envelope

        feeder = LineFeeder(conn, host)
        feeder.feed_envelopes(fresh())
        counts = feeder.finish(path or key)
        newest = state["newest"]
        if newest is not None:
            hashes = state["hashes"] | seen if newest == last_ts else state["hashes"]
            cursor.update(last_ts=newest, last_hashes=json.dumps(sorted(hashes)))
        cursor.update(path=path, host=host)
        store.save_source(conn, cursor, now)
        bad_lines = bad() if callable(bad) else bad
        counts = replace(counts, skipped=state["skipped"], unparsed=counts.unparsed + bad_lines)
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
    indexes_in_background: bool = False,
) -> list[IngestCounts]:
    """Ingest several files in the order given (rotate order: oldest first is best)."""
    return [
        save_log_file(
            conn, Path(p), host=host, zone=zone, reference=reference, now=now,
            indexes_in_background=indexes_in_background,
        )  # fmt: skip
        for p in paths
    ]


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
    if counts.peak_rss_mb:
        data["parser_peak_rss_mb"] = round(counts.peak_rss_mb, 1)
    return data

