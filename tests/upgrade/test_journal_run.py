"""The rollout runner with a fake host: journal on disk, halting, rollback, resume, crashes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mailfleet.upgrade.journal import Journal, load_runs, load_unfinished_run
from mailfleet.upgrade.parse_journal import JournalError, parse_lines, replay
from mailfleet.upgrade.plan import PlanRequest, plan_upgrade
from mailfleet.upgrade.rules import check_down_intervals
from mailfleet.upgrade.run import StepFailed, run_rollout, start_run

from upgrade_fleets import all_need, with_windows

UTC = timezone.utc
NOW = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)   # Sun 02:30 Berlin: mx1/relay1's window is open


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class FakeHosts:
    """Hosts that record every call; ``fail`` maps host -> step that raises."""

    def __init__(self, version: str = "2026-07a") -> None:
        self.versions: dict[str, str] = {}
        self.default = version
        self.fail: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.crash_at: tuple[str, str] | None = None

    def _do(self, host, step: str) -> None:
        self.calls.append((host.name, step))
        if self.crash_at == (host.name, step):
            raise KeyboardInterrupt("controller killed")
        if self.fail.get(host.name) == step:
            raise StepFailed(f"injected {step} failure")

    def backup(self, host) -> dict[str, Any]:
        self._do(host, "backup")
        return {"folder": f"/var/backups/mailcow/{host.name}"}

    def defer_bulk(self, host):
        self._do(host, "defer-bulk")
        return {}

    def drain(self, host):
        self._do(host, "drain")
        return {"in_flight": 0}

    def head(self, host) -> str:
        return "c0ffee" + host.name

    def update(self, host, target):
        self._do(host, "update")
        self.versions[host.name] = target
        return {"runs": 1}

    def health(self, host, version):
        self._do(host, "health")
        if self.versions.get(host.name, self.default) != version:
            raise StepFailed(f"the API reports {self.versions.get(host.name, self.default)}, expected {version}")
        return {"version": version}

    def resume_bulk(self, host):
        self._do(host, "resume-bulk")
        return {}

    def rollback(self, host, head_before):
        self.calls.append((host.name, f"rollback:{head_before}"))
        self.versions[host.name] = self.default
        return {"commit": head_before}


def start(fleet, tmp_path, now=NOW, ignore_windows=True):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", now, ignore_windows=ignore_windows))
    clock = Clock(now)
    journal = Journal(tmp_path / "journal.jsonl", "run-1", clock)
    state = start_run(journal, plan, fleet, pin_on_success=True)
    return plan, clock, journal, state


def test_full_rollout_journals_every_step_and_never_overlaps(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    hosts = FakeHosts()
    outcome = run_rollout(state, fleet, journal, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30))
    assert outcome.status == "done" and outcome.upgraded == list(plan.order)
    assert all(v == "2026-08" for v in hosts.versions.values()) and len(hosts.versions) == 6
    # Relays get their bulk deferred, drained and resumed; inbound hosts do not.
    assert [s for h, s in hosts.calls if h == "relay1"] == ["backup", "defer-bulk", "drain", "update", "health",
                                                            "resume-bulk"]
    assert [s for h, s in hosts.calls if h == "mx1"] == ["backup", "update", "health"]
    runs = load_runs(tmp_path / "journal.jsonl")
    assert runs[-1].status == "done" and load_unfinished_run(tmp_path / "journal.jsonl") is None
    assert len(runs[-1].down) == 6 and check_down_intervals(fleet, runs[-1].down) == []
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    first_update = next(json.loads(line) for line in lines if '"update"' in line)
    assert first_update["state"] == "started" and first_update["head_before"].startswith("c0ffee")


def test_failure_halts_rolls_back_and_resume_finishes(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    third = plan.order[2]
    hosts = FakeHosts()
    hosts.fail[third] = "update"
    outcome = run_rollout(state, fleet, journal, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30))
    assert outcome.status == "failed" and not outcome.ok
    assert (outcome.failed_host, outcome.failed_step, outcome.rolled_back) == (third, "update", True)
    assert outcome.untouched == list(plan.order[3:])
    assert (third, f"rollback:c0ffee{third}") in hosts.calls
    assert hosts.versions[third] == "2026-07a"
    assert not any(h in plan.order[3:] for h, _ in hosts.calls)
    run = load_unfinished_run(tmp_path / "journal.jsonl")
    assert run is not None and run.status == "failed" and run.next_host() == third
    assert run.hosts[third].status == "rolled-back"
    assert check_down_intervals(fleet, run.down) == []

    hosts.fail.clear()
    hosts.calls.clear()
    again = Journal(tmp_path / "journal.jsonl", run.run, clock)
    outcome = run_rollout(run, fleet, again, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30),
                          resumed=True)
    assert outcome.status == "done"
    assert outcome.upgraded == list(plan.order[2:])
    # The failed host starts over (fresh backup); the first two are not touched again.
    assert hosts.calls[0] == (third, "backup")
    assert not any(h in plan.order[:2] for h, _ in hosts.calls)
    assert load_unfinished_run(tmp_path / "journal.jsonl") is None


def test_failure_before_the_update_leaves_the_host_alone_and_resumes_bulk(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    relay = next(n for n in plan.order if n.startswith("relay"))
    hosts = FakeHosts()
    hosts.fail[relay] = "drain"
    outcome = run_rollout(state, fleet, journal, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30))
    assert outcome.failed_step == "drain" and outcome.rolled_back is False
    steps = [s for h, s in hosts.calls if h == relay]
    assert steps == ["backup", "defer-bulk", "drain", "resume-bulk"]
    assert not any(s.startswith("rollback") for _, s in hosts.calls)


def test_controller_crash_leaves_the_step_visible_and_resume_reruns_it(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    second = plan.order[1]
    hosts = FakeHosts()
    hosts.crash_at = (second, "health")
    with pytest.raises(KeyboardInterrupt):
        run_rollout(state, fleet, journal, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30))
    # Ctrl-C or a kill leaves the step "started" with no end: the journal says which host is half-done.
    killed = load_unfinished_run(tmp_path / "journal.jsonl")
    assert killed is not None and killed.status == "running"
    assert [(h, s) for h, s, _ in killed.dangling] == [(second, "health")]
    assert [iv.host for iv in killed.down if iv.end is None] == [second]   # still counted as down

    hosts.crash_at = None
    hosts.calls.clear()
    hosts.head = lambda host: "moved-by-the-half-done-update"   # the anchor must come from the journal
    outcome = run_rollout(killed, fleet, Journal(tmp_path / "journal.jsonl", killed.run, clock), hosts, clock,
                          ignore_windows=True, host_time=timedelta(minutes=30), resumed=True)
    assert outcome.status == "done"
    assert hosts.calls[0] == (second, "health")       # backup and update were done: not repeated
    assert any("never finished" in line for line in outcome.log)


def test_closed_window_pauses_before_touching_the_host(fleet, tmp_path):
    thursday = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    plan, clock, journal, state = start(fleet, tmp_path, now=thursday, ignore_windows=False)
    hosts = FakeHosts()
    outcome = run_rollout(state, fleet, journal, hosts, clock, ignore_windows=False, host_time=timedelta(minutes=30))
    assert outcome.status == "paused" and hosts.calls == []
    assert outcome.waiting_for == plan.order[0]
    assert outcome.opens_at == plan.hosts[0].start
    assert load_unfinished_run(tmp_path / "journal.jsonl").status == "paused"


def test_a_torn_last_line_is_ignored_but_damage_elsewhere_is_refused():
    good = '{"kind": "run", "run": "r", "state": "started", "at": "2026-11-29T01:00:00+00:00", "target": "x", "order": []}\n'
    assert len(parse_lines([good, '{"kind": "st'])) == 1
    with pytest.raises(JournalError, match="journal:1"):
        parse_lines(['{"kind": "st\n', good])
    assert replay(parse_lines([good]))[0].status == "running"


def test_crash_inside_update_keeps_the_journalled_rollback_anchor(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    first = plan.order[0]
    hosts = FakeHosts()
    hosts.crash_at = (first, "update")
    with pytest.raises(KeyboardInterrupt):
        run_rollout(state, fleet, journal, hosts, clock, ignore_windows=True, host_time=timedelta(minutes=30))
    killed = load_unfinished_run(tmp_path / "journal.jsonl")
    assert [(h, s) for h, s, _ in killed.dangling] == [(first, "update")]
    assert killed.hosts[first].head_before == f"c0ffee{first}"
    hosts.crash_at = None
    healthy = hosts.health

    def unhealthy_on_target(host, version):   # the rerun update leaves it unhealthy: roll back
        if version == "2026-08":
            raise StepFailed("containers not running: postfix-mailcow")
        return healthy(host, version)

    hosts.health = unhealthy_on_target
    hosts.head = lambda host: "moved-by-the-half-done-update"
    outcome = run_rollout(killed, fleet, Journal(tmp_path / "journal.jsonl", killed.run, clock), hosts, clock,
                          ignore_windows=True, host_time=timedelta(minutes=30), resumed=True)
    assert outcome.rolled_back is True
    assert (first, f"rollback:c0ffee{first}") in hosts.calls


def test_only_one_upgrade_per_journal_at_a_time(tmp_path):
    from mailfleet.errors import MailfleetError
    from mailfleet.upgrade.journal import journal_lock

    path = tmp_path / "journal.jsonl"
    with journal_lock(path):
        with pytest.raises(MailfleetError, match="another `mailfleet upgrade`"):
            with journal_lock(path):
                pass
    with journal_lock(path):   # released after the first one ends
        pass


def test_run_records_the_host_time_for_resume(fleet, tmp_path):
    plan, clock, journal, state = start(fleet, tmp_path)
    assert load_runs(tmp_path / "journal.jsonl")[-1].host_minutes == 30
