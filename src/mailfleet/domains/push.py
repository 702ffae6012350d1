"""Push domains to every Mailcow host that serves or signs for them: gather, plan, apply (I/O).

Hosts are worked on in parallel (``run_on_hosts``), each host's ops in order. Every host's
outcome is collected; one host's failure never hides another's, and a rerun plans only what
is still missing, so it completes a push that stopped half-way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mailfleet.dkim.keys import DkimKey
from mailfleet.domains.apply import HostResult, PushError, apply_ops
from mailfleet.domains.gather import gather_host_state
from mailfleet.domains.model import Conflict
from mailfleet.domains.plan_push import hosts_for, plan_host
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Domain, Host
from mailfleet.ssh import run_on_hosts

ClientOpener = Callable[[Host, Inventory], AbstractContextManager[Any]]


def default_opener(host: Host, inventory: Inventory) -> AbstractContextManager[Any]:
    from mailfleet.mailcow import open_api

    return open_api(host, inventory)


@dataclass
class PushReport:
    results: dict[str, HostResult] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [name for name, r in self.results.items() if not r.ok]

    @property
    def changes(self) -> int:
        return sum(len(r.done) for r in self.results.values())

    @property
    def planned(self) -> int:
        return sum(len(r.planned) for r in self.results.values())


def push_domains(inv: Inventory, domains: Sequence[Domain], keys: Mapping[str, DkimKey], *, check: bool,
                 overwrite_keys: Collection[str] = (), opener: ClientOpener = default_opener,
                 hosts: Sequence[Host] | None = None, report_unmanaged: bool = False) -> PushReport:
    """Bring every host of ``domains`` to the inventory's state; with ``check``, only plan."""
    assert inv.fleet is not None
    fleet = inv.fleet
    public = {d: (k.selector, k.public_b64) for d, k in keys.items()}
    targets = list(hosts) if hosts is not None else hosts_for(fleet, domains)
    conflicts: dict[str, list[Conflict]] = {}
    notes: dict[str, list[str]] = {}

    def work(host: Host) -> HostResult:
        result = HostResult(host.name)
        with opener(host, inv) as client:
            state = gather_host_state(client, host.name, domains, inv.secrets_dir / "state")
            plan = plan_host(fleet, host, state, domains, public, overwrite_keys=overwrite_keys,
                             report_unmanaged=report_unmanaged)
            conflicts[host.name] = list(plan.conflicts)
            notes[host.name] = list(plan.notes)
            result.planned = [op.what for op in plan.ops]
            if check or not plan.ops:
                return result
            try:
                return apply_ops(client, fleet, plan.ops, keys, inv.base_dir, inv.secrets_dir, result)
            except PushError as exc:
                return exc.result

    outcomes = run_on_hosts(targets, work)
    report = PushReport()
    for host in targets:
        outcome = outcomes[host.name]
        report.results[host.name] = outcome.value if outcome.ok and outcome.value is not None else \
            HostResult(host.name, error=outcome.error or "no result")
        report.conflicts += conflicts.get(host.name, [])
        report.notes += [f"{host.name}: {n}" for n in notes.get(host.name, [])]
    return report
