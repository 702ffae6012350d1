"""The trap checks: concurrency vs the receiver's cap, transports that steal bulk, campaign size."""

from __future__ import annotations

import pytest

from mailfleet.inventory.model import BulkTransport
from mailfleet.priority.parse_transport import parse_inline, parse_table_list, parse_table_text
from mailfleet.priority.rules import (
    check_active_queue,
    check_concurrency,
    check_fleet,
    check_transport_overrides,
    dedicated_bulk_relays,
    parse_duration,
    transport_of,
)
from priority_helpers import with_bulk_transport, with_domain


@pytest.mark.parametrize("limit,errors", [(1, 0), (10, 0), (15, 0), (16, 1), (20, 1)])
def test_concurrency_leaves_headroom_under_the_receivers_cap(limit, errors):
    findings = check_concurrency(BulkTransport(destination_concurrency_limit=limit))
    assert len([f for f in findings if f.level == "error"]) == errors


def test_rate_delay_is_explained():
    findings = check_concurrency(BulkTransport(destination_rate_delay="1s"))
    assert any("one bulk message per destination" in f.message for f in findings)


@pytest.mark.parametrize("text,seconds", [("0s", 0), ("300s", 300), ("5m", 300), ("1h", 3600), ("90", 90)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage():
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize("result,transport", [("smtp:[mx]:25", "smtp"), (":[mx]:25", ""), ("relay", "relay"),
                                              ("smtp_via_transport_maps:[x]", "smtp_via_transport_maps"),
                                              ("local:", "local")])
def test_transport_of(result, transport):
    assert transport_of(result) == transport


def test_explicit_transports_are_reported_and_nexthop_only_entries_are_not():
    findings = check_transport_overrides([("example.net", "smtp:[mx.example.net]"), ("gmail.test", ":[10.0.0.1]:25"),
                                          ("/localhost$/", "local:"), ("/watchdog@localhost$/", "watchdog_discard:")])
    assert len(findings) == 1
    assert "example.net" in findings[0].message and "'example.net :[mx.example.net]'" in findings[0].hint


def test_campaign_larger_than_the_active_queue():
    assert check_active_queue(20000) == []
    findings = check_active_queue(40000)
    assert findings and "incoming queue" in findings[0].message and "batches" in findings[0].hint


def test_mailcow_transport_maps_list_is_parsed():
    refs = parse_table_list("pcre:/opt/postfix/conf/custom_transport.pcre, pcre:/opt/postfix/conf/local_transport,\n"
                            "  proxy:mysql:/opt/postfix/conf/sql/mysql_relay_ne.cf, "
                            "inline:{ a.test=smtp:[x], { b.test = :[y] } }")
    assert [r.kind for r in refs] == ["pcre", "pcre", "mysql", "inline"]
    assert refs[0].path == "/opt/postfix/conf/custom_transport.pcre" and refs[2].path == ""
    assert parse_inline(refs[3].spec) == [("a.test", "smtp:[x]"), ("b.test", ":[y]")]


def test_table_text():
    pcre = "# comment\n/^.*@example\\.net$/  smtp:[mx]\nif /x/\n/y/ relay:\nendif\n/watchdog@localhost$/   watchdog_discard:\n"
    assert parse_table_text("pcre", pcre) == [("/^.*@example\\.net$/", "smtp:[mx]"), ("/y/", "relay:"),
                                              ("/watchdog@localhost$/", "watchdog_discard:")]
    assert parse_table_text("texthash", "a.test smtp:[b]\n  \nc.test\n  :[d]\n") == [("a.test", "smtp:[b]"),
                                                                                   ("c.test", ":[d]")]


def test_dedicated_bulk_relays(example_fleet):
    assert dedicated_bulk_relays(example_fleet) == set()  # relays also carry transactional mail
    fleet = with_domain(example_fleet, "events.example", transactional_relay="tx1")
    fleet = with_domain(fleet, "labs.example", transactional_relay="tx1")
    assert dedicated_bulk_relays(fleet) == {"relay1"}


def test_fleet_findings(example_fleet):
    assert [f for f in check_fleet(example_fleet) if f.level == "error"] == []
    fleet = with_bulk_transport(example_fleet, source_address="192.0.2.99")
    assert any("192.0.2.99" in f.message and f.level == "error" for f in check_fleet(fleet))
    fleet = with_bulk_transport(example_fleet, minimal_backoff_time="900s")
    assert any("queue-manager settings" in f.message for f in check_fleet(fleet))
