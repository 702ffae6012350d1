"""``domains.sync``: reconcile every inventory domain with every Mailcow host (I/O).

The inventory and the keys under ``secrets/dkim`` are the truth: a missing domain, mailbox,
alias, relayhost wiring or DKIM key is added, and a host key that differs from ours is
replaced (reported as drift). One exception: a domain with no key of ours while some host
already holds one is reported and left alone — generating a new key would silently replace
the one DNS publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailfleet.dkim.keys import DkimKey, save_key
from mailfleet.domains.add import ensure_key
from mailfleet.domains.push import ClientOpener, PushReport, default_opener, push_domains
from mailfleet.inventory.load import Inventory


@dataclass
class SyncResult:
    report: PushReport
    preflight: PushReport
    skipped: dict[str, str]  # domain -> why


def sync_domains(inv: Inventory, *, check: bool = False, opener: ClientOpener = default_opener) -> SyncResult:
    assert inv.fleet is not None
    domains = list(inv.fleet.domains.values())
    keys: dict[str, DkimKey] = {}
    created: set[str] = set()
    for domain in domains:
        key, new = ensure_key(inv, domain)
        keys[domain.ascii] = key
        if new:
            created.add(domain.ascii)
    owned = {d.ascii for d in domains} - created
    preflight = push_domains(inv, domains, keys, check=True, overwrite_keys=owned, opener=opener,
                             report_unmanaged=True)
    skipped = {c.domain: c.message for c in preflight.conflicts}
    unread = {name for name, result in preflight.results.items() if not result.ok}
    for domain in domains:
        blind = sorted(set(domain.signing_hosts) & unread)
        if domain.ascii in created and blind and domain.ascii not in skipped:
            skipped[domain.ascii] = (f"no key of ours yet and {', '.join(blind)} could not be read, so it is unknown "
                                     "whether a host already signs with another key; no key was generated; rerun "
                                     "when every signing host answers")
    if check:
        return SyncResult(preflight, preflight, skipped)
    go = [d for d in domains if d.ascii not in skipped]
    for ascii_name in sorted(created - set(skipped)):
        save_key(keys[ascii_name])
    report = push_domains(inv, go, {d.ascii: keys[d.ascii] for d in go}, check=False, overwrite_keys=owned,
                          opener=opener)
    report.conflicts = preflight.conflicts
    report.notes = preflight.notes
    for name, result in preflight.results.items():  # a host that could not even be read is a failure too
        if not result.ok and name not in report.results:
            report.results[name] = result
    return SyncResult(report, preflight, skipped)
