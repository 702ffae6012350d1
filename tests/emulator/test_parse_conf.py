"""mailcow.conf parsing and the API access rules php-fpm's entrypoint applies."""

from __future__ import annotations

import pytest
from mailcow_emulator.parse_conf import (
    ApiAccess,
    ConfError,
    address_allowed,
    client_seen_as,
    parse_allow_from,
    parse_api_access,
    parse_mailcow_conf,
    strip_api_key,
)


def test_active_assignments_comments_and_quotes() -> None:
    text = "# c\nMAILCOW_HOSTNAME=mail.example.org\n#API_KEY=\nTZ=\"Europe/Berlin\"\n\nX=1\nX=2\n"
    assert parse_mailcow_conf(text) == {"MAILCOW_HOSTNAME": "mail.example.org", "TZ": "Europe/Berlin", "X": "2"}


def test_a_line_that_is_not_key_value_is_an_error_naming_the_line() -> None:
    with pytest.raises(ConfError, match=r"mailcow.conf:2: .*not KEY=VALUE"):
        parse_mailcow_conf("A=1\nthis is junk\n")


def test_key_characters_outside_the_allowed_set_are_stripped() -> None:
    assert strip_api_key("abc_DEF-123!$") == "abcDEF-123"


def test_allow_from_keeps_only_valid_addresses_and_networks() -> None:
    assert parse_allow_from("172.22.1.1, 127.0.0.1;10.0.0.0/8 nonsense fd00::/8") == [
        "172.22.1.1", "127.0.0.1", "10.0.0.0/8", "fd00::/8"]


def test_keys_are_installed_only_with_a_valid_allow_from() -> None:
    conf = {"API_KEY": "k-1", "API_KEY_READ_ONLY": "r-1"}
    assert parse_api_access(conf) == ApiAccess("", "", ())
    assert parse_api_access({**conf, "API_ALLOW_FROM": "bogus"}) == ApiAccess("", "", ())
    assert parse_api_access({**conf, "API_ALLOW_FROM": "127.0.0.1"}) == ApiAccess("k-1", "r-1", ("127.0.0.1",))


def test_unset_key_means_no_key_not_the_literal_invalid() -> None:
    access = parse_api_access({"API_KEY": "k-1", "API_ALLOW_FROM": "127.0.0.1"})
    assert access.ro_key == ""


def test_loopback_client_is_seen_as_the_docker_gateway() -> None:
    assert client_seen_as("127.0.0.1", None, "172.22.1") == "172.22.1.1"
    assert client_seen_as("::ffff:127.0.0.1", None, "10.9.8") == "10.9.8.1"
    assert client_seen_as("10.77.0.11", None, "172.22.1") == "10.77.0.11"


def test_forwarded_for_is_trusted_only_from_private_ranges() -> None:
    assert client_seen_as("10.0.0.5", "203.0.113.9", "172.22.1") == "203.0.113.9"
    assert client_seen_as("198.51.100.1", "203.0.113.9", "172.22.1") == "198.51.100.1"


def test_address_allowed_by_address_or_network() -> None:
    assert address_allowed("172.22.1.1", ("172.22.1.1",))
    assert address_allowed("10.77.0.12", ("10.77.0.0/24",))
    assert not address_allowed("127.0.0.1", ("172.22.1.1",))
