"""The rollout planner: who, in which order, in which window; rule-breaking orders refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailfleet.errors import UnsafePlan
from mailfleet.upgrade.plan import CheckResult, PlanRequest, plan_upgrade
from mailfleet.upgrade.rules import DownInterval, check_down_intervals

from upgrade_fleets import all_need, with_windows

UTC = timezone.utc
# Thursday 2026-11-26 12:00 UTC: every window of the example fleet is closed.
THURSDAY = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_example_fleet_follows_its_windows_and_puts_monitoring_last(fleet):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY))
    # Sat 02:00 Berlin relay2, Sat 04:00 tx1, Sun 02:00 relay1 (bulk canary) then mx1, Sun 04:00 mx2, mon1.
    assert plan.order == ("relay2", "tx1", "relay1", "mx1", "mx2", "mon1")
    relay2 = plan.host("relay2")
    assert relay2.start == datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    assert relay2.local(relay2.start).strftime("%a %H:%M %Z") == "Sat 02:00 CET"
    assert plan.host("mx1").start == plan.host("relay1").end       # one at a time in the same window
    assert plan.host("mon1").start == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert not plan.starts_now


def test_closed_window_plan_says_when_it_will_run(fleet):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, only=("mx2",)))
    assert plan.order == ("mx2",)
    assert not plan.starts_now
    assert plan.host("mx2").local(plan.host("mx2").start).isoformat() == "2026-11-29T04:00:00+01:00"


def test_hosts_already_on_target_are_skipped_with_reason(fleet):
    checks = all_need(fleet)
    checks["mx1"] = CheckResult("mx1", 3, "2026-08")
    checks["mon1"] = CheckResult("mon1", None, None, installed=False)
    plan = plan_upgrade(PlanRequest(fleet, checks, "2026-08", THURSDAY))
    assert "mx1" not in plan.order and "mon1" not in plan.order
    assert {s.name: s.reason for s in plan.skipped} == {"mx1": "already on 2026-08",
                                                        "mon1": "no Mailcow checkout on this host"}


def test_windows_that_cannot_fit_every_host_spill_into_the_next_week(fleet):
    # Everyone shares one 45-minute window: one host per week at 30 minutes each.
    narrow = with_windows(fleet, {n: None for n in fleet.hosts}, default="Sun 02:00-02:45 UTC")
    plan = plan_upgrade(PlanRequest(narrow, all_need(narrow), "2026-08", THURSDAY))
    starts = [h.start for h in plan.hosts]
    assert starts[1] - starts[0] == timedelta(days=7)
    assert plan.order[-1] == "mon1"


def test_ignore_windows_runs_back_to_back_from_now(fleet):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, ignore_windows=True))
    assert plan.starts_now and plan.hosts[0].start == THURSDAY
    assert plan.order[-1] == "mon1"
    # Canary order: bulk-only relays, then the MX that is primary for fewer domains, tx1, monitoring.
    assert plan.order == ("relay1", "relay2", "mx2", "mx1", "tx1", "mon1")


def test_order_with_monitoring_not_last_is_refused(fleet):
    bad = ["mon1", "mx1", "mx2", "relay1", "relay2", "tx1"]
    with pytest.raises(UnsafePlan, match="mon1 must be upgraded last"):
        plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, order=bad, ignore_windows=True))


def test_order_that_leaves_out_a_host_or_names_one_twice_is_refused(fleet):
    with pytest.raises(UnsafePlan) as err:
        plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY,
                                 order=["mx1", "mx1", "relay1", "relay2", "tx1", "mon1"], ignore_windows=True))
    assert "mx1 appears twice" in str(err.value) and "leaves out mx2" in str(err.value)


def test_a_valid_explicit_order_is_kept(fleet):
    order = ["mx1", "mx2", "tx1", "relay1", "relay2", "mon1"]
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, order=order, ignore_windows=True))
    assert list(plan.order) == order


def test_overlapping_downtime_of_two_inbound_hosts_of_a_domain_is_refused(fleet):
    t = THURSDAY
    violations = check_down_intervals(fleet, [DownInterval("mx1", t, t + timedelta(minutes=30)),
                                              DownInterval("mx2", t + timedelta(minutes=29), None)])
    assert [v.rule for v in violations] == ["inbound"]
    assert "mx1 and mx2" in violations[0].message
    # Touching but not overlapping is fine.
    assert check_down_intervals(fleet, [DownInterval("mx1", t, t + timedelta(minutes=30)),
                                        DownInterval("mx2", t + timedelta(minutes=30), t + timedelta(hours=1))]) == []


def test_every_relay_down_at_once_is_refused_but_two_of_three_is_not(fleet):
    t = THURSDAY
    two = [DownInterval("relay1", t, t + timedelta(hours=1)), DownInterval("relay2", t, t + timedelta(hours=1))]
    assert check_down_intervals(fleet, two) == []
    three = two + [DownInterval("tx1", t + timedelta(minutes=10), t + timedelta(minutes=20))]
    violations = check_down_intervals(fleet, three)
    assert [v.rule for v in violations] == ["relays"]
    assert violations[0].at == t + timedelta(minutes=10)


def test_monitoring_alone_while_others_lag_is_refused(fleet):
    with pytest.raises(UnsafePlan, match="monitoring host goes last"):
        plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, only=("mon1",)))


def test_check_failures_and_contradictions_are_all_reported(fleet):
    checks = all_need(fleet)
    checks["mx1"] = CheckResult("mx1", 99, "2026-07a")
    checks["mx2"] = CheckResult("mx2", 3, "2026-07a")
    checks["relay1"] = CheckResult("relay1", None, None, error="SSH to root@203.0.113.21:22 failed")
    del checks["tx1"]
    with pytest.raises(UnsafePlan) as err:
        plan_upgrade(PlanRequest(fleet, checks, "2026-08", THURSDAY))
    text = str(err.value)
    assert "mx1: `update.sh --check` could not fetch" in text
    assert "mx2: runs 2026-07a, not 2026-08" in text
    assert "relay1: SSH to" in text
    assert "tx1: no update check result" in text
    assert "Nothing was changed" in text


def test_host_without_any_window_needs_now(fleet):
    bare = with_windows(fleet, {n: None for n in fleet.hosts}, default=None)
    with pytest.raises(UnsafePlan, match="has no maintenance window"):
        plan_upgrade(PlanRequest(bare, all_need(bare), "2026-08", THURSDAY))
    plan = plan_upgrade(PlanRequest(bare, all_need(bare), "2026-08", THURSDAY, ignore_windows=True))
    assert len(plan.hosts) == 6


def test_window_too_short_for_a_host_is_refused(fleet):
    short = with_windows(fleet, {"tx1": "Sat 04:00-04:10 Europe/Berlin"})
    with pytest.raises(UnsafePlan, match="tx1: its window 'Sat 04:00-04:10 Europe/Berlin' never leaves 30 minutes"):
        plan_upgrade(PlanRequest(short, all_need(short), "2026-08", THURSDAY))


def test_unknown_host_is_refused(fleet):
    with pytest.raises(UnsafePlan, match="--host mx9: no such host"):
        plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY, only=("mx9",)))


def test_single_mx_domains_are_noted(fleet):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", THURSDAY))
    assert any(n.startswith("events.example has one inbound host (mx1)") for n in plan.notes)
