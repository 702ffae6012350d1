"""Deploy loop: per host gather → plan → (check: stop) → apply → gather and plan again.

A fresh host needs several rounds (``mailcow.conf`` exists only after ``generate_config.sh``;
the API answers only after ``docker compose up``). A converged host needs one fact round
and nothing else. After applying, the host is planned once more: anything still to change is
an error (a step that does not converge would otherwise "succeed" forever).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailfleet.deploy.apply import apply_steps
from mailfleet.deploy.extensions import extension_facts
from mailfleet.deploy.facts import facts_for
from mailfleet.deploy.gather import gather_api_facts, gather_facts, mailcow_running
from mailfleet.deploy.merge_env import parse_env
from mailfleet.deploy.model import HostOutcome, HostPlan, Playbook, PlannedStep, PlaybookStep
from mailfleet.deploy.plan import plan_host
from mailfleet.deploy.plan_steps import PlanInput, desired_sysctl
from mailfleet.deploy.remote import Remote, SshRemote
from mailfleet.deploy.sources import HostSources, host_steps, load_host_sources, load_playbooks
from mailfleet.errors import HostKeyError, MailfleetError, SecretError
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Fleet, Host
from mailfleet.ssh import fetch_host_key, fingerprint, open_connection, run_on_hosts

MAX_ROUNDS = 5


@dataclass(frozen=True)
class HostJob:
    host: Host
    fleet: Fleet
    steps: tuple[PlaybookStep, ...]
    sources: HostSources


def _file_paths(job: HostJob) -> list[str]:
    return sorted({path for files in job.sources.files.values() for path in files})


def _sysctl_keys(job: HostJob) -> list[str]:
    keys: set[str] = set()
    for step in job.steps:
        if step.kind == "sysctl":
            keys |= set(desired_sysctl(step, job.host))
    return sorted(keys)


def needs_api(job: HostJob) -> bool:
    """Only inbound hosts with served domains that have a relay read the API while planning."""
    if not job.host.has_role("inbound") or not any(s.kind == "relayhost_wiring" for s in job.steps):
        return False
    return any((d.transactional_relay or d.relay) not in (None, job.host.name)
               for d in job.fleet.domains_served_by(job.host.name))


def gather_and_plan(remote: Remote, job: HostJob) -> HostPlan:
    wanted = facts_for(job.host, job.fleet, job.steps, _file_paths(job), _sysctl_keys(job))
    wanted += extension_facts(job.host, job.fleet, job.steps)  # facts of step kinds other components add
    facts = gather_facts(remote, wanted)
    api: dict[str, Any] | None = None
    if needs_api(job) and mailcow_running(facts):
        prime = getattr(remote, "prime_api", None)
        if prime is not None:
            from mailfleet.mailcow.tunnel import ApiEndpoint

            hostname = parse_env(facts["mailcow_conf"].get("text", "")).get("MAILCOW_HOSTNAME") or job.host.hostname
            prime(ApiEndpoint(cert_pem=str(facts["cert"]).strip() + "\n", mailcow_hostname=hostname))
        api = gather_api_facts(remote)
    inp = PlanInput(host=job.host, fleet=job.fleet, facts=facts, files=job.sources.files,
                    executable=job.sources.executable, conf_overrides=job.sources.conf_overrides, api=api)
    return plan_host(job.steps, inp)


def deploy_host(remote: Remote, job: HostJob, *, check: bool) -> HostOutcome:
    """Converge one host (or, with ``check``, only plan it). Never raises: errors become the outcome."""
    outcome = HostOutcome(host=job.host.name, ok=True, checked_only=check)
    applied: dict[str, list[str]] = {}
    plan: HostPlan | None = None
    try:
        plan = gather_and_plan(remote, job)
        if check:
            outcome.steps = list(plan.steps)
            return outcome
        for round_number in range(1, MAX_ROUNDS + 1):
            todo = [s for s in plan.steps if s.status == "change" or (s.actions and s.status == "ok")]
            if not todo:
                break
            outcome.rounds = round_number
            for step in todo:
                if step.changed:
                    lines = applied.setdefault(step.name, [])
                    lines += [line for line in step.changes if line not in lines]
            apply_steps(remote, todo)
            plan = gather_and_plan(remote, job)
        leftover = [s for s in plan.steps if s.status in ("change", "deferred")]
        outcome.steps = _report(plan, applied)
        if leftover:
            outcome.ok = False
            blocked = [f"{s.name}: {s.note}" for s in plan.steps if s.status == "warning"]
            outcome.error = (f"{job.host.name}: did not converge after {outcome.rounds} rounds; still to change: "
                             + "; ".join(f"{s.name}: {', '.join(s.changes)}" for s in leftover)
                             + (f". Blocked by: {'; '.join(blocked)}" if blocked else ""))
    except MailfleetError as exc:
        outcome.ok = False
        outcome.error = str(exc)
        outcome.steps = _report(plan, applied) if plan is not None else []
    except Exception as exc:  # noqa: BLE001 - one host's bug must not hide the others
        outcome.ok = False
        outcome.error = f"{job.host.name}: {type(exc).__name__}: {exc}"
        outcome.steps = _report(plan, applied) if plan is not None else []
    return outcome


def _report(plan: HostPlan | None, applied: dict[str, list[str]]) -> list[PlannedStep]:
    """The steps as the user should read them: what was changed, else the latest plan's view."""
    if plan is None:
        return []
    out = []
    for step in plan.steps:
        if step.name in applied:
            out.append(PlannedStep(step.name, step.kind, "change", changes=tuple(applied[step.name]), note=step.note))
        else:
            out.append(step)
    return out


def select_hosts(fleet: Fleet, host: str | None, role: str | None, all_hosts: bool) -> list[Host]:
    chosen = [x for x in (host, role, all_hosts or None) if x]
    if len(chosen) != 1:
        raise MailfleetError("say which hosts to deploy: exactly one of --host NAME, --role ROLE or --all")
    if host:
        names = [h.strip() for h in host.split(",") if h.strip()]
        unknown = [n for n in names if n not in fleet.hosts]
        if unknown:
            raise MailfleetError(f"no host {', '.join(map(repr, unknown))} in the inventory; "
                                 f"hosts are {', '.join(fleet.hosts)}")
        return [fleet.hosts[n] for n in names]
    if role:
        hosts = fleet.hosts_with_role(role)
        if not hosts:
            raise MailfleetError(f"no host has the role {role!r}; roles in use: "
                                 f"{', '.join(sorted({r for h in fleet.hosts.values() for r in h.roles}))}")
        return hosts
    return list(fleet.hosts.values())


RemoteFactory = Callable[[Host, HostSources], Remote]


def ssh_remote_factory(inv: Inventory) -> RemoteFactory:
    fleet = inv.fleet
    assert fleet is not None

    def make(host: Host, sources: HostSources) -> Remote:
        if not host.host_key:
            # Unknown host: show what it presents (a handshake only, nothing is sent) and stop.
            presented = fetch_host_key(host.address, host.ssh_port)
            raise HostKeyError(
                f"{host.name}: no host key is pinned in the inventory; {host.address} presents "
                f"{presented.split()[0]} {fingerprint(presented)}. Nothing was sent. Compare it with the host's "
                f"console, then pin it with `mailfleet trust-host --host {host.name}`.")
        conn = open_connection(host, fleet, inv.base_dir)
        return _ClosingRemote(SshRemote(conn, host, fleet, sources.api_key), conn)

    return make


class _ClosingRemote:
    """An SshRemote that also closes its connection."""

    def __init__(self, inner: SshRemote, conn: Any) -> None:
        self._inner, self._conn, self.name = inner, conn, inner.name

    def run(self, script: str, *, timeout: int):  # type: ignore[no-untyped-def]
        return self._inner.run(script, timeout=timeout)

    def api(self):  # type: ignore[no-untyped-def]
        return self._inner.api()

    def reset_api(self) -> None:
        self._inner.reset_api()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._conn.close()


def deploy_fleet(inv: Inventory, hosts: Sequence[Host], *, check: bool,
                 books: dict[str, Playbook] | None = None,
                 remote_factory: RemoteFactory | None = None) -> dict[str, HostOutcome]:
    """Deploy (or check) ``hosts`` in parallel on a bounded pool; every host gets an outcome."""
    fleet = inv.fleet
    assert fleet is not None
    books = books if books is not None else load_playbooks()
    factory = remote_factory or ssh_remote_factory(inv)

    def work(host: Host) -> HostOutcome:
        steps = host_steps(host, books)
        try:
            sources = load_host_sources(host, inv, steps)
        except SecretError as exc:
            raise SecretError(f"{host.name}: {exc}") from None
        remote = factory(host, sources)
        try:
            return deploy_host(remote, HostJob(host, fleet, steps, sources), check=check)
        finally:
            remote.close()

    results = run_on_hosts(hosts, work)
    outcomes: dict[str, HostOutcome] = {}
    for host in hosts:
        result = results[host.name]
        if result.ok and result.value is not None:
            outcomes[host.name] = result.value
        else:
            outcomes[host.name] = HostOutcome(host=host.name, ok=False, error=result.error or "unknown error",
                                              checked_only=check)
    return outcomes
