"""Carry out a rollout, host by host, step by step, writing every step to the journal first.

Per host: backup; on a relay, bulk mail deferred and the queue drained; ``update.sh``; health
gates; bulk resumed. The first failure halts the rollout. A host that failed at or after the
update (it may be half-updated) is rolled back to its "Before update" commit and checked
healthy on its old version; a host that failed before the update is left as it was (nothing
changed on it but a backup); the hosts after it are not touched.

What a step does on a host is behind ``HostOps`` (ops_ssh.py in production, a fake in tests),
and the clock is injected, so this module decides and records but never talks to a host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Fleet, Host
from mailfleet.upgrade.journal import Journal
from mailfleet.upgrade.parse_journal import HostProgress, RunState, steps_for
from mailfleet.upgrade.plan import UpgradePlan
from mailfleet.upgrade.plan_windows import first_slot, open_occurrence

UTC = timezone.utc
Clock = Callable[[], datetime]
PRE_UPDATE_STEPS = ("backup", "defer-bulk", "drain")


class StepFailed(MailfleetError):
    """A step did not reach its goal; the message says what was seen."""


class HostOps(Protocol):
    """What each step does on a host. Each returns details for the journal or raises."""

    def backup(self, host: Host) -> Mapping[str, Any]: ...
    def defer_bulk(self, host: Host) -> Mapping[str, Any]: ...
    def drain(self, host: Host) -> Mapping[str, Any]: ...
    def update(self, host: Host, target: str) -> Mapping[str, Any]: ...
    def health(self, host: Host, version: str) -> Mapping[str, Any]: ...
    def resume_bulk(self, host: Host) -> Mapping[str, Any]: ...
    def head(self, host: Host) -> str: ...
    def rollback(self, host: Host, head_before: str | None) -> Mapping[str, Any]: ...


@dataclass
class RolloutOutcome:
    run: str
    status: str                       # done | failed | paused
    upgraded: list[str] = field(default_factory=list)
    failed_host: str | None = None
    failed_step: str | None = None
    error: str | None = None
    rolled_back: bool | None = None
    waiting_for: str | None = None
    opens_at: datetime | None = None
    untouched: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "paused")


def start_run(journal: Journal, plan: UpgradePlan, fleet: Fleet, *, pin_on_success: bool) -> RunState:
    """Record a new run (its order, versions and roles) and return its initial state."""
    order = list(plan.order)
    journal.run_state("started", target=plan.target, order=order,
                      **{"from": {h.name: h.from_version for h in plan.hosts}},
                      roles={n: list(fleet.hosts[n].roles) for n in order},
                      ignore_windows=plan.ignore_windows, pin_on_success=pin_on_success,
                      host_minutes=int(plan.host_time.total_seconds() // 60))
    return RunState(run=journal.run, target=plan.target, order=order,
                    from_versions={h.name: h.from_version for h in plan.hosts}, started=plan.now,
                    roles={n: list(fleet.hosts[n].roles) for n in order},
                    hosts={n: HostProgress(n) for n in order})


def run_rollout(state: RunState, fleet: Fleet, journal: Journal, ops: HostOps, clock: Clock, *,
                ignore_windows: bool, host_time: timedelta, resumed: bool = False,
                say: Callable[[str], None] = lambda _: None) -> RolloutOutcome:
    outcome = RolloutOutcome(run=state.run, status="running")

    def note(text: str) -> None:
        outcome.log.append(text)
        say(text)

    if resumed:
        journal.run_state("resumed")
        for host, step, since in state.dangling:
            note(f"{host}: step {step} was started at {since.isoformat()} and never finished "
                 "(the controller stopped); it is run again")
    for index, name in enumerate(state.order):
        progress = state.hosts[name]
        if progress.status == "done":
            continue
        host = fleet.hosts.get(name)
        if host is None:
            raise MailfleetError(f"the journal's run {state.run} names host {name}, which is no longer in the "
                                 "inventory; restore it or abandon the run")
        if not ignore_windows:
            is_open, waiting = _window_state(fleet, host, clock(), host_time)
            if not is_open:
                outcome.status, outcome.waiting_for, outcome.opens_at = "paused", name, waiting
                outcome.untouched = state.order[index:]
                reason = (f"{name}'s maintenance window is closed; it next opens at "
                          f"{waiting.isoformat() if waiting else 'no time within two weeks'}")
                journal.run_state("paused", reason=reason, host=name,
                                  opens_at=waiting.isoformat() if waiting else None)
                note(f"paused: {reason}. Run `mailfleet upgrade --resume` then (or with --now to go ahead now)")
                return outcome
        failed = _upgrade_host(state, host, journal, ops, note, outcome)
        if failed:
            outcome.untouched = state.order[index + 1:]
            journal.run_state("failed", reason=outcome.error, host=name, step=outcome.failed_step)
            return outcome
        outcome.upgraded.append(name)
    journal.run_state("done")
    outcome.status = "done"
    return outcome


def _window_state(fleet: Fleet, host: Host, now: datetime, host_time: timedelta) -> tuple[bool, datetime | None]:
    """(True, None) when the host's window is open with ``host_time`` left; else (False, when it
    next opens with that much time, or None if not within two weeks)."""
    window = fleet.window_of(host)
    if window is None:
        raise MailfleetError(f"{host.name} has no maintenance window; set one in the inventory or use --now")
    if open_occurrence(window, now, host_time) is not None:
        return True, None
    found = first_slot(window, now, host_time)
    return False, (found[1] if found else None)


def _run_step(state: RunState, host: Host, step: str, journal: Journal, action: Callable[[], Mapping[str, Any]],
              note: Callable[[str], None], **started: Any) -> None:
    journal.step(host.name, step, "started", **started)
    try:
        detail = dict(action() or {})
    except Exception as exc:  # noqa: BLE001 - every failure is journalled, then re-raised
        journal.step(host.name, step, "failed", error=_text(exc))
        raise
    journal.step(host.name, step, "done", **({"detail": detail} if detail else {}))
    state.hosts[host.name].steps[step] = "done"
    note(f"{host.name}: {step} done" + (f" ({_summary(detail)})" if detail else ""))


def _upgrade_host(state: RunState, host: Host, journal: Journal, ops: HostOps, note: Callable[[str], None],
                  outcome: RolloutOutcome) -> bool:
    """Run the host's remaining steps; True when it failed (and was handled)."""
    progress = state.hosts[host.name]
    actions: dict[str, Callable[[], Mapping[str, Any]]] = {
        "backup": lambda: ops.backup(host),
        "defer-bulk": lambda: ops.defer_bulk(host),
        "drain": lambda: ops.drain(host),
        "update": lambda: ops.update(host, state.target),
        "health": lambda: ops.health(host, state.target),
        "resume-bulk": lambda: ops.resume_bulk(host),
    }
    for step in steps_for(host.roles):
        if progress.steps.get(step) == "done":
            continue
        started: dict[str, Any] = {}
        if step == "update":
            # Where the host stood before update.sh: the rollback's anchor, on disk first. A
            # rerun after a crash keeps the anchor journalled by the interrupted attempt.
            try:
                progress.head_before = started["head_before"] = progress.head_before or ops.head(host)
            except Exception as exc:  # noqa: BLE001 - nothing ran yet: fail like a pre-update step
                journal.step(host.name, "update", "failed", error=f"cannot read the checkout's commit: {_text(exc)}")
                _fail(outcome, host, "update", exc, note)
                _handle_failure(state, host, "drain", journal, ops, note, outcome)
                return True
        try:
            _run_step(state, host, step, journal, actions[step], note, **started)
        except Exception as exc:  # noqa: BLE001
            _fail(outcome, host, step, exc, note)
            _handle_failure(state, host, step, journal, ops, note, outcome)
            return True
    journal.host(host.name, "done", version=state.target)
    progress.status = "done"
    return False


def _fail(outcome: RolloutOutcome, host: Host, step: str, exc: BaseException, note: Callable[[str], None]) -> None:
    outcome.status, outcome.failed_host, outcome.failed_step = "failed", host.name, step
    outcome.error = f"{host.name}: {step} failed: {_text(exc)}"
    note(outcome.error)


def _handle_failure(state: RunState, host: Host, step: str, journal: Journal, ops: HostOps,
                    note: Callable[[str], None], outcome: RolloutOutcome) -> None:
    bulk_deferred = state.hosts[host.name].steps.get("defer-bulk") == "done"
    if step == "resume-bulk":
        outcome.rolled_back = False
        note(f"{host.name} is on {state.target} and healthy, but its bulk mail is still deferred")
        return  # the host stays in progress: --resume retries resume-bulk only
    if step in PRE_UPDATE_STEPS:
        outcome.rolled_back = False
        if bulk_deferred:
            _best_effort_resume_bulk(host, journal, ops, note)
        journal.host(host.name, "failed", step=step)
        note(f"{host.name} was not updated; it still runs {state.from_versions.get(host.name, 'its old version')}")
        return
    old = state.from_versions.get(host.name, "")
    journal.step(host.name, "rollback", "started")
    try:
        detail = dict(ops.rollback(host, state.hosts[host.name].head_before) or {})
        if old and old != "unknown":
            detail["health"] = dict(ops.health(host, old) or {})
    except Exception as exc:  # noqa: BLE001
        journal.step(host.name, "rollback", "failed", error=_text(exc))
        journal.host(host.name, "rollback-failed", step=step)
        outcome.rolled_back = False
        failure = f"ROLLBACK FAILED: {_text(exc)}. {host.name} may be down: look at it now"
        outcome.error = f"{outcome.error}; {failure}"
        note(f"{host.name}: {failure}")
        return
    journal.step(host.name, "rollback", "done", detail=detail)
    if bulk_deferred:
        _best_effort_resume_bulk(host, journal, ops, note)
    journal.host(host.name, "rolled-back", version=old)
    outcome.rolled_back = True
    note(f"{host.name}: rolled back to {old} ({_summary(detail)}) and healthy")


def _best_effort_resume_bulk(host: Host, journal: Journal, ops: HostOps, note: Callable[[str], None]) -> None:
    journal.step(host.name, "resume-bulk", "started")
    try:
        ops.resume_bulk(host)
    except Exception as exc:  # noqa: BLE001
        journal.step(host.name, "resume-bulk", "failed", error=_text(exc))
        note(f"{host.name}: bulk mail is still deferred ({_text(exc)}); resume it by hand")
        return
    journal.step(host.name, "resume-bulk", "done")


def _text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MailfleetError) else f"{type(exc).__name__}: {exc}"


def _summary(detail: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, (dict, list)))
