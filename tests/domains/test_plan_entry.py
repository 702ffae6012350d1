"""The inventory entry add-domain writes, and the inventory edit rotation makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.domains.merge_selector import merge_dkim_selector
from mailfleet.domains.plan_entry import DomainInputError, check_matches_existing, plan_domain_entry
from mailfleet.inventory import load_valid_inventory
from mailfleet.inventory.load import dump_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inv():
    return load_valid_inventory(REPO / "inventory" / "example.yaml")


def test_defaults(inv) -> None:
    entry = plan_domain_entry(inv.fleet, "fresh.example")
    assert entry["inbound"] == {"mx1": 10, "mx2": 20} and entry["relay"] == "relay1"
    assert entry["dkim"] == {"selector": "s2026"}  # what the fleet's domains use
    assert entry["dmarc"] == {"policy": "none"}
    assert entry["mailboxes"] == {"postmaster": {}} and entry["aliases"] == {"abuse": "postmaster@fresh.example"}


def test_report_mailboxes_belong_to_their_domain(inv) -> None:
    entry = plan_domain_entry(inv.fleet, "example.com")
    assert set(entry["mailboxes"]) == {"postmaster", "dmarc-reports", "tls-reports"}


def test_every_problem_is_listed_at_once(inv) -> None:
    with pytest.raises(DomainInputError) as error:
        plan_domain_entry(inv.fleet, "-bad-.example", inbound=["mx9", "relay1"], relay="mon1", selector="no_way!")
    problems = error.value.problems
    assert len(problems) == 5
    assert any("there is no host 'mx9'" in p for p in problems)
    assert any("'relay1' lacks the inbound role" in p for p in problems)
    assert any("'mon1' lacks the outbound-relay role" in p for p in problems)
    assert any("--selector" in p for p in problems)


def test_a_host_name_is_not_a_mail_domain(inv) -> None:
    with pytest.raises(DomainInputError, match="MAILCOW_HOSTNAME"):
        plan_domain_entry(inv.fleet, "mx1.mail.example.com")


def test_flags_that_contradict_the_inventory_are_refused(inv) -> None:
    domain = inv.fleet.domain("example.org")
    check_matches_existing(domain, ["mx2", "mx1"], "relay2")  # as written: fine
    with pytest.raises(DomainInputError, match="edit the inventory"):
        check_matches_existing(domain, ["mx1"])
    with pytest.raises(DomainInputError, match="dkim.rotate"):
        check_matches_existing(domain, selector="other")


def test_selector_edit_keeps_the_rest_of_the_file(inv) -> None:
    copy = load_valid_inventory(REPO / "inventory" / "example.yaml")
    before = dump_inventory(copy.doc)
    assert merge_dkim_selector(copy.doc, "example.org", "s2027")
    after = dump_inventory(copy.doc)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [("    dkim: {selector: s2026}", "    dkim: {selector: s2027}")]
    assert not merge_dkim_selector(copy.doc, "example.org", "s2027")


def test_mta_sts_mode_for_a_new_entry(inv) -> None:
    assert plan_domain_entry(inv.fleet, "sts.example", mta_sts="testing")["mta_sts"] == "testing"
    assert "mta_sts" not in plan_domain_entry(inv.fleet, "plain.example")
    with pytest.raises(DomainInputError, match="enforce, testing, none"):
        plan_domain_entry(inv.fleet, "sts.example", mta_sts="strict")
    with pytest.raises(DomainInputError, match="has mta_sts enforce"):
        check_matches_existing(inv.fleet.domain("example.com"), mta_sts="testing")
