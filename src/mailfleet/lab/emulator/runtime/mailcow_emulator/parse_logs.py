"""Postfix log lines (``maillog_file``) as Mailcow's API and ``docker compose logs`` show them.

Pure: the year and the clock are passed in.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_SYSLOG = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? (?P<host>\S+) "
    r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$")
_ISO = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?P<host>\S+) "
                  r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$")
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}


def parse_log_time(line: str, now: datetime) -> datetime | None:
    """The time of a syslog-style line; the year is ``now``'s unless that puts it in the future."""
    match = _SYSLOG.match(line)
    if match:
        hh, mm, ss = (int(x) for x in match.group("time").split(":"))
        stamp = datetime(now.year, _MONTHS.get(match.group("mon"), 1), int(match.group("day")), hh, mm, ss,
                         tzinfo=timezone.utc)
        if stamp > now.replace(tzinfo=timezone.utc) and (stamp - now.replace(tzinfo=timezone.utc)).days > 1:
            stamp = stamp.replace(year=now.year - 1)
        return stamp
    match = _ISO.match(line)
    if match:
        try:
            stamp = datetime.fromisoformat(match.group("ts").replace("Z", "+00:00"))
        except ValueError:
            return None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return None


def parse_postfix_line(line: str, now: datetime) -> dict[str, str] | None:
    """``{"time", "program", "priority", "message"}`` like Mailcow's Redis ``POSTFIX_MAILLOG``."""
    match = _SYSLOG.match(line) or _ISO.match(line)
    stamp = parse_log_time(line, now)
    if not match or stamp is None:
        return None
    message = match.group("message")
    priority = "info"
    for level in ("warning", "error", "fatal", "panic"):
        if message.startswith(level + ":"):
            priority = {"warning": "warn", "error": "err", "fatal": "crit", "panic": "emerg"}[level]
            break
    return {"time": str(int(stamp.timestamp())), "program": match.group("program"), "priority": priority,
            "message": message}


def parse_postfix_log(text: str, count: int, now: datetime) -> list[dict[str, str]]:
    """The newest ``count`` entries, newest first (Redis LPUSH order)."""
    entries = [e for e in (parse_postfix_line(l, now) for l in text.splitlines()) if e]
    return list(reversed(entries))[:max(count, 0)]


def render_compose_log_line(container: str, stamp: datetime | None, line: str, timestamps: bool, width: int) -> str:
    """``postfix-mailcow-1  | 2026-11-29T00:00:00.000000000Z <line>`` (Compose v2, --no-color)."""
    prefix = f"{container.ljust(width)}  | "
    if timestamps and stamp is not None:
        utc = stamp.astimezone(timezone.utc)
        return f"{prefix}{utc.strftime('%Y-%m-%dT%H:%M:%S')}.{utc.microsecond:06d}000Z {line}"
    return prefix + line


_RELATIVE = re.compile(r"^(\d+)(s|m|h)$")


def parse_since(value: str, now: datetime) -> datetime:
    """``--since``: RFC 3339, a Unix timestamp, or a duration like ``10m``/``2h``. ValueError otherwise."""
    from datetime import timedelta

    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours"}[unit]: amount})
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
