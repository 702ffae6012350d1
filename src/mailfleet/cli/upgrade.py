"""``upgrade``: rolling Mailcow upgrades inside maintenance windows, one host at a time.

    mailfleet upgrade --plan              who, in which order, when (changes nothing)
    mailfleet upgrade --prefetch          pull the new images now, outside the window
    mailfleet upgrade [--yes]             run the hosts whose window is open, in plan order
    mailfleet upgrade --now --yes         ignore the windows (an emergency fix)
    mailfleet upgrade --resume            continue a rollout that halted, paused or crashed

Exit codes: 0 done / nothing to do / window closed; 1 a host failed (halted, named, rolled back)
or the plan is unsafe.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors
from mailfleet.errors import MailfleetError

# Every `mailfleet` start imports this module: the inventory (ruamel.yaml), mailfleet.upgrade and the
# SSH stack (paramiko, Fabric) load only when the task runs; these names are annotations.
if TYPE_CHECKING:
    from mailfleet.inventory.load import Inventory
    from mailfleet.upgrade.ops_ssh import SshHostOps
    from mailfleet.upgrade.parse_journal import RunState
    from mailfleet.upgrade.plan import CheckResult, UpgradePlan
    from mailfleet.upgrade.run import RolloutOutcome

DEFAULT_BACKUP_DIR = "/var/backups/mailcow"  # = ops_ssh.DEFAULT_BACKUP_DIR; a test keeps them equal


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@task(name="upgrade", help={
    "plan": "print the plan with its times and change nothing",
    "yes": "do not ask for confirmation",
    "now": "ignore maintenance windows and start now",
    "host": "upgrade only this host",
    "to": "the version to reach (default: the newest release update.sh would bring)",
    "resume": "continue the unfinished rollout recorded in the journal",
    "prefetch": "pull the new images on the planned hosts now (allowed outside windows), then stop",
    "journal": "journal file (default: <inventory>.upgrade-journal.jsonl next to the inventory)",
    "inventory": "inventory file",
    "json": "print the plan / outcome as JSON",
    "backup-dir": f"absolute backup location on each host (default: fleet.mailcow.backup_location, "
                  f"else {DEFAULT_BACKUP_DIR})",
    "host-minutes": "minutes of window each host needs (default 30; --resume: what the run was started with)",
    "drain-threshold": "relays: messages allowed in flight before update.sh runs (default 10)",
    "health-timeout": "seconds the health gates may take to pass (default 180)",
})
@reports_errors
def upgrade(c, plan=False, yes=False, now=False, host=None, to=None, resume=False, prefetch=False, journal=None,
            inventory=None, json=False, backup_dir=None, host_minutes=None, drain_threshold=10,
            health_timeout=180):
    """Rolling Mailcow upgrade: backup, drain, update.sh, health gates; halt and roll back on failure."""
    from mailfleet.inventory import load_valid_inventory
    from mailfleet.upgrade.journal import default_journal_path, journal_lock

    inv = load_valid_inventory(default_inventory_path(inventory))
    assert inv.fleet is not None
    journal_path = Path(journal) if journal else default_journal_path(inv.path)
    from mailfleet.upgrade.ops_ssh import Settings, SshHostOps

    settings = Settings(backup_dir=backup_dir or inv.fleet.settings.mailcow.backup_location,
                        drain_threshold=int(drain_threshold),
                        health_timeout=float(health_timeout))
    ops = SshHostOps(inv, settings)
    try:
        with journal_lock(journal_path):
            _upgrade(inv, ops, journal_path, plan=plan, yes=yes, now=now, host=host, to=to, resume=resume,
                     prefetch=prefetch, json=json, host_minutes=host_minutes)
    finally:
        ops.close()


def _upgrade(inv: Inventory, ops: SshHostOps, journal_path: Path, *, plan: bool, yes: bool, now: bool,
             host: str | None, to: str | None, resume: bool, prefetch: bool, json: bool,
             host_minutes: int | None) -> None:
    assert inv.fleet is not None
    from mailfleet.upgrade.journal import Journal, load_unfinished_run, new_run_id
    from mailfleet.upgrade.run import run_rollout, start_run

    unfinished = load_unfinished_run(journal_path)
    if resume:
        minutes = host_minutes or (unfinished.host_minutes if unfinished else None) or 30
        _resume(inv, ops, unfinished, journal_path, plan=plan, yes=yes, now=now, json=json,
                host_time=timedelta(minutes=int(minutes)))
        return
    host_time = timedelta(minutes=int(host_minutes or 30))
    if unfinished is not None:
        if not plan:
            raise MailfleetError(_unfinished_message(unfinished, journal_path))
        print(f"warning: {_unfinished_message(unfinished, journal_path)}", file=sys.stderr)
    the_plan = _make_plan(inv, ops, host=host, to=to, now=now, host_time=host_time, json=json)
    if the_plan is None:
        return
    if json:
        print_json({"plan": plan_as_json(the_plan), "journal": str(journal_path)})
    else:
        print(render_plan(the_plan))
    if plan:
        return
    if prefetch:
        _prefetch(inv, ops, the_plan)
        return
    if not the_plan.hosts:
        return
    if not the_plan.starts_now:
        first = the_plan.hosts[0]
        print(f"The maintenance window is closed: nothing was done. {first.name}'s window opens at "
              f"{first.local(first.start).isoformat()} ({first.start.isoformat()}); run `mailfleet upgrade` "
              "then, or use --now to go ahead outside the windows.")
        return
    _confirm(yes, f"Upgrade {len(the_plan.hosts)} host(s) to {the_plan.target} now?")
    run_journal = Journal(journal_path, new_run_id(_utc_now()), _utc_now)
    state = start_run(run_journal, the_plan, inv.fleet, pin_on_success=_pin_on_success(inv, the_plan, host))
    outcome = run_rollout(state, inv.fleet, run_journal, ops, _utc_now, ignore_windows=bool(now),
                          host_time=host_time, say=_say(json))
    _finish(inv, outcome, state, journal_path, json=json, pin=_pin_on_success(inv, the_plan, host))


def _say(json_mode: bool):
    def say(text: str) -> None:
        print(text, file=sys.stderr if json_mode else sys.stdout, flush=True)
    return say


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise Exit("not started: no terminal to confirm on; read the plan above and rerun with --yes", code=1)
    if input(f"{question} Type 'yes': ").strip().lower() != "yes":
        raise Exit("not started; nothing changed", code=1)


def _unfinished_message(run: RunState, path: Path) -> str:
    where = ""
    if run.dangling:
        where = "; " + ", ".join(f"{h} stopped inside step {s} (started {t.isoformat()})" for h, s, t in run.dangling)
    nxt = run.next_host()
    return (f"the journal {path} holds an unfinished rollout {run.run} to {run.target} "
            f"({run.status}{': ' + run.reason if run.reason else ''}; next host {nxt}{where}). A new rollout would "
            "not know which hosts are half-done. Run `mailfleet upgrade --resume` to continue it "
            "(`--resume --plan` shows where it stands).")


def _gather(inv: Inventory, ops: SshHostOps) -> dict[str, CheckResult]:
    assert inv.fleet is not None
    from mailfleet.ssh import run_on_hosts
    from mailfleet.upgrade.plan import CheckResult

    outcomes = run_on_hosts(list(inv.fleet.hosts.values()), ops.gather_check, max_parallel=6)
    return {name: (o.value if o.ok and o.value is not None else CheckResult(name, None, None, error=o.error))
            for name, o in outcomes.items()}


def _target(inv: Inventory, checks: dict[str, CheckResult], to: str | None) -> str | None:
    if to:
        return str(to)
    available = {c.available_version for c in checks.values() if c.exit_code == 0 and c.available_version}
    if len(available) > 1:
        raise MailfleetError(f"hosts would update to different releases ({', '.join(sorted(available))}); "
                             "pass --to VERSION to choose one")
    if available:
        return available.pop()
    return None


def _make_plan(inv: Inventory, ops: SshHostOps, *, host: str | None, to: str | None, now: bool,
               host_time: timedelta, json: bool = False) -> UpgradePlan | None:
    assert inv.fleet is not None
    if host and host not in inv.fleet.hosts:
        raise MailfleetError(f"--host {host}: no such host in {inv.path}; hosts are {', '.join(inv.fleet.hosts)}")
    checks = _gather(inv, ops)
    target = _target(inv, checks, to)
    if target is None:
        versions = sorted({c.current_version or "?" for c in checks.values() if c.installed and not c.error})
        errors = [f"{c.host}: {c.error}" for c in checks.values() if c.error]
        if errors:
            raise MailfleetError("cannot ask every host for updates:\n  " + "\n  ".join(errors))
        message = f"Nothing to upgrade: update.sh --check finds no update on any host (running {', '.join(versions)})."
        if json:
            print_json({"plan": None, "nothing_to_do": True, "versions": versions, "message": message})
        else:
            print(message)
        return None
    from mailfleet.upgrade.plan import PlanRequest, plan_upgrade

    return plan_upgrade(PlanRequest(inv.fleet, checks, target, _utc_now(), only=(host,) if host else (),
                                    ignore_windows=bool(now), host_time=host_time))


def _pin_on_success(inv: Inventory, plan: UpgradePlan, host: str | None) -> bool:
    """Move the fleet's version pin only when every Mailcow host will be on the target."""
    if not host:
        return True
    assert inv.fleet is not None
    others = {s.name for s in plan.skipped if s.reason.startswith("already on")}
    return all(name in others or name in plan.order or not h.runs_mailcow for name, h in inv.fleet.hosts.items())


def _prefetch(inv: Inventory, ops: SshHostOps, plan: UpgradePlan) -> None:
    assert inv.fleet is not None
    hosts = [inv.fleet.hosts[n] for n in plan.order]
    from mailfleet.ssh import run_on_hosts

    outcomes = run_on_hosts(hosts, ops.prefetch, max_parallel=6)
    failed = [o for o in outcomes.values() if not o.ok]
    for name in plan.order:
        o = outcomes[name]
        print(f"{name}: {'images prefetched' if o.ok else 'prefetch FAILED: ' + str(o.error)}")
    if failed:
        raise Exit(f"prefetch failed on {', '.join(o.host for o in failed)}; nothing else was changed", code=1)


def _resume(inv: Inventory, ops: SshHostOps, run: RunState | None, journal_path: Path, *, plan: bool, yes: bool,
            now: bool, json: bool, host_time: timedelta) -> None:
    assert inv.fleet is not None
    if run is None:
        raise MailfleetError(f"nothing to resume: {journal_path} holds no unfinished rollout; "
                             "start one with `mailfleet upgrade`")
    summary = {"run": run.run, "target": run.target, "status": run.status, "next_host": run.next_host(),
               "hosts": {h: p.status for h, p in run.hosts.items()},
               "dangling": [{"host": h, "step": s, "since": t.isoformat()} for h, s, t in run.dangling]}
    if json:
        print_json({"resume": summary, "journal": str(journal_path)})
    else:
        print(f"Rollout {run.run} to {run.target}: {run.status}; next host {run.next_host()}")
        for h, p in run.hosts.items():
            print(f"  {h:<12} {p.status}")
        for h, s, t in run.dangling:
            print(f"  ! {h} stopped inside step {s} (started {t.isoformat()}); it will be run again")
    if plan:
        return
    _confirm(yes, f"Resume rollout {run.run} at {run.next_host()}?")
    from mailfleet.upgrade.journal import Journal
    from mailfleet.upgrade.run import run_rollout

    journal = Journal(journal_path, run.run, _utc_now)
    outcome = run_rollout(run, inv.fleet, journal, ops, _utc_now, ignore_windows=bool(now), host_time=host_time,
                          resumed=True, say=_say(json))
    _finish(inv, outcome, run, journal_path, json=json, pin=run.pin_on_success)


def _finish(inv: Inventory, outcome: RolloutOutcome, state: RunState, journal_path: Path, *, json: bool,
            pin: bool) -> None:
    pinned = False
    if outcome.status == "done" and pin:
        pinned = _move_pin(inv, state.target)
    if json:
        print_json({"outcome": outcome_as_json(outcome, journal_path, pinned)})
    if outcome.status == "done":
        if not json:
            print(f"Done: {', '.join(outcome.upgraded) or 'no host'} on {state.target}"
                  + (f"; {inv.path} now pins {state.target}" if pinned else ""))
        return
    if outcome.status == "paused":
        return
    rolled = {True: f"{outcome.failed_host} was rolled back and is healthy on its old version",
              False: f"{outcome.failed_host} was NOT rolled back", None: ""}[outcome.rolled_back]
    raise Exit(f"error: rollout halted. {outcome.error}. {rolled}. "
               f"Not touched: {', '.join(outcome.untouched) or 'none'}. Journal: {journal_path}. "
               "Fix the cause, then run `mailfleet upgrade --resume`.", code=1)


def _move_pin(inv: Inventory, version: str) -> bool:
    from mailfleet.inventory import save_inventory

    fleet_doc = inv.doc.get("fleet")
    if fleet_doc is None:
        return False
    mailcow = fleet_doc.get("mailcow")
    if mailcow is None:
        fleet_doc["mailcow"] = {"version": version}
    elif mailcow.get("version") == version:
        return False
    else:
        mailcow["version"] = version
    save_inventory(inv)
    return True


def plan_as_json(plan: UpgradePlan) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "target": plan.target, "now": plan.now.isoformat(), "starts_now": plan.starts_now,
        "ignore_windows": plan.ignore_windows,
        "hosts": [{"name": h.name, "roles": list(h.roles), "from": h.from_version, "window": h.window, "tz": h.tz,
                   "start": when(h.start), "end": when(h.end), "start_local": when(h.local(h.start)),
                   "end_local": when(h.local(h.end)), "window_start": when(h.window_start),
                   "window_end": when(h.window_end)} for h in plan.hosts],
        "skipped": [{"name": s.name, "reason": s.reason} for s in plan.skipped],
        "notes": list(plan.notes),
    }


def outcome_as_json(outcome: RolloutOutcome, journal_path: Path, pinned: bool) -> dict[str, Any]:
    return {"run": outcome.run, "status": outcome.status, "upgraded": outcome.upgraded,
            "failed_host": outcome.failed_host, "failed_step": outcome.failed_step, "error": outcome.error,
            "rolled_back": outcome.rolled_back, "untouched": outcome.untouched,
            "waiting_for": outcome.waiting_for, "opens_at": outcome.opens_at.isoformat() if outcome.opens_at else None,
            "pinned": pinned, "journal": str(journal_path)}


def render_plan(plan: UpgradePlan) -> str:
    lines = [f"Upgrade to {plan.target}" + (" (windows ignored: --now)" if plan.ignore_windows else "")
             + f", planned at {plan.now.isoformat()}:"]
    if not plan.hosts:
        lines.append("  no host needs it")
    for i, h in enumerate(plan.hosts, start=1):
        start_local = h.local(h.start)
        lines.append(f"  {i}. {h.name:<10} {','.join(h.roles):<16} {h.from_version} -> {plan.target}  "
                     f"{start_local:%a %Y-%m-%d %H:%M} {h.tz}" + ("" if h.tz == "UTC" else f" ({h.start:%H:%M} UTC)")
                     + (f"  window {h.window}" if h.window else ""))
    for s in plan.skipped:
        lines.append(f"  -  {s.name:<10} skipped: {s.reason}")
    for note in plan.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def register(ns: Collection) -> None:
    ns.add_task(upgrade)
