"""Parse → correlate → row batches, with no SQLite in sight.

``Producer`` turns envelopes (per-line path) or whole blocks of syslog text (the fast chunk
path) into batches of rows and hands each batch to a sink: ``store.save_rows`` in the same
process, or a pipe to the parent when a child process parses (``parallel.py``).
"""

from __future__ import annotations

import gzip
import os
import resource
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mailfleet.postfix.correlate import Correlator
from mailfleet.postfix.parse_chunk import ChunkScanner
from mailfleet.postfix.parse_events import parse_event
from mailfleet.postfix.parse_line import Envelope, SyslogClock, parse_any_line, parse_compose_line

CHUNK = 64 << 10  # small enough that a block and its matches stay in the CPU cache (measured: 4 MB blocks cost 15% more)
FLUSH_ROWS = 1000
MAX_LINE = 1 << 20
SAMPLES = 5

Batch = tuple[list, list, list]
"""``(messages, deliveries, rejects)`` rows, ready for ``store.save_rows``."""


def open_log(path: Path | int) -> IO[bytes]:
    """A log file for reading, transparently gunzipped (rotated ``.gz`` files). An ``int``
    is an open descriptor (duplicated, so closing the result leaves it open)."""
    raw = path.open("rb") if isinstance(path, Path) else os.fdopen(os.dup(path), "rb")
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
    matched_blocks: list[int] = field(default_factory=list)
    """Queue-id lines matched per block whose lines another process counts (``settle``)."""


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

    defer_deliveries = False
    """True in the parser child: delivery fields are parsed by the parent (``parallel.py``)."""

    def feed_text(self, text: str, scanner: ChunkScanner, count: bool = True) -> None:
        """Fast path for plain syslog text: only queue-id lines are looked at. ``count``
        False: another process counts the lines (``add_counted``)."""
        totals = self.totals
        correlator = self.correlator
        before_lines, before_unparsed = scanner.lines, scanner.unparsed
        events = scanner.feed(
            text, correlator, self.host_override, totals.hosts,
            lambda: len(correlator.deliveries) >= FLUSH_ROWS or len(correlator.done) >= FLUSH_ROWS, self.flush,
            count, self.defer_deliveries,
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


def add_counted(totals: Totals, lines: int, unparsed: int, samples: list[str]) -> Totals:
    """Merge line counts made in another process (``ChunkScanner.count_lines`` and
    ``settle``) into a producer's totals; their samples go first, as when one process does both."""
    totals.lines += lines
    totals.unparsed += unparsed
    totals.other += lines - unparsed
    totals.samples = (samples + totals.samples)[:SAMPLES]
    return totals


JUNK_LINE = "\x00 (over 1 MB without a newline, skipped)\n"


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
                yield JUNK_LINE
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
    count_elsewhere: Callable[[int, int], None] | None = None,
) -> Totals:
    """Read from ``offset`` to the last complete line and feed the producer.

    ``count_elsewhere(start, end)``, on the fast path: hand the line counting of each block's
    byte range to another process (the parent, which waits for rows anyway); the totals then
    lack those lines until ``add_counted``."""
    consumed = [offset]
    fast = sniff[:1] != b"{" and parse_compose_line(sniff.decode("utf-8", "replace").rstrip("\r\n"), clock) is None
    if fast:
        scanner = ChunkScanner(clock)
        start = offset
        for block in _iter_blocks(handle, consumed):
            if count_elsewhere is not None and block is not JUNK_LINE:
                count_elsewhere(start, consumed[0])
                producer.feed_text(block, scanner, count=False)
            else:
                producer.feed_text(block, scanner)
            start = consumed[0]
        totals = producer.finish(consumed[0])
        totals.matched_blocks = scanner.matched_blocks
        return totals
    else:
        for block in _iter_blocks(handle, consumed):
            lines = block.split("\n")
            lines.pop()
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
            producer.feed_envelopes((parse_any_line(line, clock) for line in lines), lines)
    return producer.finish(consumed[0])
