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
import marshal
import multiprocessing
import pickle
import resource
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import IO, Any

from mailfleet.errors import IngestError
from mailfleet.postfix import store
from mailfleet.postfix.correlate import Correlator
from mailfleet.postfix.model import IngestCounts
from mailfleet.postfix.parse_chunk import ChunkScanner
from mailfleet.postfix.parse_events import parse_event, parse_queue_event
from mailfleet.postfix.parse_line import (
    Envelope,
    SyslogClock,
    parse_any_line,
    parse_api_entries,
    parse_compose_line,
)

CHUNK = 4 << 20
FLUSH_ROWS = 4000
MAX_API_FILE = 256 << 20
MAX_LINE = 1 << 20
SAMPLES = 5
# Below this many bytes to read, a second process costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20

Batch = tuple[list, list, list]
"""``(messages, deliveries, rejects)`` rows, ready for ``store.save_rows``."""


def _fingerprint(first_line: bytes) -> str:
    return hashlib.sha256(first_line.rstrip(b"\r\n")).hexdigest()[:32]


def _open(path: Path) -> IO[bytes]:
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


@dataclass
class Totals:
    """What a producer saw; ``consumed`` is the byte offset after the last complete line."""

    lines: int = 0
    unparsed: int = 0
    other: int = 0
    events: int = 0
    messages: int = 0
    deliveries: int = 0
    rejects: int = 0
    consumed: int = 0
    hosts: set[str] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)
    peak_rss_mb: float = 0.0


class Producer:
    """Parse → correlate, handing row batches to ``sink``. No SQLite here, so it can run in
    a separate process while the parent writes the previous batch (two cores, two stages)."""

    def __init__(self, next_id: int, open_messages: list, host_override: str | None, sink: Callable[[Batch], None]):
        self.correlator = Correlator(next_id, open_messages)
        self.host_override = host_override
        self.sink = sink
        self.totals = Totals()

    def _maybe_flush(self) -> None:
        if len(self.correlator.deliveries) + len(self.correlator.done) >= FLUSH_ROWS:
            self.flush()

    def flush(self, final: bool = False) -> None:
        batch = self.correlator.drain(final)
        self.totals.deliveries += len(batch[1])
        self.totals.rejects += len(batch[2])
        if final or batch[0] or batch[1] or batch[2]:
            self.sink(batch)

    def feed_envelopes(self, envelopes: Iterable[Envelope | None], raw: Iterable[str] | None = None) -> None:
        """Per-line path: ``None`` envelopes are unparsed lines (``raw`` gives their text)."""
        totals = self.totals
        feed = self.correlator.feed
        override = self.host_override
        hosts = totals.hosts
        raw_lines = iter(raw) if raw is not None else None
        for envelope in envelopes:
            line = next(raw_lines) if raw_lines is not None else ""
            totals.lines += 1
            if envelope is None:
                if line.strip():
                    totals.unparsed += 1
                    if len(totals.samples) < SAMPLES:
                        totals.samples.append(line[:200])
                continue
            if not envelope[2]:  # stamped, but not a Postfix line
                totals.other += 1
                continue
            host = override or envelope[1]
            event = parse_event(envelope[0], host, envelope[2], envelope[3])
            if event is None:
                totals.other += 1
                continue
            totals.events += 1
            hosts.add(host)
            feed(event)
            self._maybe_flush()

    def feed_text(self, text: str, scanner: ChunkScanner) -> None:
        """Fast path for plain syslog text: only queue-id lines are looked at."""
        totals = self.totals
        correlator = self.correlator
        before_lines, before_unparsed = scanner.lines, scanner.unparsed
        events = scanner.feed(
            text, correlator, self.host_override, totals.hosts,
            lambda: len(correlator.deliveries) >= FLUSH_ROWS or len(correlator.done) >= FLUSH_ROWS, self.flush,
        )  # fmt: skip
        self._maybe_flush()
        lines = scanner.lines - before_lines
        unparsed = scanner.unparsed - before_unparsed
        totals.lines += lines
        totals.unparsed += unparsed
        totals.events += events
        totals.other += lines - unparsed - events
        for sample in scanner.samples[len(totals.samples) :]:
            totals.samples.append(sample)

    def finish(self, consumed: int) -> Totals:
        self.flush(final=True)
        self.totals.messages = self.correlator.message_count
        self.totals.consumed = consumed
        self.totals.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return self.totals


def _iter_blocks(handle: IO[bytes], consumed: list[int]) -> Iterator[str]:
    """Decoded blocks of complete lines from the handle's position; ``consumed[0]`` grows by
    the bytes handed out (a trailing partial line is left for the next run)."""
    rest = b""
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            break
        data = rest + chunk
        end = data.rfind(b"\n")
        if end == -1:
            if len(data) > MAX_LINE:  # no log line is this long: binary junk; skip it, count it
                consumed[0] += len(data)
                yield "\x00 (over 1 MB without a newline, skipped)\n"
                rest = b""
                continue
            rest = data
            continue
        rest = data[end + 1 :]
        block = data[: end + 1]
        consumed[0] += len(block)
        yield block.decode("utf-8", errors="replace")


def produce_file(
    handle: IO[bytes],
    offset: int,
    sniff: bytes,
    clock: SyslogClock,
    producer: Producer,
) -> Totals:
    """Read from ``offset`` to the last complete line and feed the producer."""
    consumed = [offset]
    fast = sniff[:1] != b"{" and parse_compose_line(sniff.decode("utf-8", "replace").rstrip("\r\n"), clock) is None
    if fast:
        scanner = ChunkScanner(clock)
        for block in _iter_blocks(handle, consumed):
            producer.feed_text(block, scanner)
    else:
        for block in _iter_blocks(handle, consumed):
            lines = block.split("\n")
            lines.pop()
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
            producer.feed_envelopes((parse_any_line(line, clock) for line in lines), lines)
    return producer.finish(consumed[0])


def _worker(
    path: Path, offset: int, sniff: bytes, clock: SyslogClock, next_id: int, open_messages: list,
    host: str | None, pipe: Any,
) -> None:  # fmt: skip
    """Child process: produce batches into the pipe; the parent writes them to SQLite.

    Rows travel as ``marshal`` (plain tuples, lists, strings, numbers): several times cheaper
    than pickle on both ends. Frames start with a kind byte: R rows, D done, E error.
    """
    gc.disable()
    try:
        producer = Producer(
            next_id, open_messages, host, lambda batch: pipe.send_bytes(b"R" + marshal.dumps(batch))
        )
        with _open(path) as handle:
            handle.seek(offset)
            totals = produce_file(handle, offset, sniff, clock, producer)
        pipe.send_bytes(b"D" + pickle.dumps(totals))
    except BaseException as exc:  # report, never hang the parent
        try:
            pipe.send_bytes(b"E" + f"{type(exc).__name__}: {exc}".encode())
        except OSError:
            pass
    finally:
        pipe.close()


def _produce_in_child(
    conn: sqlite3.Connection, path: Path, offset: int, sniff: bytes, clock: SyslogClock, next_id: int,
    open_messages: list, host: str | None,
) -> Totals:  # fmt: skip
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_worker, args=(path, offset, sniff, clock, next_id, open_messages, host, send), daemon=True
    )
    child.start()
    send.close()
    try:
        while True:
            try:
                frame = receive.recv_bytes()
            except EOFError:
                raise IngestError(f"the parser process for {path} died; nothing from it was stored.") from None
            kind = frame[:1]
            if kind == b"R":
                store.save_rows(conn, *marshal.loads(frame[1:]), first_new_id=next_id)
            elif kind == b"D":
                return pickle.loads(frame[1:])
            else:
                reason = frame[1:].decode(errors="replace")
                raise IngestError(f"parsing {path} failed ({reason}); nothing from it was stored.")
    finally:
        receive.close()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()


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
) -> IngestCounts:
    """Ingest one file (plain, gzip, Docker json-file, RFC 3339, or Mailcow API JSON).

    ``parallel`` None decides by size: big plain files are parsed in a child process while
    this one writes SQLite.
    """
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
                first_delivery_id = store.next_delivery_id(conn)
                first_message_id = store.next_message_id(conn)
                open_messages = store.load_open_messages(conn)
                size = path.stat().st_size
                if parallel is None:
                    parallel = size - offset >= PARALLEL_MIN_BYTES and not isinstance(handle, gzip.GzipFile)
                # The rows are acyclic tuples: the cyclic collector would only rescan them.
                gc_was_enabled = gc.isenabled()
                gc.disable()
                try:
                    if parallel:
                        totals = _produce_in_child(
                            conn, path, offset, first, clock, first_message_id, open_messages, host
                        )
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
    conn.execute("BEGIN IMMEDIATE")
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
    if counts.peak_rss_mb:
        data["parser_peak_rss_mb"] = round(counts.peak_rss_mb, 1)
    return data

