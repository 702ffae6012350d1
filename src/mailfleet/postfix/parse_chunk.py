"""Fast path for plain syslog text (traditional, ``maillog_file`` and RFC 3339 stamps): find
the lines that carry a queue id or ``NOQUEUE`` in a whole block of text at C speed, and
hand back their envelopes.

Half of a Mailcow log is postscreen, TLS and connect chatter that never names a queue id.
A per-line Python parser pays for every one of those lines; here one regular expression
with a literal prefix (``]: QID: ``) skips them inside the regex engine, and only matching
lines are sliced apart in Python. The per-line parser (``parse_line``) stays the reference
and handles the other wrappers; tests check both agree on every fixture.

A line counts as *unparsed* when it has no ``tag[pid]: `` marker at all (Postfix always
logs its pid), or when the text before a queue-id marker is not a valid
``<stamp> <host> <tag>[pid]`` envelope.

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

_QID_MARK = re.compile(
    r"\]: ([0-9A-F]{5,20}|[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]{6,}z"
    r"[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]+|NOQUEUE): ([^\n]*)"
)
_PID_MARK = re.compile(r"\[\d+\]: ")

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

    def scan(self, text: str) -> Iterator[Match]:
        """Envelopes of the queue-id lines of ``text`` (complete lines, ``\\n``-separated)."""
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        self.lines += lines
        marked = len(_PID_MARK.findall(text))  # one "[pid]: " per syslog line
        if marked < lines:
            self._count_unmarked(text)
        stamp_of = self._stamp
        rfind = text.rfind
        for found in _QID_MARK.finditer(text):
            end = found.start()
            start = rfind("\n", 0, end) + 1
            head = text[start:end]  # "<stamp> <host> <tag>[<pid>"
            bracket = head.rfind("[")
            space = head.rfind(" ", 0, bracket)
            if bracket == -1 or space == -1 or not head[bracket + 1 :].isdigit():
                self._bad(text, start)
                continue
            stamp_end = head.find(" ", head.find(":"))
            host_start = stamp_end + 1
            if space <= host_start or " " in head[host_start:space]:
                self._bad(text, start)
                continue
            ts = stamp_of(head[:stamp_end])
            if ts is None:
                self._bad(text, start)
                continue
            rest = found.group(2)
            if rest.endswith("\r"):
                rest = rest[:-1]
            yield ts, head[host_start:space], head[space + 1 : bracket], found.group(1), rest

    def count_lines(self, text: str) -> None:
        """Count ``text``'s lines and its unmarked (unparsed) lines. ``feed`` does this too
        unless told the parent process does it (``parallel.py``: balancing the two cores)."""
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        self.lines += lines
        if len(_PID_MARK.findall(text)) < lines:
            self._count_unmarked(text)

    def feed(
        self, text: str, correlator: Correlator, host_override: str | None, hosts: set[str],
        full: Callable[[], bool], flush: Callable[[], None], count: bool = True, defer_deliveries: bool = False,
    ) -> int:
        """``scan`` fused with event parsing and correlation: the five most frequent lines
        (delivery, queue active, client, removal, message-id) go straight to the correlator
        without an event tuple. Returns the number of events; calls ``flush`` whenever
        ``full()`` says a batch of rows is ready. ``count`` False leaves the line count and
        the unmarked lines to ``count_lines`` elsewhere; ``defer_deliveries`` leaves the
        delivery fields to ``correlate.expand_deliveries`` in the writing process."""
        if count:
            self.count_lines(text)
        stamp_of = self._stamp
        rfind = text.rfind
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
        find = text.find
        for found in _QID_MARK.finditer(text):
            end = found.start()  # the "]" closing "[pid"
            start = rfind("\n", 0, end) + 1
            bracket = rfind("[", start, end)
            space = rfind(" ", start, bracket)
            stamp_end = find(" ", find(":", start, space), space)
            if bracket == -1 or space == -1 or stamp_end == -1 or stamp_end < start:
                self._bad(text, start)
                continue
            stamp = text[start:stamp_end]
            if stamp != last_stamp:
                ts = stamp_of(stamp)
                if ts is None:
                    self._bad(text, start)
                    continue
                last_stamp = stamp
            if host_override is None:
                host = text[stamp_end + 1 : space]
                if host is not last_host and host != last_host:
                    if not host or " " in host:
                        self._bad(text, start)
                        continue
                    hosts.add(host)
                    last_host = host
                else:
                    host = last_host
            else:
                host = host_override
            tag = text[space + 1 : bracket]
            qid, rest = found.group(1, 2)
            if rest.endswith("\r"):
                rest = rest[:-1]
            if rest.startswith("to="):
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
            elif rest.endswith("(queue active)") and tag.endswith("/qmgr"):
                fields = parse_active_fields(rest)
                if fields is None:
                    continue
                active(ts, host, qid, *fields)
                events += 1
            elif rest.startswith("client=") and tag.endswith("smtpd"):
                client(ts, host, qid, tag, *parse_client_fields(tag, rest))
                events += 1
            elif rest == "removed" and (tag.endswith("/qmgr") or tag.endswith("/postsuper")):
                removed(ts, host, qid)
                events += 1
            elif rest.startswith("message-id=") and tag.endswith("/cleanup"):
                message_id(ts, host, qid, split_address(rest[11:].strip()))
                events += 1
            else:
                event = parse_queue_event(ts, host, tag, qid, rest)  # type: ignore[arg-type]
                if event is not None:
                    feed(event)
                    events += 1
        return events

    def _bad(self, text: str, start: int) -> None:
        self.unparsed += 1
        if len(self.samples) < 5:
            end = text.find("\n", start)
            self.samples.append(text[start : end if end != -1 else len(text)][:200])

    def _count_unmarked(self, text: str) -> None:
        """Rare path: find the lines without a ``[pid]: `` marker (blank lines do not count)."""
        for line in text.split("\n"):
            if line.strip() and _PID_MARK.search(line) is None:
                self.unparsed += 1
                if len(self.samples) < 5:
                    self.samples.append(line[:200])
