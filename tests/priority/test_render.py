"""Rendering: the files deploy places, the extra.cf block, and refusals instead of traps."""

from __future__ import annotations

import pytest

from mailfleet.priority import EXECUTABLE_PATHS, PriorityConfigError, render_extra_cf, render_files
from mailfleet.priority.render import HEADERS_PATH, HOOK_PATH, MAILCOW_SENDER_MAP, SENDERS_PATH
from priority_helpers import with_bulk_transport, with_domain


def test_files_and_paths(example_fleet):
    files = render_files(example_fleet, "mx1")
    assert set(files) == {SENDERS_PATH, HEADERS_PATH, HOOK_PATH}
    assert EXECUTABLE_PATHS == {HOOK_PATH}
    assert files[HOOK_PATH].startswith("#!/bin/sh\n")
    assert "postconf -M bulk/unix='bulk unix - - n - - smtp'" in files[HOOK_PATH]


def test_monitoring_host_gets_nothing(example_fleet):
    assert render_files(example_fleet, "mon1") == {}
    assert render_extra_cf(example_fleet, "mon1") == ""


def test_rendering_is_deterministic(example_fleet):
    assert render_files(example_fleet, "relay1") == render_files(example_fleet, "relay1")
    assert render_extra_cf(example_fleet, "relay1") == render_extra_cf(example_fleet, "relay1")


def test_extra_cf_puts_our_map_before_mailcows_and_sets_the_window(example_fleet):
    block = render_extra_cf(example_fleet, "mx1")
    value = block.split("sender_dependent_default_transport_maps =", 1)[1].split("\n#", 1)[0]
    assert value.index("regexp:/opt/postfix/conf/mailfleet_bulk_senders.regexp") < value.index(MAILCOW_SENDER_MAP)
    assert "bulk_destination_concurrency_limit = 12" in block
    assert "bulk_initial_destination_concurrency = 5" in block
    assert "mailfleet_bulk_header_checks = regexp:/opt/postfix/conf/mailfleet_bulk_headers.regexp" in block
    # never smtp_header_checks: FILTER is unsupported there
    assert "smtp_header_checks" not in block


def test_initial_concurrency_never_exceeds_the_limit(example_fleet):
    block = render_extra_cf(with_bulk_transport(example_fleet, destination_concurrency_limit=2), "mx1")
    assert "bulk_destination_concurrency_limit = 2" in block
    assert "bulk_initial_destination_concurrency = 2" in block


def test_a_window_that_takes_the_receivers_connections_is_refused(example_fleet):
    fleet = with_bulk_transport(example_fleet, destination_concurrency_limit=18)
    with pytest.raises(PriorityConfigError) as err:
        render_files(fleet, "mx1")
    assert "421" in str(err.value) and "nothing was changed" in str(err.value)


def test_conflicting_header_relays_are_refused(example_fleet):
    fleet = with_domain(example_fleet, "shop.example", relay="relay2")
    with pytest.raises(PriorityConfigError, match="different relays"):
        render_extra_cf(fleet, "mx1")


def test_no_header_rules_leaves_submission_cleanup_as_mailcow_has_it(example_fleet):
    from mailfleet.inventory.model import BulkRules

    fleet = example_fleet
    for name in ("example.com", "shop.example"):
        fleet = with_domain(fleet, name, bulk=BulkRules(senders=fleet.domains[name].bulk.senders))
    hook = render_files(fleet, "mx1")[HOOK_PATH]
    assert "postconf -P 'smtp_sender_cleanup/unix/header_checks=$smtp_header_checks'\n" in hook
    assert "mailfleet_bulk_header_checks" not in hook
    assert "mailfleet_bulk_header_checks" not in render_extra_cf(fleet, "mx1")


def test_header_filter_only_on_submission_cleanup_for_inbound_hosts(example_fleet):
    hook = render_files(example_fleet, "mx1")[HOOK_PATH]
    assert "postconf -PX cleanup/unix/header_checks" in hook  # port-25 mail for mailboxes is never FILTERed
    relay_hook = render_files(example_fleet, "relay1")[HOOK_PATH]
    assert "postconf -P 'cleanup/unix/header_checks=$mailfleet_bulk_header_checks'" in relay_hook


def test_backoff_only_on_a_dedicated_bulk_relay(example_fleet):
    fleet = with_bulk_transport(example_fleet, minimal_backoff_time="900s", maximal_backoff_time="8000s")
    # relay1 also carries transactional mail of events.example and labs.example (no
    # transactional_relay): not a dedicated bulk relay, so the retry schedule stays Postfix's
    assert "minimal_backoff_time" not in render_extra_cf(fleet, "relay1")
    fleet = with_domain(fleet, "events.example", transactional_relay="tx1")
    fleet = with_domain(fleet, "labs.example", transactional_relay="tx1")
    block = render_extra_cf(fleet, "relay1")
    assert "minimal_backoff_time = 900s" in block and "maximal_backoff_time = 8000s" in block
    assert "minimal_backoff_time" not in render_extra_cf(fleet, "mx1")


def test_source_address_only_on_the_host_that_owns_it(example_fleet):
    address = example_fleet.hosts["relay1"].public_ips[0]
    fleet = with_bulk_transport(example_fleet, source_address=address)
    hook = render_files(fleet, "relay1")[HOOK_PATH]
    assert f"bulk/unix/smtp_bind_address={address}" in hook and "smtp_bind_address_enforce=yes" in hook
    assert "postconf -PX bulk/unix/smtp_bind_address " in render_files(fleet, "mx1")[HOOK_PATH]


def test_unknown_host(example_fleet):
    with pytest.raises(PriorityConfigError, match="no host 'nope'"):
        render_files(example_fleet, "nope")
