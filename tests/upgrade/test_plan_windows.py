"""Window occurrences: across midnight, across time zones, across DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailfleet.inventory.parse_window import parse_window
from mailfleet.upgrade.plan_windows import first_slot, occurrences, open_occurrence

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_window_across_midnight_is_open_after_midnight_on_the_next_day():
    # Fri 22:00 -> Sat 01:00 Berlin (CET, UTC+1 in late November); Sat 00:30 local is inside.
    window = parse_window("Fri 22:00-01:00 Europe/Berlin")
    occ = open_occurrence(window, utc(2026, 11, 27, 23, 30))   # Sat 00:30 CET
    assert occ is not None
    assert occ.start == utc(2026, 11, 27, 21, 0) and occ.end == utc(2026, 11, 28, 0, 0)
    # Sat 22:30 local is not a window: Saturday is not a start day.
    assert open_occurrence(window, utc(2026, 11, 28, 21, 30)) is None


def test_open_window_needs_enough_time_left():
    window = parse_window("daily 02:00-03:00 UTC")
    assert open_occurrence(window, utc(2026, 11, 29, 2, 40), timedelta(minutes=15)) is not None
    assert open_occurrence(window, utc(2026, 11, 29, 2, 50), timedelta(minutes=15)) is None


def test_time_zones_east_of_utc_open_the_previous_utc_day():
    # Sun 02:00-04:00 in Kolkata (UTC+5:30) is Sat 20:30-22:30 UTC.
    window = parse_window("Sun 02:00-04:00 Asia/Kolkata")
    first = next(occurrences(window, utc(2026, 11, 28, 12, 0)))
    assert (first.start, first.end) == (utc(2026, 11, 28, 20, 30), utc(2026, 11, 28, 22, 30))
    assert first.local("Asia/Kolkata")[0].strftime("%a %H:%M") == "Sun 02:00"


def test_spring_forward_window_is_shorter_by_the_gap():
    # 2026-03-29: Berlin skips 02:00-03:00. Sun 02:00-04:00 lasts one real hour that day.
    window = parse_window("Sun 02:00-04:00 Europe/Berlin")
    occ = next(occurrences(window, utc(2026, 3, 28, 12, 0)))
    assert occ.end - occ.start == timedelta(hours=1)
    assert occ.end == utc(2026, 3, 29, 2, 0)            # 04:00 CEST
    assert first_slot(window, utc(2026, 3, 28, 12, 0), timedelta(minutes=90))[0].start == utc(2026, 4, 5, 0, 0)


def test_fall_back_window_is_longer_by_the_repeated_hour():
    # 2026-10-25: Berlin repeats 02:00-03:00. Sun 01:30-03:30 lasts three real hours.
    window = parse_window("Sun 01:30-03:30 Europe/Berlin")
    occ = next(occurrences(window, utc(2026, 10, 24, 12, 0)))
    assert occ.start == utc(2026, 10, 24, 23, 30)        # 01:30 CEST
    assert occ.end == utc(2026, 10, 25, 2, 30)           # 03:30 CET
    assert occ.end - occ.start == timedelta(hours=3)


def test_new_york_and_berlin_change_clocks_on_different_days():
    # Between 2026-03-08 (US) and 2026-03-29 (EU) New York is 5 h behind Berlin, not 6.
    ny = parse_window("Sun 22:00-23:00 America/New_York")
    occ = next(occurrences(ny, utc(2026, 3, 14, 0, 0)))
    assert occ.start == utc(2026, 3, 16, 2, 0)           # EDT = UTC-4
    occ_jan = next(occurrences(ny, utc(2026, 1, 10, 0, 0)))
    assert occ_jan.start == utc(2026, 1, 12, 3, 0)       # EST = UTC-5


def test_first_slot_moves_to_the_next_occurrence_when_the_rest_is_too_short():
    window = parse_window("Sun 02:00-04:00 UTC")
    occ, start = first_slot(window, utc(2026, 11, 29, 3, 45), timedelta(minutes=30))
    assert start == utc(2026, 12, 6, 2, 0)
    occ, start = first_slot(window, utc(2026, 11, 29, 3, 0), timedelta(minutes=30))
    assert start == utc(2026, 11, 29, 3, 0) and occ.end == utc(2026, 11, 29, 4, 0)


def test_a_window_shorter_than_the_need_never_fits():
    assert first_slot(parse_window("Sun 02:00-02:20 UTC"), utc(2026, 11, 1), timedelta(minutes=30)) is None


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        open_occurrence(parse_window("daily 02:00-03:00 UTC"), datetime(2026, 11, 29, 2, 30))
