"""The validator: every problem at once, each with its line, a hint, and no false alarms."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.inventory.load import parse_inventory_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "inventory" / "example.yaml").read_text()

MINIMAL = """\
fleet:
  mailcow: {version: 2026-07a}
hosts:
  mx1:
    address: 192.0.2.1
    hostname: mx1.mail.example.com
    roles: [inbound]
    api_key: env:MX1_KEY
  relay1:
    address: 192.0.2.2
    hostname: relay1.mail.example.com
    roles: [outbound-relay]
    api_key: file:secrets/relay1
domains:
  example.com:
    inbound: {mx1: 10}
    relay: relay1
"""


def problems(text: str) -> list[tuple[int, str]]:
    inv = parse_inventory_text(text, "t.yaml")
    return [(p.line, p.message) for p in inv.problems]


def test_example_inventory_is_valid() -> None:
    inv = parse_inventory_text(EXAMPLE, "example.yaml")
    assert inv.problems == []
    fleet = inv.fleet
    assert fleet is not None
    assert sorted(fleet.hosts) == ["mon1", "mx1", "mx2", "relay1", "relay2", "tx1"]
    assert len(fleet.domains) == 12
    assert fleet.domain("bücher.example").ascii == "xn--bcher-kva.example"
    assert fleet.domain("example.org").inbound_hosts == ("mx2", "mx1")
    assert fleet.domain("example.com").signing_hosts == ("mx1", "mx2", "relay1", "tx1")
    assert str(fleet.window_of(fleet.hosts["mx1"])) == "Sun 02:00-04:00 Europe/Berlin"


def test_minimal_inventory_is_valid() -> None:
    assert problems(MINIMAL) == []


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("    roles: [inbound]\n    api_key: env:MX1_KEY", "    rolez: [inbound]\n    api_key: env:MX1_KEY", 7,
         "unknown key 'rolez'"),
        ("  example.com:\n", "  exa_mple.com:\n", 15, "not a valid domain name"),
        ("address: 192.0.2.2", "address: 192.0.2.999", 10, "neither an IP address nor a host name"),
        ("    relay: relay1", "    relay: mx1", 17, "lacks the 'outbound-relay' role"),
        ("    inbound: {mx1: 10}", "    inbound: {relay1: 10}", 16, "lacks the 'inbound' role"),
        ("    inbound: {mx1: 10}\n", "", 15, "has no MX host"),
        ("address: 192.0.2.2", "address: 192.0.2.1", 10, "used by both 'mx1' and 'relay1'"),
        ("api_key: env:MX1_KEY", "api_key: hunter2-plain-text", 8, "secret written in plain text"),
        ("  mailcow: {version: 2026-07a}", "  mailcow: {version: 2026-07a}\n  maintenance_window: Sun 2am", 3,
         "cannot read maintenance window"),
        ("    relay: relay1", "    relay: relay9", 17, "no host 'relay9'"),
    ],
)
def test_each_mistake_is_reported_at_its_line(old: str, new: str, line: int, fragment: str) -> None:
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    found = problems(text)
    assert any(fragment in message for _, message in found), found
    assert line in [ln for ln, message in found if fragment in message], found


def test_duplicate_host_is_a_yaml_error_with_its_line() -> None:
    text = MINIMAL + "hosts:\n  mx1: {}\n"
    found = problems(text)
    assert len(found) == 1 and "duplicate" in found[0][1]


def test_unknown_key_suggests_the_right_one() -> None:
    inv = parse_inventory_text(MINIMAL.replace("    relay: relay1", "    realy: relay1"), "t.yaml")
    hints = [p.hint for p in inv.problems if "realy" in p.message]
    assert hints == ["did you mean 'relay'?"]


def test_mailcow_conf_may_not_carry_secrets_or_managed_keys() -> None:
    text = MINIMAL.replace("    api_key: env:MX1_KEY", "    api_key: env:MX1_KEY\n    mailcow_conf: {DBPASS: x, SKIP_CLAMD: y}")
    found = problems(text)
    assert [m for _, m in found if "DBPASS" in m]
    assert not [m for _, m in found if "SKIP_CLAMD" in m]


def test_bulk_concurrency_above_receiver_caps_is_refused() -> None:
    text = MINIMAL.replace("  mailcow: {version: 2026-07a}", "  mailcow: {version: 2026-07a}\n  bulk_transport: {destination_concurrency_limit: 20}")
    assert any("connection cap" in m for _, m in problems(text))


def test_five_mistakes_in_the_example_are_all_reported() -> None:
    text = (EXAMPLE
            .replace("    roles: [monitoring]", "    roles: [monitorin]")
            .replace("  example.net:\n    inbound: {mx1: 10, mx2: 20}", "  example.net:\n    inbound: {mx1: 10, mx9: 20}")
            .replace("public_ips: [198.51.100.22]", "public_ips: [198.51.100.300]")
            .replace("maintenance_window: Sat 04:00-05:00 Europe/Berlin", "maintenance_window: Caturday 04:00-05:00 Mars/Olympus")
            .replace("    dmarc: {policy: quarantine}\n    mailboxes: {postmaster: {}}\n    aliases: {abuse: postmaster@example.net}",
                     "    dmarc: {policy: quarantaine}\n    mailboxes: {postmaster: {}}\n    aliases: {abuse: postmaster@example.net}"))
    found = parse_inventory_text(text, "bad.yaml").problems
    messages = " | ".join(p.message for p in found)
    assert len(found) == 5, messages
    for fragment in ("unknown role 'monitorin'", "no host 'mx9'", "198.51.100.300", "unknown day", "quarantaine"):
        assert fragment in messages
    assert all(p.line > 1 for p in found)
