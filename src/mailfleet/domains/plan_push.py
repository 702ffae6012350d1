"""Plan what each Mailcow host needs so it serves and signs the inventory's domains. Pure.

Per domain (shared/reference/mailcow.md §1.4):
* every signing host (inbound hosts and relays) holds OUR DKIM key under the inventory's
  selector, imported with ``add/dkim_import`` (a relay needs no domain object to sign);
* every inbound host has the domain, created with ``key_size: 0`` after the import so Mailcow
  never generates a key of its own; the inventory's mailboxes and aliases; the domain routed
  through its transactional relay, else its relay (a relayhost object, found or created, and
  the domain's ``relayhost`` id; the rule deploy's relayhost wiring follows too);
  and the MTA-STS policy where the domain enables it.

A host that already holds a *different* key for the domain is a conflict when
``overwrite_keys`` is false (add-domain: someone set the domain up by hand and DNS may publish
their key), and a key to replace when it is true (domains.sync: the inventory is the truth).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from mailfleet.dkim.render_key import short_fingerprint
from mailfleet.dns.render_mta_sts import render_mta_sts_policy
from mailfleet.domains.model import Conflict, HostPlan, HostState, Op, RelayhostState
from mailfleet.inventory.model import Domain, Fleet, Host

RELAY_PORT = 25
DOMAIN_QUOTA_MB = 10240


def relay_nexthop(relay: Host, port: int = RELAY_PORT) -> str:
    """The Postfix nexthop inbound hosts use for a relay: its address in brackets (no MX lookup)."""
    return f"[{relay.address}]:{port}"


def relay_nexthop_aliases(relay: Host, port: int = RELAY_PORT) -> set[str]:
    """Every spelling of a relayhost object that already means this relay (whoever created it:
    deploy's relayhost wiring or an earlier add-domain)."""
    names = {relay.address, relay.hostname, *relay.public_ips}
    out = set()
    for name in names:
        out |= {f"[{name}]:{port}", f"{name}:{port}", f"[{name}]"}
        if port == RELAY_PORT:
            out.add(name)
    return {n.lower() for n in out}


def routing_relay(domain: Domain) -> str | None:
    """The relay a domain's Mailcow relayhost points at: its transactional relay when it has one,
    else its relay. Bulk mail is routed to the bulk relay by the priority maps, which Postfix
    consults before Mailcow's per-domain relayhost; the same rule as deploy's relayhost wiring
    (``deploy.plan_steps.plan_relayhost_wiring``), so the two never undo each other."""
    return domain.transactional_relay or domain.relay


def find_relayhost(relayhosts: Sequence[RelayhostState], relay: Host) -> RelayhostState | None:
    wanted = relay_nexthop_aliases(relay)
    matches = [r for r in relayhosts if r.hostname.strip().lower() in wanted]
    return min(matches, key=lambda r: r.id) if matches else None


def domain_attributes(domain: Domain) -> dict[str, object]:
    """``add/domain`` fields: no key generation, room for the inventory's mailboxes, SOGo left alone."""
    quotas = [m.quota_mb for m in domain.mailboxes]
    total = max(DOMAIN_QUOTA_MB, sum(quotas) + 1024)
    largest = max([DOMAIN_QUOTA_MB, *quotas])
    return {"description": "managed by mailfleet", "active": 1, "key_size": 0, "restart_sogo": 0,
            "mailboxes": max(10, len(domain.mailboxes) + 5), "aliases": 400,
            "quota": total, "maxquota": min(total, largest), "defquota": min(1024, largest)}


def _alias_targets(domain: Domain, local: str) -> tuple[str, ...]:
    return tuple(sorted(t.lower() for t in domain.aliases[local]))


def plan_host(fleet: Fleet, host: Host, state: HostState, domains: Sequence[Domain],
              keys: Mapping[str, tuple[str, str]], *, overwrite_keys: Collection[str] = (),
              report_unmanaged: bool = False) -> HostPlan:
    """Ops for one host. ``keys`` maps a domain's ascii name to (selector, public key base64)
    of the key it must sign with; a domain missing there is skipped with a note.
    ``overwrite_keys``: the domains (ascii) whose differing host keys are replaced with ours."""
    ops: list[Op] = []
    conflicts: list[Conflict] = []
    notes: list[str] = []
    for domain in domains:
        d = domain.ascii
        serves = host.name in domain.inbound_hosts
        signs = host.name in domain.signing_hosts
        if not (serves or signs):
            continue
        if d not in keys:
            notes.append(f"{domain.name}: no DKIM key to push (see the error above); skipped")
            continue
        selector, public = keys[d]
        have = state.dkim.get(d)
        if have is None:
            ops.append(Op(host.name, d, "import_dkim", f"{domain.name}: import DKIM key {selector} "
                          f"({short_fingerprint(public)})", {"selector": selector, "overwrite": False}))
        elif have.public_b64 != public or have.selector != selector:
            if d not in overwrite_keys:
                conflicts.append(Conflict(host.name, d, (
                    f"{host.name} already holds a different DKIM key for {domain.name} (selector {have.selector}, "
                    f"{short_fingerprint(have.public_b64)}; ours: selector {selector}, {short_fingerprint(public)}). "
                    "Replacing it would break signatures checked against whatever DNS publishes now. "
                    f"If ours is right, run `mailfleet domains.sync` (it replaces host keys with ours) after "
                    f"publishing our record; if theirs is right, put its private key in "
                    f"secrets/dkim/{d}.{selector}.pem")))
                continue
            ops.append(Op(host.name, d, "import_dkim", f"{domain.name}: replace DKIM key {have.selector} "
                          f"({short_fingerprint(have.public_b64)}) with ours {selector} ({short_fingerprint(public)})",
                          {"selector": selector, "overwrite": True}))
        if not serves:
            continue
        if d not in state.domains:
            ops.append(Op(host.name, d, "add_domain", f"{domain.name}: add the domain (no Mailcow-generated key)",
                          {"attributes": domain_attributes(domain)}))
        for mailbox in domain.mailboxes:
            address = f"{mailbox.local_part}@{d}".lower()
            if address not in state.mailboxes:
                ops.append(Op(host.name, d, "add_mailbox", f"{domain.name}: add mailbox {address}",
                              {"local_part": mailbox.local_part, "quota_mb": mailbox.quota_mb,
                               "name": mailbox.name, "password_ref": str(mailbox.password or "")}))
        for local in domain.aliases:
            address = f"{local}@{d}".lower()
            targets = _alias_targets(domain, local)
            existing = state.aliases.get(address)
            if existing is None:
                ops.append(Op(host.name, d, "add_alias", f"{domain.name}: add alias {address} -> {', '.join(targets)}",
                              {"address": address, "goto": list(targets)}))
            elif tuple(sorted(existing.goto)) != targets:
                ops.append(Op(host.name, d, "edit_alias", f"{domain.name}: alias {address} goes to "
                              f"{', '.join(existing.goto)}; set it to {', '.join(targets)}",
                              {"id": existing.id, "address": address, "goto": list(targets)}))
        relay_name = routing_relay(domain)
        if relay_name and relay_name != host.name:
            relay = fleet.hosts[relay_name]
            found = find_relayhost(state.relayhosts, relay)
            current = str((state.domains.get(d) or {}).get("relayhost") or "0")
            if found is None or current != str(found.id):
                how = f"relayhost {found.hostname} (id {found.id})" if found else \
                    f"a new relayhost {relay_nexthop(relay)}"
                ops.append(Op(host.name, d, "wire_relayhost", f"{domain.name}: send outbound mail through "
                              f"{relay.name} via {how}", {"relay": relay.name, "nexthop": relay_nexthop(relay)}))
        policy = render_mta_sts_policy(fleet, domain)
        if policy is not None and state.mta_sts.get(d) != policy.policy_id:
            ops.append(Op(host.name, d, "mta_sts", f"{domain.name}: MTA-STS policy mode {policy.mode}, "
                          f"mx {', '.join(policy.mx)} (id {policy.policy_id})",
                          {"mode": policy.mode, "mx": list(policy.mx), "max_age": policy.max_age,
                           "policy_id": policy.policy_id}))
    if report_unmanaged:
        for name in state.other_domains:
            if fleet.domain(name) is None:
                notes.append(f"also holds {name}, which the inventory does not list; mailfleet leaves it "
                             "alone (add it to the inventory to manage it, or delete it in Mailcow)")
    return HostPlan(host.name, tuple(ops), tuple(conflicts), tuple(notes))


def hosts_for(fleet: Fleet, domains: Sequence[Domain]) -> list[Host]:
    """Every Mailcow host that serves or signs for any of ``domains``, in inventory order."""
    wanted = {h for d in domains for h in d.signing_hosts}
    return [h for name, h in fleet.hosts.items() if name in wanted]
