"""When is a host's maintenance window open? Occurrences of weekly windows, in UTC.

A window such as ``Mon-Fri 22:00-01:00 Europe/Berlin`` starts on the listed days at the local
start time and ends at the local end time, the next day when it crosses midnight. Everything
is computed in UTC because Python compares two datetimes that share a ``tzinfo`` by their wall
clock: across a DST change that silently gets an hour wrong. Local times that do not exist (the
spring-forward gap) are shifted forward by the gap; ambiguous ones (fall back) to
their first occurrence (fold=0), so the window's real length is what the wall clock shows.

Pure: the current time is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from mailfleet.inventory.model import MaintenanceWindow

UTC = timezone.utc
# A weekly window occurs at least once in any 8 days; 15 leaves room for slots that need a
# later occurrence because an earlier one is too short or already taken.
HORIZON_DAYS = 15


@dataclass(frozen=True)
class Occurrence:
    """One opening of a window: ``[start, end)`` as aware UTC datetimes."""

    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment.astimezone(UTC) < self.end

    def local(self, tz: str) -> tuple[datetime, datetime]:
        zone = ZoneInfo(tz)
        return self.start.astimezone(zone), self.end.astimezone(zone)


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime (e.g. datetime.now(timezone.utc))")
    return moment.astimezone(UTC)


def _local_instant(day: object, clock: object, zone: ZoneInfo) -> datetime:
    """A local wall-clock time on ``day`` as UTC (``fold=0``: a time in a spring-forward gap is
    shifted forward by the gap, 02:30 -> 03:30 CEST; an ambiguous one is its first occurrence)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)  # type: ignore[arg-type]


def occurrences(window: MaintenanceWindow, after: datetime, *, horizon_days: int = HORIZON_DAYS) -> Iterator[Occurrence]:
    """Every occurrence that has not ended by ``after``, earliest first, up to the horizon.

    The occurrence containing ``after`` (if any) comes first, so a window that opened an hour
    ago and is still open counts as open now.
    """
    after_utc = _require_aware(after)
    zone = ZoneInfo(window.tz)
    first_day = after_utc.astimezone(zone).date() - timedelta(days=1)
    for offset in range(horizon_days + 1):
        day = first_day + timedelta(days=offset)
        if day.isoweekday() not in window.days:
            continue
        start = _local_instant(day, window.start, zone)
        end_day = day + timedelta(days=1) if window.crosses_midnight else day
        end = _local_instant(end_day, window.end, zone)
        if end <= start:  # a window swallowed by a DST gap
            continue
        if end > after_utc:
            yield Occurrence(start, end)


def open_occurrence(window: MaintenanceWindow, now: datetime, need: timedelta = timedelta(0)) -> Occurrence | None:
    """The occurrence open at ``now`` with at least ``need`` left in it, else ``None``."""
    now_utc = _require_aware(now)
    for occ in occurrences(window, now_utc, horizon_days=2):
        if occ.contains(now_utc) and occ.end - now_utc >= need:
            return occ
        if occ.start > now_utc:
            break
    return None


def first_slot(window: MaintenanceWindow, earliest: datetime, need: timedelta) -> tuple[Occurrence, datetime] | None:
    """The first occurrence in which ``need`` fits at or after ``earliest``, and the slot's start.

    ``None`` when no occurrence within the horizon is long enough (the window is shorter than
    ``need``): the caller says so rather than planning an upgrade that cannot finish in time.
    """
    earliest_utc = _require_aware(earliest)
    for occ in occurrences(window, earliest_utc):
        start = max(occ.start, earliest_utc)
        if occ.end - start >= need:
            return occ, start
    return None
