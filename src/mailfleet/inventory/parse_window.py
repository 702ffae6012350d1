"""Parse maintenance windows such as ``Sun 02:00-04:00 Asia/Kolkata``.

Accepted: one day, a range (``Mon-Fri``), a list (``Sat,Sun``) or ``daily``; ``HH:MM-HH:MM``;
an IANA time zone (``UTC`` included). An end at or before the start runs past midnight.
"""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailfleet.inventory.model import MaintenanceWindow

DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
_WINDOW = re.compile(r"^\s*(?P<days>\S+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s+(?P<tz>\S+)\s*$")


class WindowError(ValueError):
    """The window text cannot be parsed; the message says which part is wrong."""


def parse_window(text: str) -> MaintenanceWindow:
    match = _WINDOW.match(text or "")
    if not match:
        raise WindowError(
            f"cannot read maintenance window {text!r}; write it as DAYS HH:MM-HH:MM TIMEZONE, "
            "e.g. 'Sun 02:00-04:00 Europe/Berlin' or 'Mon-Fri 22:00-01:00 UTC'"
        )
    days = _parse_days(match["days"])
    start, end = _parse_time(match["start"]), _parse_time(match["end"])
    if start == end:
        raise WindowError(f"maintenance window {text!r} is empty: start and end are both {match['start']}")
    tz = match["tz"]
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {tz!r} in {text!r}; use an IANA name such as Europe/Berlin or UTC") from None
    return MaintenanceWindow(days=frozenset(days), start=start, end=end, tz=tz, text=text.strip())


def _parse_days(spec: str) -> set[int]:
    spec = spec.lower()
    if spec in ("daily", "every-day", "*"):
        return set(range(1, 8))
    days: set[int] = set()
    for part in spec.split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day(first), _day(last)
            day = a
            while True:
                days.add(day)
                if day == b:
                    break
                day = day % 7 + 1
        else:
            days.add(_day(part))
    return days


def _day(name: str) -> int:
    key = name.strip()[:3]
    if key not in DAY_NAMES or len(name.strip()) not in (3, len(_full_name(key))):
        raise WindowError(f"unknown day {name!r}; use Mon, Tue, Wed, Thu, Fri, Sat, Sun (or ranges like Mon-Fri)")
    return DAY_NAMES[key]


def _full_name(key: str) -> str:
    return {"mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday",
            "fri": "friday", "sat": "saturday", "sun": "sunday"}[key]


def _parse_time(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(0, 0)
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise WindowError(f"invalid time {text!r}; use 00:00 to 23:59")
    return time(hours, minutes)
