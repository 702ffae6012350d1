"""Fast path for plain syslog text (traditional, ``maillog_file`` and RFC 3339 stamps): find
the lines that carry a queue id or ``NOQUEUE`` in a whole block of text at C speed, and
hand back their envelopes.

Half of a Mailcow log is postscreen, TLS and connect chatter that never names a queue id.
A per-line Python parser pays for every one of those lines; here one regular expression,
anchored at each newline and possessive throughout (no backtracking), matches only the
queue-id lines and splits them into ``stamp, host, tag, qid, rest`` inside the regex engine
(``findall``): Python sees only the pieces of matching lines. The per-line parser
(``parse_line``) stays the reference and handles the other wrappers; tests check both agree
on every fixture.

A line counts as *unparsed* when it has no ``tag[pid]: `` marker at all (Postfix always
logs its pid), when it has a queue-id marker (``[pid]: QID: ``) but not the
``<stamp> <host> <tag>[pid]`` envelope before it, or when its stamp is not a date. The line
counting (``count_lines``) counts the marked lines, the scan counts the matched ones; the
difference is the malformed lines, looked up line by line only in a block that has some.

``feed`` is the production loop (scan, parse and correlate fused, no intermediate tuples);
``scan`` is the same scan as a plain generator of envelopes, kept simple for tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mailfleet.postfix.correlate import Correlator
from mailfleet.postfix.parse_events import (
    parse_active_fields,
    parse_client_fields,
    parse_delivery_fields,
    parse_queue_event,
    split_address,
)
from mailfleet.postfix.parse_line import MONTHS, SyslogClock, parse_rfc3339

_QID = (
    r"[0-9A-F]{5,20}|[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]{6,}z"
    r"[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]+|NOQUEUE"
)
# The envelope of a queue-id line: the stamp runs to the first space after the line's first
# colon ("Nov 26 00:00:05", "2025-11-27T00:00:01.5+01:00"), then host, tag, [pid], queue id.
_HEAD = r"([^:\n]*+:[^ \n]*+) ([^ \n]++) ([^ \n\[]++)\[[0-9]++\]: (" + _QID + r"): ([^\n]*+)"
_QUEUE_LINE = re.compile(r"\n" + _HEAD)
_FIRST_QUEUE_LINE = re.compile(_HEAD)
# Every "[pid]: " marker; the group is ":" when a queue id follows, else "" (one-character
# strings and bytes are cached by CPython, so the list costs no new objects). ASCII [0-9],
# not \d, so the str and bytes versions match the same lines.
_PID_MARK = re.compile(r"\[[0-9]+\]: (?:(?:" + _QID + r")(:) )?")
_PID_MARK_BYTES = re.compile(_PID_MARK.pattern.encode())
_QID_MARK = re.compile(r"\[[0-9]+\]: (?:" + _QID + r"): ")

Match = tuple[float, str, str, str, str]
"""``(ts, host, tag, qid, rest)``."""


class ChunkScanner:
    """Keeps the stamp caches between blocks; ``unparsed`` accumulates."""

    def __init__(self, clock: SyslogClock) -> None:
        self.clock = clock
        self.unparsed = 0
        self.lines = 0
        self.samples: list[str] = []
        self._last_stamp = ""
        self._last_ts = 0.0
        self._minutes: dict[str, float] = {}
        # Queue-id lines matched per block fed with ``count=False``, for the counting process.
        self.matched_blocks: list[int] = []

    def _stamp(self, stamp: str) -> float | None:
        if stamp == self._last_stamp:
            return self._last_ts
        try:
            if len(stamp) == 15 and stamp[12] == ":":  # "Nov 26 00:00:05": cache the minute
                minute = self._minutes.get(stamp[:12])
                if minute is None:
                    if len(self._minutes) > 4096:
                        self._minutes.clear()
                    day, clock_time = stamp[4:12].split()
                    minute = self._minutes[stamp[:12]] = self.clock.epoch(
                        MONTHS[stamp[:3]], int(day), int(clock_time[0:2]), int(clock_time[3:5]), 0
                    )
                ts = minute + int(stamp[13:15])
            elif stamp[0].isdigit():
                ts = parse_rfc3339(stamp)
            else:
                month = MONTHS[stamp[:3]]
                day, clock_time = stamp[4:].split()  # "Nov  8", "Nov 08" and the lax "Nov 8"
                ts = self.clock.epoch(
                    month, int(day), int(clock_time[0:2]), int(clock_time[3:5]), float(clock_time[6:])
                )
        except (KeyError, ValueError, IndexError):
            return None
        self._last_stamp = stamp
        self._last_ts = ts
        return ts

    def _queue_lines(self, text: str) -> list[tuple[str, str, str, str, str]]:
        """``(stamp, host, tag, qid, rest)`` of every queue-id line with a well-formed envelope;
        ``rest`` may still end in ``\\r``."""
        found = _QUEUE_LINE.findall(text)
        first = _FIRST_QUEUE_LINE.match(text)  # the block's first line has no newline before it
        if first is not None:
            found.insert(0, first.groups())
        return found

    def scan(self, text: str) -> Iterator[Match]:
        """Envelopes of the queue-id lines of ``text`` (complete lines, ``\\n``-separated)."""
        queue_marked = self.count_lines(text)
        found = self._queue_lines(text)
        self.settle(text, queue_marked, len(found))
        for stamp, host, tag, qid, rest in found:
            ts = self._stamp(stamp)
            if ts is None:
                self._bad(text, f"{stamp} {host} {tag}[")
                continue
            if rest.endswith("\r"):
                rest = rest[:-1]
            yield ts, host, tag, qid, rest

    def count_lines(self, text: str) -> int:
        """Count ``text``'s lines and its unmarked (unparsed) lines; return how many lines carry
        a queue-id marker, for ``settle``. ``feed`` does this too unless told the parent
        process does it (``parallel.py``: balancing the two cores)."""
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        self.lines += lines
        marks = _PID_MARK.findall(text)  # one per syslog line
        if len(marks) < lines:
            self._count_unmarked(text)
        return len(marks) - marks.count("")

    def count_raw_lines(self, data: bytes) -> int:
        """``count_lines`` on undecoded bytes (the counting process reads the file itself and
        skips the decoding): newlines and the ASCII markers are the same bytes either way."""
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        self.lines += lines
        marks = _PID_MARK_BYTES.findall(data)
        if len(marks) < lines:
            self._count_unmarked(data.decode("utf-8", errors="replace"))
        return len(marks) - marks.count(b"")

    def settle(self, text: str, queue_marked: int, matched: int) -> None:
        """Count the queue-id lines of ``text`` that the envelope did not match (a block where
        ``count_lines`` saw more markers than the scan matched); rare, so line by line."""
        if queue_marked == matched:
            return
        for line in text.split("\n"):
            if _QID_MARK.search(line) is not None and _FIRST_QUEUE_LINE.match(line) is None:
                self.unparsed += 1
                if len(self.samples) < 5:
                    self.samples.append(line[:200])

    def feed(
        self, text: str, correlator: Correlator, host_override: str | None, hosts: set[str],
        full: Callable[[], bool], flush: Callable[[], None], count: bool = True, defer_deliveries: bool = False,
    ) -> int:  # fmt: skip
        """``scan`` fused with event parsing and correlation: the five most frequent lines
        (delivery, queue active, client, removal, message-id) go straight to the correlator
        without an event tuple. Returns the number of events; calls ``flush`` whenever
        ``full()`` says a batch of rows is ready. ``count`` False leaves the line count, the
        unmarked lines and ``settle`` to the process that counts (``matched_blocks`` tells it
        what this scan matched); ``defer_deliveries`` leaves the delivery fields to
        ``correlate.expand_deliveries`` in the writing process."""
        queue_marked = self.count_lines(text) if count else -1
        found = self._queue_lines(text)
        if count:
            self.settle(text, queue_marked, len(found))
        else:
            self.matched_blocks.append(len(found))
        stamp_of = self._stamp
        delivery = correlator.delivery
        delivery_unparsed = correlator.delivery_unparsed
        removed = correlator.removed
        message_id = correlator.message_id
        active = correlator.active
        client = correlator.client
        feed = correlator.feed
        events = 0
        until_check = 256
        last_host = None
        last_stamp = ""
        ts: float | None = 0.0
        crlf = "\r" in text  # one search per block instead of one per line
        for stamp, host, tag, qid, rest in found:
            if stamp != last_stamp:
                ts = stamp_of(stamp)
                if ts is None:
                    self._bad(text, f"{stamp} {host} {tag}[")
                    last_stamp = ""
                    continue
                last_stamp = stamp
            if host_override is None:
                if host != last_host:
                    hosts.add(host)
                    last_host = host
                else:
                    host = last_host  # one object for the batch's rows: marshal sends it once
            else:
                host = host_override
            if crlf and rest.endswith("\r"):
                rest = rest[:-1]
            first = rest[:1]  # a cached one-character string: cheaper than a method call per branch
            if first == "t" and rest.startswith("to="):
                if defer_deliveries:
                    if ", status=" not in rest:  # exactly when parse_delivery_fields gives None
                        continue
                    delivery_unparsed(ts, host, qid, tag, rest)
                else:
                    fields = parse_delivery_fields(rest)
                    if fields is None:
                        continue
                    delivery(ts, host, qid, tag, *fields)
                events += 1
                until_check -= 1
                if not until_check:  # every 256 deliveries (~1,200 lines' events): batch full?
                    until_check = 256
                    if full():
                        flush()
            elif first == "f" and rest.endswith("(queue active)") and tag.endswith("/qmgr"):
                fields = parse_active_fields(rest)
                if fields is None:
                    continue
                active(ts, host, qid, *fields)
                events += 1
            elif first == "c" and rest.startswith("client=") and tag.endswith("smtpd"):
                client(ts, host, qid, tag, *parse_client_fields(tag, rest))
                events += 1
            elif first == "r" and rest == "removed" and (tag.endswith("/qmgr") or tag.endswith("/postsuper")):
                removed(ts, host, qid)
                events += 1
            elif first == "m" and rest.startswith("message-id=") and tag.endswith("/cleanup"):
                message_id(ts, host, qid, split_address(rest[11:].strip()))
                events += 1
            else:
                event = parse_queue_event(ts, host, tag, qid, rest)  # type: ignore[arg-type]
                if event is not None:
                    feed(event)
                    events += 1
        return events

    def _bad(self, text: str, head: str) -> None:
        """A queue-id line whose stamp is not a date; ``head`` finds it for the sample."""
        self.unparsed += 1
        if len(self.samples) < 5:
            start = max(text.find(head), 0)
            start = text.rfind("\n", 0, start) + 1
            end = text.find("\n", start)
            self.samples.append(text[start : end if end != -1 else len(text)][:200])

    def _count_unmarked(self, text: str) -> None:
        """Rare path: find the lines without a ``[pid]: `` marker (blank lines do not count)."""
        for line in text.split("\n"):
            if line.strip() and _PID_MARK.search(line) is None:
                self.unparsed += 1
                if len(self.samples) < 5:
                    self.samples.append(line[:200])
