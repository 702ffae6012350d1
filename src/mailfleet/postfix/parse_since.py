"""``--since`` values: a duration back from an injected ``now`` (``90m``, ``24h``, ``7d``) or
an ISO 8601 date/time (UTC unless it carries an offset)."""

from __future__ import annotations

from datetime import datetime, timezone

from mailfleet.errors import MailfleetError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class SinceError(MailfleetError):
    """A --since value that is neither a duration nor a date."""


def parse_since(text: str, now: float) -> float:
    value = text.strip()
    if len(value) >= 2 and value[-1] in _UNITS and value[:-1].isdigit():
        return now - int(value[:-1]) * _UNITS[value[-1]]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SinceError(
            f"--since {text!r} is neither a duration (30m, 24h, 7d, 2w) nor an ISO date "
            "(2026-11-28 or 2026-11-28T06:00:00Z); give one of those."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
