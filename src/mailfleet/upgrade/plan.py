"""Plan a rolling upgrade: which hosts, in which order, in which maintenance window.

Inputs are data only: the fleet, what ``update.sh --check`` said on each host (exit code 0 =
update available, 3 = none, 99 = the fetch failed) with the version the host runs, the target
version, and ``now``. The output is an ordered plan with a slot per host in the host's time
zone and in UTC, or an ``UnsafePlan`` error listing every reason the plan cannot be made.

Hosts upgrade strictly one at a time. The order is the order of their windows; where windows
tie, the least critical host goes first so a bad release shows up on a canary: bulk-only
relays, then inbound hosts that are primary MX for the fewest domains, then transactional
relays; monitoring hosts always last (rules.py). Each host gets ``host_time`` of its window; a
host whose window is too short, or already used up by the hosts before it, moves to the next
occurrence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from mailfleet.errors import UnsafePlan
from mailfleet.inventory.model import Fleet, Host, MaintenanceWindow
from mailfleet.upgrade.plan_windows import first_slot
from mailfleet.upgrade.rules import DownInterval, check_down_intervals, check_order

UTC = timezone.utc
CHECK_UPDATE_AVAILABLE = 0
CHECK_NO_UPDATE = 3
CHECK_FETCH_FAILED = 99
DEFAULT_HOST_TIME = timedelta(minutes=30)


@dataclass(frozen=True)
class CheckResult:
    """What a host said: ``update.sh --check``'s exit code and the version it runs.

    ``installed`` is False when the host has no Mailcow checkout (e.g. a monitoring-only host);
    ``error`` carries why a host could not be asked at all.
    """

    host: str
    exit_code: int | None
    current_version: str | None
    installed: bool = True
    error: str | None = None
    available_version: str | None = None   # the newest release update.sh would bring


@dataclass(frozen=True)
class PlannedHost:
    name: str
    roles: tuple[str, ...]
    from_version: str
    window: str | None           # the window's text, None with --now
    tz: str
    start: datetime              # slot start, UTC
    end: datetime                # slot end (start + host_time), UTC
    window_start: datetime | None  # the window occurrence used, UTC
    window_end: datetime | None

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(ZoneInfo(self.tz))


@dataclass(frozen=True)
class SkippedHost:
    name: str
    reason: str


@dataclass(frozen=True)
class UpgradePlan:
    target: str
    now: datetime
    hosts: tuple[PlannedHost, ...]
    skipped: tuple[SkippedHost, ...] = ()
    notes: tuple[str, ...] = ()
    ignore_windows: bool = False
    host_time: timedelta = DEFAULT_HOST_TIME

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    @property
    def starts_now(self) -> bool:
        return bool(self.hosts) and self.hosts[0].start <= self.now

    def host(self, name: str) -> PlannedHost:
        return next(h for h in self.hosts if h.name == name)


@dataclass(frozen=True)
class PlanRequest:
    """Everything the planner needs; ``order`` overrides the computed order (and is checked)."""

    fleet: Fleet
    checks: Mapping[str, CheckResult]
    target: str
    now: datetime
    only: Sequence[str] = ()
    order: Sequence[str] | None = None
    ignore_windows: bool = False
    host_time: timedelta = DEFAULT_HOST_TIME
    extra_notes: Sequence[str] = field(default_factory=tuple)


def plan_upgrade(request: PlanRequest) -> UpgradePlan:
    """The plan, or ``UnsafePlan`` naming every host and rule that prevents one."""
    fleet, now = request.fleet, request.now.astimezone(UTC)
    problems: list[str] = []
    for name in request.only:
        if name not in fleet.hosts:
            problems.append(f"--host {name}: no such host; hosts are {', '.join(fleet.hosts)}")
    if problems:
        raise UnsafePlan("cannot plan the upgrade:\n  " + "\n  ".join(problems))

    needed, skipped = _select(request, problems)
    if request.only:
        _check_only_keeps_monitoring_last(request, needed, problems)
    if request.order is not None:
        order = list(request.order)
        problems.extend(str(v) for v in check_order(fleet, order))
        missing = [n for n in needed if n not in order]
        if missing:
            problems.append(f"the order leaves out {', '.join(missing)}, which need{'s' if len(missing) == 1 else ''} "
                            f"the upgrade to {request.target}")
        order = [n for n in order if n in needed]
    else:
        order = []
    if problems:
        raise UnsafePlan("cannot plan the upgrade:\n  " + "\n  ".join(problems)
                         + "\nNothing was changed. Fix these and run `mailfleet upgrade --plan` again.")

    planned = _schedule(request, needed, order or None, now, problems)
    problems = list(dict.fromkeys(problems))
    if problems:
        raise UnsafePlan("cannot plan the upgrade:\n  " + "\n  ".join(problems)
                         + "\nNothing was changed. Fix these and run `mailfleet upgrade --plan` again.")
    violations = check_order(fleet, [p.name for p in planned])
    violations += check_down_intervals(fleet, [DownInterval(p.name, p.start, p.end) for p in planned])
    if violations:
        raise UnsafePlan("the plan would break a safety rule:\n  " + "\n  ".join(str(v) for v in violations))
    return UpgradePlan(target=request.target, now=now, hosts=tuple(planned), skipped=tuple(skipped),
                       notes=tuple(_notes(fleet, planned)) + tuple(request.extra_notes),
                       ignore_windows=request.ignore_windows, host_time=request.host_time)


def _select(request: PlanRequest, problems: list[str]) -> tuple[dict[str, CheckResult], list[SkippedHost]]:
    """Hosts that need the upgrade; the others with the reason they are left alone."""
    needed: dict[str, CheckResult] = {}
    skipped: list[SkippedHost] = []
    names = list(request.only) or list(request.fleet.hosts)
    for name in names:
        check = request.checks.get(name)
        if check is None:
            problems.append(f"{name}: no update check result; it could not be asked whether it needs the upgrade")
        elif check.error:
            problems.append(f"{name}: {check.error}")
        elif not check.installed:
            skipped.append(SkippedHost(name, "no Mailcow checkout on this host"))
        elif check.current_version == request.target:
            skipped.append(SkippedHost(name, f"already on {request.target}"))
        elif check.exit_code == CHECK_FETCH_FAILED:
            problems.append(f"{name}: `update.sh --check` could not fetch the Mailcow repository (exit 99); "
                            "check the host's access to its origin and rerun")
        elif check.exit_code == CHECK_UPDATE_AVAILABLE:
            if check.available_version and check.available_version != request.target:
                problems.append(f"{name}: update.sh would bring {check.available_version}, not {request.target}; "
                                f"pass --to {check.available_version} or leave --to out")
            else:
                needed[name] = check
        elif check.exit_code == CHECK_NO_UPDATE:
            problems.append(f"{name}: runs {check.current_version or 'an unknown version'}, not {request.target}, but "
                            f"`update.sh --check` finds no update (exit 3); its checkout cannot reach {request.target}. "
                            "Check the version you asked for (--to) and the host's branch")
        else:
            problems.append(f"{name}: `update.sh --check` exited {check.exit_code}, which is neither 0 (update "
                            "available), 3 (none) nor 99 (fetch failed); look at the host")
    return needed, skipped


def _check_only_keeps_monitoring_last(request: PlanRequest, needed: Mapping[str, CheckResult],
                                      problems: list[str]) -> None:
    fleet = request.fleet
    if not any(fleet.hosts[n].has_role("monitoring") for n in needed):
        return
    pending = [name for name, check in request.checks.items()
               if name not in request.only and name in fleet.hosts and not fleet.hosts[name].has_role("monitoring")
               and check.installed and not check.error and check.current_version != request.target]
    if pending:
        problems.append(f"the monitoring host goes last, but {', '.join(sorted(pending))} "
                        f"{'is' if len(pending) == 1 else 'are'} not on {request.target} yet; upgrade "
                        f"{'it' if len(pending) == 1 else 'them'} first")


def _rank(fleet: Fleet, host: Host) -> tuple[int, int]:
    """Canary order for hosts whose windows tie: least critical first."""
    if host.has_role("monitoring"):
        return (9, 0)
    transactional = any(d.transactional_relay == host.name for d in fleet.domains.values())
    primary_for = sum(1 for d in fleet.domains.values() if d.inbound_hosts[:1] == (host.name,))
    if host.has_role("inbound"):
        return (2 if not transactional else 3, primary_for)
    if transactional:
        return (3, 0)
    return (1, 0)


def _schedule(request: PlanRequest, needed: Mapping[str, CheckResult], order: Sequence[str] | None,
              now: datetime, problems: list[str]) -> list[PlannedHost]:
    fleet = request.fleet
    remaining = list(order) if order is not None else sorted(
        needed, key=lambda n: (fleet.hosts[n].has_role("monitoring"), n))
    planned: list[PlannedHost] = []
    earliest = now
    while remaining:
        candidates = remaining[:1] if order is not None else [
            n for n in remaining if not fleet.hosts[n].has_role("monitoring")] or remaining
        best: tuple[tuple, PlannedHost] | None = None
        for name in candidates:
            slot = _slot(request, fleet.hosts[name], needed[name], earliest, problems)
            if slot is None:
                continue
            key = (slot.start, _rank(fleet, fleet.hosts[name]), name)
            if best is None or key < best[0]:
                best = (key, slot)
        if best is None:
            return planned  # problems say why
        chosen = best[1]
        planned.append(chosen)
        remaining.remove(chosen.name)
        earliest = chosen.end
    return planned


def _slot(request: PlanRequest, host: Host, check: CheckResult, earliest: datetime,
          problems: list[str]) -> PlannedHost | None:
    window: MaintenanceWindow | None = request.fleet.window_of(host)
    tz = window.tz if window else request.fleet.settings.timezone
    base = dict(name=host.name, roles=host.roles, from_version=check.current_version or "unknown", tz=tz)
    if request.ignore_windows:
        return PlannedHost(**base, window=window.text if window else None, start=earliest,
                           end=earliest + request.host_time, window_start=None, window_end=None)
    if window is None:
        problems.append(f"{host.name}: has no maintenance window (neither its own nor fleet.maintenance_window); "
                        "set one in the inventory, or upgrade it now with --now")
        return None
    found = first_slot(window, earliest, request.host_time)
    if found is None:
        minutes = int(request.host_time.total_seconds() // 60)
        problems.append(f"{host.name}: its window {window.text!r} never leaves {minutes} minutes for the upgrade; "
                        "widen the window")
        return None
    occ, start = found
    return PlannedHost(**base, window=window.text, start=start, end=start + request.host_time,
                       window_start=occ.start, window_end=occ.end)


def _notes(fleet: Fleet, planned: Sequence[PlannedHost]) -> list[str]:
    notes: list[str] = []
    names = {p.name for p in planned}
    for domain in fleet.domains.values():
        if len(domain.inbound_hosts) == 1 and domain.inbound_hosts[0] in names:
            notes.append(f"{domain.name} has one inbound host ({domain.inbound_hosts[0]}): senders queue its mail "
                         "while that host upgrades")
    relays = [h.name for h in fleet.hosts_with_role("outbound-relay")]
    if len(relays) == 1 and relays[0] in names:
        notes.append(f"{relays[0]} is the only relay: outbound mail waits in the inbound hosts' queues while it upgrades")
    return notes
