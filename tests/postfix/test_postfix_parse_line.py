"""Line envelopes: every wrapper, years inferred from an injected reference, never the clock."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from mailfleet.postfix.parse_chunk import ChunkScanner
from mailfleet.postfix.parse_line import (
    SyslogClock,
    parse_any_line,
    parse_api_entries,
    parse_compose_line,
    parse_rfc3339,
)


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def clock(year: int, month: int, day: int, zone=timezone.utc) -> SyslogClock:
    return SyslogClock(datetime(year, month, day, 12, tzinfo=timezone.utc), zone)


def test_traditional_space_padded_day_takes_the_reference_year() -> None:
    ts, host, tag, text = parse_any_line("Nov  8 10:00:00 mx1 postfix/smtpd[123]: connect from a[192.0.2.1]", clock(2026, 11, 28))
    assert (ts, host, tag, text) == (utc(2026, 11, 8, 10), "mx1", "postfix/smtpd", "connect from a[192.0.2.1]")


def test_maillog_file_zero_padded_day_is_the_same_moment() -> None:
    a = parse_any_line("Nov 08 10:00:00 mx1 postfix/qmgr[9]: 4104E3D: removed", clock(2026, 11, 28))
    b = parse_any_line("Nov  8 10:00:00 mx1 postfix/qmgr[9]: 4104E3D: removed", clock(2026, 11, 28))
    assert a == b and a is not None and a[3] == "4104E3D: removed"


def test_december_lines_read_in_january_belong_to_the_previous_year() -> None:
    new_year = clock(2027, 1, 1)  # the file's mtime: just after midnight on New Year's day
    december = parse_any_line("Dec 31 23:59:59 mx1 postfix/qmgr[9]: A1: removed", new_year)
    january = parse_any_line("Jan  1 00:00:01 mx1 postfix/qmgr[9]: A2: removed", new_year)
    assert december is not None and january is not None
    assert december[0] == utc(2026, 12, 31, 23, 59, 59)
    assert january[0] == utc(2027, 1, 1, 0, 0, 1)
    assert january[0] - december[0] == 2


def test_the_year_never_comes_from_the_wall_clock() -> None:
    line = "Mar  3 03:03:03 mx1 postfix/qmgr[9]: A1: removed"
    assert parse_any_line(line, clock(2019, 6, 1))[0] == utc(2019, 3, 3, 3, 3, 3)
    assert parse_any_line(line, clock(2031, 6, 1))[0] == utc(2031, 3, 3, 3, 3, 3)


def test_29_february_outside_a_leap_year_goes_back_to_the_last_leap_year() -> None:
    ts = parse_any_line("Feb 29 12:00:00 mx1 postfix/qmgr[9]: A1: removed", clock(2027, 3, 10))[0]
    assert ts == utc(2024, 2, 29, 12)


def test_local_time_zone_of_the_logging_host_is_applied() -> None:
    berlin = clock(2026, 11, 28, ZoneInfo("Europe/Berlin"))
    assert parse_any_line("Nov 27 10:00:00 mx1 postfix/qmgr[9]: A1: removed", berlin)[0] == utc(2026, 11, 27, 9)
    summer = parse_any_line("Jul 27 10:00:00 mx1 postfix/qmgr[9]: A1: removed", berlin)[0]
    assert summer == utc(2026, 7, 27, 8)


def test_rfc3339_with_offset_and_fraction() -> None:
    envelope = parse_any_line(
        "2025-11-27T00:00:01.817764+01:00 a3426da50090 postfix/postscreen[3163107]: CONNECT from [192.0.2.7]:1 to [192.0.2.8]:25",
        clock(2000, 1, 1),
    )
    assert envelope is not None
    assert envelope[0] == pytest.approx(utc(2025, 11, 26, 23, 0, 1) + 0.817764)
    assert envelope[1:3] == ("a3426da50090", "postfix/postscreen")


def test_rfc3339_nanoseconds_and_z() -> None:
    assert parse_rfc3339("2026-04-10T21:18:39.123456789Z") == pytest.approx(utc(2026, 4, 10, 21, 18, 39) + 0.123456789)


@pytest.mark.parametrize(
    "tag",
    ["postfix/submission/smtpd", "enforced-tls-smtp/smtp", "postfix/10025/smtpd", "haproxy/postscreen", "postfix/sogo/smtpd"],
)
def test_any_syslog_name_with_several_components(tag: str) -> None:
    envelope = parse_any_line(f"Nov 27 00:00:09 mx1 {tag}[1]: 6E93E593F2: client=a[192.0.2.1]", clock(2025, 11, 28))
    assert envelope is not None and envelope[2] == tag


def test_docker_json_file_uses_dockers_utc_time() -> None:
    line = (
        '{"log":"Apr 10 23:18:39 a3426da50090 postfix/postscreen[640]: CONNECT from [192.0.2.1]:1 to [192.0.2.2]:25\\n",'
        '"stream":"stdout","time":"2026-04-10T21:18:39.123456789Z"}'
    )
    envelope = parse_any_line(line, clock(2026, 4, 11))
    assert envelope is not None
    assert envelope[0] == pytest.approx(utc(2026, 4, 10, 21, 18, 39) + 0.123456789)
    assert envelope[1:3] == ("a3426da50090", "postfix/postscreen")


def test_docker_compose_logs_line() -> None:
    line = "postfix-mailcow-1  | 2026-11-28T06:00:01.500000000Z Nov 28 07:00:01 a3426da50090 postfix/qmgr[311]: 6E93E593F2: removed"
    envelope = parse_compose_line(line, clock(2026, 11, 28))
    assert envelope == (utc(2026, 11, 28, 6, 0, 1) + 0.5, "a3426da50090", "postfix/qmgr", "6E93E593F2: removed")
    assert parse_any_line(line, clock(2026, 11, 28)) == envelope


def test_mailcow_api_entries_come_back_oldest_first_with_the_given_host() -> None:
    entries = [
        {"time": "1569937435", "priority": "info", "program": "postfix/qmgr", "message": "EF1711500458: removed"},
        {"time": "1569937433", "priority": "info", "program": "postfix/cleanup", "message": "EF1711500458: message-id=<a@b>"},
        {"time": "1569937433", "priority": "info", "program": "postfix/smtpd", "message": "EF1711500458: client=x[192.0.2.1]"},
        {"broken": True},
    ]
    envelopes, bad = parse_api_entries(entries, "mx1")
    assert bad == 1
    assert [e[3].split(": ", 1)[1][:6] for e in envelopes] == ["client", "messag", "remove"]
    assert {e[1] for e in envelopes} == {"mx1"}
    assert parse_api_entries({}, "mx1") == ([], 0)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Jan",
        "Foo 1 00:00:00 hostname",
        "Jan: 1 00:00:00 hostname postfix/postscreen[12345]: foo",
        "Jan 1 00:00:00 hostname postfix/postscreen[12345",
        "2019-04-03 19:16:29,234 INFO spawned: 'postfix' with pid 123",
        '{"log": 5}',
        "not a log line at all",
    ],
)
def test_garbage_is_none_never_an_exception(line: str) -> None:
    assert parse_any_line(line, clock(2026, 1, 1)) is None


def test_chunk_scanner_agrees_with_the_line_parser_and_counts_unmarked_lines() -> None:
    text = "\n".join(
        [
            "Nov 27 00:00:09 mx1 postfix/smtpd[1]: 6E93E593F2: client=a[192.0.2.1]",
            "Nov 27 00:00:09 mx1 postfix/smtpd[1]: connect from a[192.0.2.1]",
            "# a comment",
            "Nov 7 00:00:10 mx1 postfix/qmgr[2]: 6E93E593F2: removed",
            "2025-11-27T00:00:01.5+01:00 mx2 postfix/smtpd[3]: NOQUEUE: reject: RCPT from a[192.0.2.1]: 550 5.1.1 <x@y>: no; from=<a@b> to=<x@y> proto=ESMTP helo=<h>",
            "",
        ]
    )
    scanner = ChunkScanner(clock(2025, 11, 28))
    found = list(scanner.scan(text))
    assert scanner.lines == 5 and scanner.unparsed == 1
    assert [(m[1], m[3]) for m in found] == [("mx1", "6E93E593F2"), ("mx1", "6E93E593F2"), ("mx2", "NOQUEUE")]
    for match, line in zip(found, [text.split("\n")[i] for i in (0, 3, 4)], strict=True):
        envelope = parse_any_line(line, clock(2025, 11, 28))
        assert envelope is not None
        assert match[0] == envelope[0] and match[2] == envelope[2]
        assert f"{match[3]}: {match[4]}" == envelope[3]


def test_rfc3339_fast_path_equals_the_general_parser_on_random_stamps() -> None:
    """Whole seconds are cached per second and zone; the result must be the general parser's."""
    import random

    from mailfleet.postfix.parse_line import _parse_rfc3339, parse_rfc3339

    rng = random.Random(7)
    for _ in range(5000):
        digits = rng.randrange(0, 10)
        fraction = "." + "".join(rng.choice("0123456789") for _ in range(digits)) if digits else ""
        zone = rng.choice(["Z", "+01:00", "-07:30", "+00:00", "+14:00"])
        stamp = (
            f"{rng.randrange(1990, 2040):04d}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}{fraction}{zone}"
        )
        assert parse_rfc3339(stamp) == _parse_rfc3339(stamp), stamp
    # other shapes still go to the general parser
    assert parse_rfc3339("2025-11-27 00:00:01") == _parse_rfc3339("2025-11-27T00:00:01+00:00")
    assert parse_rfc3339("2025-11-27T00:00:01.5+01:00") == 1764198001.5
