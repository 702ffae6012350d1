"""The inventory's bulk rules become Postfix regexp tables and a Python classifier that agree."""

from __future__ import annotations

import re

import pytest

from mailfleet.inventory.model import BulkRules
from mailfleet.priority.classify import (
    HeaderRule,
    SenderRule,
    classify_sender,
    escape_ere,
    fleet_sender_rules,
    plan_host_rules,
)
from priority_helpers import with_domain


def ere_to_python(pattern: str) -> re.Pattern[str]:
    """Our ERE subset in Python syntax (POSIX classes are the only difference), case-insensitive
    like Postfix's regexp tables."""
    return re.compile(pattern.replace("[:space:]", r"\s"), re.IGNORECASE)


# POSIX writes a literal "[" as "[[]"; Python's re reads it the same way but warns that a future
# version might read "[[" as a nested set. The warning is about Python, not about the table.
@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@pytest.mark.parametrize("text", ["a.b", "x+y@z", "a/b", "we^ird", "br]ack[et", "back\\slash", "(g)|*?{1}$"])
def test_escape_ere_matches_itself_literally(text):
    pattern = re.compile("^" + escape_ere(text) + "$")
    assert pattern.match(text)
    assert "/" not in escape_ere(text).replace("[/]", "")  # the table's delimiter never appears bare


def test_escape_ere_does_not_match_wildcards():
    assert not re.match("^" + escape_ere("example.com") + "$", "exampleXcom")


SENDERS = ["newsletter@example.com", "NewsLetter+campaign-42@example.com", "bounce@news.example.com",
           "someone@example.com", "newsletter@example.com.evil.test", "xnewsletter@example.com",
           "newsletter@sub.example.com", "a@news.example.com.evil", "<>", "", "offers@shop.example"]


def test_regexp_table_and_python_classifier_agree(example_fleet):
    rules = plan_host_rules(example_fleet, "mx1")
    addresses, domains = fleet_sender_rules(example_fleet)
    for sender in SENDERS:
        by_table = any(ere_to_python(rule.regexp).search(sender) for rule in rules.senders)
        assert by_table == (classify_sender(sender, addresses, domains) == "bulk"), sender


def test_expected_classes(example_fleet):
    addresses, domains = fleet_sender_rules(example_fleet)
    assert classify_sender("NEWSLETTER+x@Example.COM", addresses, domains) == "bulk"
    assert classify_sender("anyone@news.example.com", addresses, domains) == "bulk"
    assert classify_sender("reset@example.com", addresses, domains) == "transactional"
    assert classify_sender("", addresses, domains) == "transactional"


def test_inbound_host_sends_bulk_to_the_domain_relay_and_relay_sends_direct(example_fleet):
    relay_address = example_fleet.hosts["relay1"].address
    on_mx = {r.match: r for r in plan_host_rules(example_fleet, "mx1").senders}
    assert on_mx["newsletter@example.com"].action == f"bulk:[{relay_address}]:25"
    on_relay = {r.match: r for r in plan_host_rules(example_fleet, "relay1").senders}
    assert on_relay["newsletter@example.com"].action == "bulk:"
    # relay2 sends for news.example (bulk by sender domain), relay1 does not
    assert "@news.example" in {r.match for r in plan_host_rules(example_fleet, "relay2").senders}
    assert "@news.example" not in on_relay


def test_header_rules_are_merged_across_domains(example_fleet):
    rules = plan_host_rules(example_fleet, "mx1")
    precedence = [h for h in rules.headers if h.name == "Precedence"]
    assert len(precedence) == 1 and set(precedence[0].domains) == {"example.com", "shop.example"}
    assert rules.header_action == f"FILTER bulk:[{example_fleet.hosts['relay1'].address}]:25"
    assert not rules.problems


def test_header_rules_through_different_relays_are_refused(example_fleet):
    fleet = with_domain(example_fleet, "shop.example", relay="relay2")
    rules = plan_host_rules(fleet, "mx1")
    assert rules.problems and "different relays" in rules.problems[0]
    assert "shop.example" in rules.problems[0] and "example.com" in rules.problems[0]


def test_same_sender_under_two_domains_with_different_relays_is_a_problem(example_fleet):
    fleet = with_domain(example_fleet, "events.example",
                        bulk=BulkRules(senders=("newsletter@example.com",)), relay="relay2")
    assert any("newsletter@example.com" in p for p in plan_host_rules(fleet, "mx1").problems)


@pytest.mark.parametrize("header,matches,misses", [
    (HeaderRule("Precedence", "bulk", ()), ["Precedence: bulk", "precedence:bulk", "Precedence: BULK; x"],
     ["Precedence: bulky", "X-Precedence: bulk", "Precedence: list"]),
    (HeaderRule("List-Unsubscribe", "", ()), ["List-Unsubscribe: <mailto:u@x>"], ["List-Unsubscribe-Post: One-Click"]),
])
def test_header_regexp(header, matches, misses):
    pattern = ere_to_python(header.regexp)
    assert all(pattern.search(line) for line in matches)
    assert not any(pattern.search(line) for line in misses)


def test_sender_domain_rule_matches_the_domain_only():
    rule = SenderRule(match="@news.example.com", nexthop="", domain="example.com")
    pattern = ere_to_python(rule.regexp)
    assert pattern.search("a@news.example.com")
    assert not pattern.search("a@xnews.example.com")
    assert not pattern.search("a@news.example.com.test")
