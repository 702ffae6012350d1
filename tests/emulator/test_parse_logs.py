"""Postfix log lines as Mailcow's API and `docker compose logs` present them (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from mailcow_emulator.parse_logs import (parse_log_time, parse_postfix_line, parse_postfix_log, parse_since,
                                         render_compose_log_line)

NOW = datetime(2026, 11, 29, 1, 0, 0, tzinfo=timezone.utc)


def test_syslog_time_takes_the_year_from_now_except_across_new_year() -> None:
    assert parse_log_time("Nov 28 23:55:19 h2 postfix/qmgr[1]: x", NOW) == datetime(2026, 11, 28, 23, 55, 19, tzinfo=timezone.utc)
    january = datetime(2027, 1, 1, 0, 5, tzinfo=timezone.utc)
    assert parse_log_time("Dec 31 23:59:59 h2 postfix/qmgr[1]: x", january).year == 2026
    assert parse_log_time("not a log line", NOW) is None


def test_priority_from_the_message_prefix() -> None:
    assert parse_postfix_line("Nov 28 23:55:19 h2 postfix/smtpd[9]: warning: hostname x", NOW)["priority"] == "warn"
    assert parse_postfix_line("Nov 28 23:55:19 h2 postfix/postfix-script[9]: fatal: the Postfix mail system is not running",
                              NOW)["priority"] == "crit"
    entry = parse_postfix_line("Nov 28 23:55:19 h2 postfix/qmgr[9]: ABC: removed", NOW)
    assert entry == {"time": str(int(datetime(2026, 11, 28, 23, 55, 19, tzinfo=timezone.utc).timestamp())),
                     "program": "postfix/qmgr", "priority": "info", "message": "ABC: removed"}


def test_log_is_newest_first_and_capped() -> None:
    text = "".join(f"Nov 28 23:55:{i:02d} h2 postfix/qmgr[1]: line {i}\n" for i in range(5)) + "junk\n"
    assert [e["message"] for e in parse_postfix_log(text, 2, NOW)] == ["line 4", "line 3"]


def test_compose_line_format() -> None:
    stamp = datetime(2026, 11, 29, 0, 0, 1, 250000, tzinfo=timezone.utc)
    assert render_compose_log_line("postfix-mailcow-1", stamp, "hello", True, 17) == \
        "postfix-mailcow-1  | 2026-11-29T00:00:01.250000000Z hello"
    assert render_compose_log_line("postfix-mailcow-1", stamp, "hello", False, 20) == "postfix-mailcow-1     | hello"


@pytest.mark.parametrize(("value", "expected"), [
    ("10m", datetime(2026, 11, 29, 0, 50, tzinfo=timezone.utc)),
    ("2h", datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)),
    ("2026-11-28T12:00:00Z", datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)),
    ("1795910400", datetime.fromtimestamp(1795910400, tz=timezone.utc)),
])
def test_since_values(value: str, expected: datetime) -> None:
    assert parse_since(value, NOW) == expected


def test_since_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        parse_since("yesterday-ish", NOW)
