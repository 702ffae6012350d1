"""``add-domain``: validate, check every host for conflicts, write the inventory, push (I/O).

Order, and why:
1. Validate the input and the inventory with the new entry, in memory. A bad name, an unknown
   host or a wrong role stops here; nothing is written.
2. Read every host that would serve or sign for the domain and plan the push. A host holding a
   different DKIM key for the domain stops here too: the inventory and the key folder stay
   unchanged (the operator decides whose key is right).
3. Write the inventory entry (round trip, comments kept, atomic) and the DKIM key (0600). The
   inventory is written *before* the push because it is the desired state: if the push fails
   half-way, the domain is recorded, the failure is reported per host, and running add-domain
   (or domains.sync) again completes exactly what is missing.
4. Push to each host: key import, domain, mailboxes, aliases, relayhost, MTA-STS.
With ``check``, steps 1-2 run and the plan is shown; nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailfleet.dkim.keys import DkimKey, load_key, new_key, save_key
from mailfleet.domains.plan_entry import DomainInputError, check_matches_existing, plan_domain_entry
from mailfleet.domains.push import ClientOpener, PushReport, default_opener, push_domains
from mailfleet.errors import InventoryError, MailfleetError
from mailfleet.inventory.load import Inventory, dump_inventory, parse_inventory_text, save_inventory
from mailfleet.inventory.merge import merge_domain
from mailfleet.inventory.model import Domain


class DomainConflictError(MailfleetError):
    """A host holds state add-domain will not overwrite; nothing was changed."""


@dataclass
class AddDomainResult:
    domain: Domain
    new_in_inventory: bool
    entry: dict[str, Any] | None
    key_created: bool
    report: PushReport
    preflight: PushReport
    notes: list[str] = field(default_factory=list)


def _with_entry(inv: Inventory, name: str, entry: dict[str, Any]) -> Inventory:
    """A copy of the inventory with the entry merged in, validated, not written."""
    copy = parse_inventory_text(dump_inventory(inv.doc), str(inv.path), inv.path)
    merge_domain(copy.doc, name, entry)
    checked = parse_inventory_text(dump_inventory(copy.doc), str(inv.path), inv.path)
    if checked.problems or checked.fleet is None:
        raise InventoryError(checked.problems, f"{inv.path} with {name} added (nothing was written)")
    return checked


def ensure_key(inv: Inventory, domain: Domain) -> tuple[DkimKey, bool]:
    """The stored key for the domain's selector, or a new one (not saved yet) and True."""
    key = load_key(inv.secrets_dir, domain.ascii, domain.dkim.selector)
    if key is not None:
        return key, False
    return new_key(inv.secrets_dir, domain.ascii, domain.dkim.selector, domain.dkim.key_size), True


def add_domain(inv: Inventory, name: str, *, inbound: Sequence[str] = (), relay: str | None = None,
               transactional_relay: str | None = None, selector: str | None = None, key_size: int | None = None,
               mta_sts: str | None = None, check: bool = False, opener: ClientOpener = default_opener) -> AddDomainResult:
    assert inv.fleet is not None
    existing = inv.fleet.domain(name)
    entry = None
    if existing is not None:
        check_matches_existing(existing, inbound, relay, transactional_relay, selector, key_size, mta_sts)
        target = inv
        domain = existing
    else:
        entry = plan_domain_entry(inv.fleet, name, inbound, relay, transactional_relay, selector, key_size,
                                  mta_sts)
        target = _with_entry(inv, name.strip().rstrip("."), entry)
        assert target.fleet is not None
        found = target.fleet.domain(name)
        if found is None:  # pragma: no cover - merge_domain wrote it
            raise DomainInputError([f"{name} could not be added"])
        domain = found
    key, created = ensure_key(inv, domain)
    keys = {domain.ascii: key}
    preflight = push_domains(target, [domain], keys, check=True, opener=opener)
    if preflight.conflicts:
        lines = "\n".join(f"  - {c.message}" for c in preflight.conflicts)
        raise DomainConflictError(f"add-domain {domain.name}: {len(preflight.conflicts)} host(s) hold a conflicting "
                                  f"state; the inventory and the key folder were not changed\n{lines}")
    if check:
        return AddDomainResult(domain, existing is None, entry, created, preflight, preflight)
    if existing is None:
        inv.doc = target.doc
        save_inventory(inv)
    if created:
        save_key(key)
    assert inv.fleet is not None
    domain = inv.fleet.domain(name) or domain
    report = push_domains(inv, [domain], keys, check=False, opener=opener)
    return AddDomainResult(domain, existing is None, entry, created, report, preflight)
