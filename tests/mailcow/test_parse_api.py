"""Reading Mailcow's answers: failures hidden in HTTP 200, ``{}`` for empty, string flags."""

from __future__ import annotations

import pytest

from mailfleet.errors import MailcowApiError
from mailfleet.mailcow.parse_api import (
    check_read,
    check_write,
    describe_msg,
    find_id,
    parse_flag,
    parse_id,
    parse_list,
    parse_object,
)


def test_success_entries_pass() -> None:
    body = [{"type": "success", "log": [], "msg": ["domain_added", "a.tld"]}]
    assert check_write(body, "add/domain") == body


@pytest.mark.parametrize("kind", ["danger", "error", "DANGER"])
def test_a_failed_entry_among_successes_raises_with_its_reason(kind: str) -> None:
    body = [{"type": "success", "msg": "ratelimit_set"}, {"type": kind, "msg": ["domain_exists", "a.tld"]}]
    with pytest.raises(MailcowApiError, match=r"domain_exists \(a.tld\)"):
        check_write(body, "mx1: add/domain")


def test_single_error_object_raises() -> None:
    with pytest.raises(MailcowApiError, match="Cannot add item"):
        check_write({"type": "error", "msg": "Cannot add item"}, "add/alias")


def test_warning_is_not_a_failure() -> None:
    assert check_write([{"type": "warning", "msg": "nothing"}], "x")


@pytest.mark.parametrize("body", [None, {}, "ok", 3])
def test_unreadable_write_answer_is_an_error(body: object) -> None:
    with pytest.raises(MailcowApiError, match="cannot tell"):
        check_write(body, "add/domain")


def test_read_error_object_raises_but_data_passes() -> None:
    with pytest.raises(MailcowApiError, match="access_denied"):
        check_read({"type": "danger", "msg": "access_denied"}, "get/domain")
    container = {"type": "info", "container": "x", "state": "running"}
    assert check_read(container, "get") == container  # "info" is data, not a failure


@pytest.mark.parametrize(("body", "expected"), [
    ({}, []), (None, []), ([], []),
    ([{"id": 1}, "junk"], [{"id": 1}]),
    ({"domain_name": "a.tld"}, [{"domain_name": "a.tld"}]),
])
def test_parse_list_normalises_empty_and_lone_objects(body: object, expected: list) -> None:
    assert parse_list(body) == expected


def test_parse_object_treats_empty_as_none() -> None:
    assert parse_object({}) is None
    assert parse_object([]) is None
    assert parse_object({"pubkey": "x"}) == {"pubkey": "x"}
    assert parse_object([{"pubkey": "x"}]) == {"pubkey": "x"}


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), (1, True), (True, True), ("on", True),
    ("0", False), (0, False), ("", False), (None, False), (False, False),
])
def test_parse_flag(value: object, expected: bool) -> None:
    assert parse_flag(value) is expected


def test_parse_flag_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_flag("maybe")


def test_parse_id_and_find_id() -> None:
    assert parse_id("3") == 3 and parse_id(4) == 4
    assert parse_id("0") is None and parse_id("") is None and parse_id(None) is None
    items = [{"id": "2", "hostname": "[r1]:25"}, {"id": 7, "hostname": "[r1]:25"}, {"id": "3", "hostname": "[r2]:25"}]
    assert find_id(items, {"hostname": "[r1]:25"}) == 7
    assert find_id(items, {"hostname": "[nope]:25"}) is None


def test_describe_msg() -> None:
    assert describe_msg("x") == "x"
    assert describe_msg(["a", "b", 1]) == "a (b, 1)"
    assert describe_msg(None) == "no message"
