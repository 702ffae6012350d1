from __future__ import annotations

from datetime import time

import pytest

from mailfleet.inventory.parse_window import WindowError, parse_window


def test_single_day_window() -> None:
    w = parse_window("Sun 02:00-04:00 Asia/Kolkata")
    assert w.days == frozenset({7}) and w.start == time(2) and w.end == time(4) and w.tz == "Asia/Kolkata"
    assert not w.crosses_midnight


def test_ranges_lists_and_midnight() -> None:
    assert parse_window("Mon-Fri 22:00-01:00 UTC").days == frozenset({1, 2, 3, 4, 5})
    assert parse_window("Fri-Mon 22:00-01:00 UTC").days == frozenset({5, 6, 7, 1})
    assert parse_window("Sat,Sun 01:00-03:00 UTC").days == frozenset({6, 7})
    assert parse_window("daily 23:30-00:30 Europe/Berlin").crosses_midnight


@pytest.mark.parametrize("text", ["Sun 2am", "Funday 02:00-03:00 UTC", "Sun 02:00-02:00 UTC",
                                  "Sun 25:00-26:00 UTC", "Sun 02:00-04:00 Mars/Olympus", ""])
def test_bad_windows_say_what_is_wrong(text: str) -> None:
    with pytest.raises(WindowError):
        parse_window(text)
