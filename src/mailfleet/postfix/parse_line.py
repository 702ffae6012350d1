"""Line envelopes: turn one raw log line into ``(ts, host, tag, text)``, whatever wrapped it.

Postfix lines reach us in five wrappers, and each hides the same payload
``<host> <syslog_name>/<daemon>[<pid>]: <text>``:

* traditional syslog (``Nov  8 10:00:00 host postfix/smtpd[1]: ...``): no year, no zone;
* Postfix's own ``maillog_file`` (``Nov 08 ...``): the same shape with a zero-padded day;
* RFC 3339 (``2025-11-27T00:00:01.817764+01:00 host ...``);
* Docker json-file (``{"log": "<syslog line>\\n", "stream": ..., "time": "<RFC 3339 UTC>"}``),
  as Mailcow's ``postfix-mailcow`` container writes it, and ``docker compose logs
  --timestamps`` output (``postfix-mailcow-1  | <RFC 3339> <syslog line>``);
* the Mailcow API's JSON entries (``{"time": "<unix seconds>", "program": ..., "message": ...}``).

A year-less stamp is completed from an injected reference time (file mtime, Docker time,
the caller's clock), never from the wall clock here: pflogsumm's wall-clock guess labels
last year's log as this year's. Everything here is pure and allocation-light, because it
runs once per line on million-line files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

Envelope = tuple[float, str, str, str]
"""``(epoch seconds UTC, host, syslog tag without pid, message text)``."""

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}

# A log line dated more than this after the reference time belongs to the previous year
# (reference = file mtime or "now": a log cannot be written in the future, apart from skew).
FUTURE_TOLERANCE = timedelta(days=2)


@dataclass
class SyslogClock:
    """Completes year-less syslog stamps: the year comes from ``reference``, stepping back a
    year for dates that would lie in its future (a December line read in January).

    ``zone`` is the zone the logging host writes local time in (Mailcow passes ``TZ`` to the
    container). Hour starts are cached, so DST changes are honoured at hour resolution.
    """

    reference: datetime
    zone: tzinfo = timezone.utc
    _hours: dict[tuple[int, int, int], float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.reference.tzinfo is None:
            raise ValueError("SyslogClock needs an aware reference time (add tzinfo)")

    def epoch(self, month: int, day: int, hour: int, minute: int, second: float) -> float:
        key = (month, day, hour)
        start = self._hours.get(key)
        if start is None:
            start = self._hour_start(month, day, hour)
            self._hours[key] = start
        return start + minute * 60 + second

    def _hour_start(self, month: int, day: int, hour: int) -> float:
        limit = self.reference + FUTURE_TOLERANCE
        year = self.reference.astimezone(self.zone).year
        for candidate in (year, year - 1, year - 2, year - 3, year - 4):
            try:
                moment = datetime(candidate, month, day, hour, tzinfo=self.zone)
            except ValueError:  # 29 Feb outside a leap year: try an earlier year
                continue
            if moment <= limit:
                return moment.timestamp()
        raise ValueError(f"no year makes {month:02d}-{day:02d} valid before {self.reference.isoformat()}")


# The usual shape (Docker's "time", rsyslog's RFC 3339 stamps): whole seconds, a fraction of up
# to nine digits, "Z" or "+HH:MM". Every line has its own fraction, but the whole seconds repeat,
# so their epoch is computed once per second and zone (``_SECONDS``), not per line.
_USUAL_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_SECONDS: dict[str, float] = {}


def parse_rfc3339(stamp: str) -> float:
    """Epoch seconds of an RFC 3339 stamp, nanoseconds allowed; a stamp without offset is UTC."""
    usual = _USUAL_RFC3339.fullmatch(stamp)
    if usual is None:
        return _parse_rfc3339(stamp)
    whole, fraction, zone = usual.groups()
    key = whole + zone
    base = _SECONDS.get(key)
    if base is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        base = _SECONDS[key] = _parse_rfc3339(key)
    return base + float("0" + fraction) if fraction else base


def _parse_rfc3339(stamp: str) -> float:
    """Any stamp ``datetime.fromisoformat`` reads, the fraction split off first (it takes at
    most microseconds) and added back."""
    dot = stamp.find(".")
    fraction = 0.0
    if dot != -1:
        end = dot + 1
        while end < len(stamp) and stamp[end].isdigit():
            end += 1
        fraction = float("0" + stamp[dot:end])
        stamp = stamp[:dot] + stamp[end:]
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() + fraction


def split_payload(payload: str) -> tuple[str, str, str] | None:
    """``host tag[pid]: text`` → ``(host, tag, text)``; None when the shape is not there."""
    space = payload.find(" ")
    if space <= 0:
        return None
    colon = payload.find(": ", space + 1)
    if colon == -1:
        if payload.endswith(":"):
            colon = len(payload) - 1
        else:
            return None
    tag = payload[space + 1 : colon]
    bracket = tag.find("[")
    if bracket != -1:
        if not tag.endswith("]"):
            return None
        tag = tag[:bracket]
    if not tag or " " in tag:
        return None
    return payload[:space], tag, payload[colon + 2 :]


def parse_syslog_line(line: str, clock: SyslogClock) -> Envelope | None:
    """Traditional (``Nov  8``) or maillog_file (``Nov 08``) or RFC 3339 syslog line."""
    if len(line) < 20:
        return None
    first = line[0]
    if first.isdigit():
        space = line.find(" ")
        if space < 19 or line[4] != "-":
            return None
        try:
            ts = parse_rfc3339(line[:space])
        except ValueError:
            return None
        parts = split_payload(line[space + 1 :])
    else:
        if line[5] == " " and line[4].isdigit():  # the lax "Jan 1 00:00:00" some tools write
            line = f"{line[:4]} {line[4:]}"
        month = MONTHS.get(line[:3])
        if month is None or line[3] != " " or line[6] != " " or line[9] != ":" or line[12] != ":":
            return None
        try:
            day = int(line[4:6])
            hour = int(line[7:9])
            minute = int(line[10:12])
            second = int(line[13:15])
            ts = clock.epoch(month, day, hour, minute, second)
        except ValueError:
            return None
        # Some relays write fractional seconds (``10:00:00.123``); skip them.
        rest = 15
        if line[15] == ".":
            while rest + 1 < len(line) and line[rest + 1].isdigit():
                rest += 1
            rest += 1
        parts = split_payload(line[rest + 1 :])
    if parts is None:
        return None
    return ts, parts[0], parts[1], parts[2]


def parse_docker_json_line(line: str, clock: SyslogClock) -> Envelope | None:
    """A Docker json-file line: the inner syslog line, timed by Docker's own UTC ``time``."""
    try:
        record = json.loads(line)
        inner = record["log"].rstrip("\n")
        ts = parse_rfc3339(record["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    envelope = parse_syslog_line(inner, clock)
    if envelope is None:
        return None
    return ts, envelope[1], envelope[2], envelope[3]


def parse_compose_line(line: str, clock: SyslogClock) -> Envelope | None:
    """``docker compose logs --timestamps`` output: ``svc-1  | <RFC 3339> <syslog line>``."""
    bar = line.find(" | ")
    if bar == -1:
        bar = line.find("| ")
        if bar == -1:
            return None
        inner = line[bar + 2 :]
    else:
        inner = line[bar + 3 :]
    space = inner.find(" ")
    if space == -1:
        return None
    try:
        ts = parse_rfc3339(inner[:space])
    except ValueError:
        return None
    envelope = parse_syslog_line(inner[space + 1 :], clock)
    if envelope is None:
        return None
    return ts, envelope[1], envelope[2], envelope[3]


def parse_any_line(line: str, clock: SyslogClock) -> Envelope | None:
    """Sniff the wrapper from the first character and parse; None for anything unknown."""
    if not line:
        return None
    first = line[0]
    if first == "{":
        return parse_docker_json_line(line, clock)
    if first.isupper() or (first.isdigit() and len(line) > 4 and line[4] == "-"):
        return parse_syslog_line(line, clock)
    if " | " in line[:80] or "| " in line[:80]:
        return parse_compose_line(line, clock)
    return None


def parse_api_entries(entries: Any, host: str) -> tuple[list[Envelope], int]:
    """Mailcow API ``/api/v1/get/logs/postfix/N`` JSON (a list, newest first) → envelopes in
    chronological order, plus the count of entries without the expected fields.

    The API carries no host, so the caller names it; order within one second is kept by
    reversing the newest-first list before a stable sort on time.
    """
    if isinstance(entries, dict) and not entries:
        return [], 0  # Mailcow answers {} when there is nothing
    if not isinstance(entries, list):
        raise ValueError("Mailcow API log JSON must be a list of {time, program, message} objects")
    envelopes: list[Envelope] = []
    bad = 0
    for entry in reversed(entries):
        try:
            ts = float(entry["time"])
            program = str(entry["program"])
            message = str(entry["message"])
        except (KeyError, TypeError, ValueError):
            bad += 1
            continue
        bracket = program.find("[")
        envelopes.append((ts, host, program[:bracket] if bracket != -1 else program, message))
    envelopes.sort(key=lambda e: e[0])
    return envelopes, bad
