"""The inventory entry ``add-domain`` writes for a new domain, and the checks of its input. Pure.

Defaults (documented in ``mailfleet add-domain --help``): every inbound host with preferences
10, 20, … in inventory order; the first outbound relay; the selector most domains of the fleet
use (else ``dkim``); DMARC ``p=none`` to start with (tighten it once reports show every sender
aligned); mailboxes postmaster plus the fleet's DMARC and TLS-RPT report mailboxes when they
belong to this domain; alias abuse → postmaster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mailfleet.errors import MailfleetError
from mailfleet.inventory.parse import MTA_STS_MODES
from mailfleet.inventory.model import Domain, Fleet
from mailfleet.inventory.rules_names import DKIM_KEY_SIZES, check_selector, to_ascii_domain


class DomainInputError(MailfleetError):
    """add-domain was given something it cannot use; lists every problem at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"add-domain: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}; "
                         f"the inventory was not changed\n{body}")


def _check_host(fleet: Fleet, name: str, role: str, what: str, problems: list[str]) -> None:
    if name not in fleet.hosts:
        problems.append(f"{what}: there is no host {name!r}; hosts with the {role} role are "
                        f"{', '.join(h.name for h in fleet.hosts_with_role(role)) or 'none'}")
    elif not fleet.hosts[name].has_role(role):
        problems.append(f"{what}: host {name!r} lacks the {role} role (it has {', '.join(fleet.hosts[name].roles)}); "
                        f"choose one of {', '.join(h.name for h in fleet.hosts_with_role(role)) or 'none'}")


def default_selector(fleet: Fleet) -> str:
    counts = Counter(d.dkim.selector for d in fleet.domains.values())
    return counts.most_common(1)[0][0] if counts else "dkim"


def plan_domain_entry(fleet: Fleet, name: str, inbound: Sequence[str] = (), relay: str | None = None,
                      transactional_relay: str | None = None, selector: str | None = None,
                      key_size: int | None = None, mta_sts: str | None = None) -> dict[str, Any]:
    """The mapping to write under ``domains.<name>``; raises ``DomainInputError`` with every problem."""
    problems: list[str] = []
    try:
        ascii_name = to_ascii_domain(name)
    except ValueError as exc:
        problems.append(f"--domain: {exc}")
        ascii_name = ""
    inbound = list(dict.fromkeys(inbound or ()))
    for host in inbound:
        _check_host(fleet, host, "inbound", "--inbound", problems)
    if relay:
        _check_host(fleet, relay, "outbound-relay", "--relay", problems)
    if transactional_relay:
        _check_host(fleet, transactional_relay, "outbound-relay", "--transactional-relay", problems)
    if selector:
        try:
            selector = check_selector(selector)
        except ValueError as exc:
            problems.append(f"--selector: {exc}")
    if key_size is not None and key_size not in DKIM_KEY_SIZES:
        problems.append(f"--key-size {key_size}: Mailcow signs with RSA keys of {', '.join(map(str, DKIM_KEY_SIZES))} "
                        "bits; 2048 is what receivers expect")
    if mta_sts is not None and mta_sts not in MTA_STS_MODES:
        problems.append(f"--mta-sts {mta_sts}: the mode is one of {', '.join(MTA_STS_MODES)}")
    if not inbound:
        inbound = [h.name for h in fleet.hosts_with_role("inbound")]
        if not inbound:
            problems.append("the inventory has no host with the inbound role to receive this domain's mail")
    if relay is None:
        relays = fleet.hosts_with_role("outbound-relay")
        relay = relays[0].name if relays else None
    if ascii_name and ascii_name in {h.hostname for h in fleet.hosts.values()}:
        problems.append(f"--domain {name}: that is a host's own name; Mailcow refuses a domain equal to "
                        "MAILCOW_HOSTNAME (domain_cannot_match_hostname)")
    if problems:
        raise DomainInputError(problems)
    entry: dict[str, Any] = {"inbound": {h: 10 * (i + 1) for i, h in enumerate(inbound)}}
    if relay:
        entry["relay"] = relay
    if transactional_relay:
        entry["transactional_relay"] = transactional_relay
    entry["dkim"] = {"selector": selector or default_selector(fleet)}
    if key_size and key_size != 2048:
        entry["dkim"]["key_size"] = key_size
    entry["dmarc"] = {"policy": "none"}
    if mta_sts:
        entry["mta_sts"] = mta_sts
    mailboxes: dict[str, dict[str, Any]] = {"postmaster": {}}
    for report in (fleet.settings.dmarc_reports, fleet.settings.tlsrpt_reports):
        if report and report.partition("@")[2] == ascii_name:
            mailboxes[report.partition("@")[0]] = {}
    entry["mailboxes"] = mailboxes
    entry["aliases"] = {"abuse": f"postmaster@{name}"}
    return entry


def check_matches_existing(domain: Domain, inbound: Sequence[str] = (), relay: str | None = None,
                           transactional_relay: str | None = None, selector: str | None = None,
                           key_size: int | None = None, mta_sts: str | None = None) -> None:
    """add-domain for a domain already in the inventory pushes it as written; flags that ask for
    something else are refused rather than silently ignored."""
    problems = []
    if inbound and list(dict.fromkeys(inbound)) != list(domain.inbound_hosts):
        problems.append(f"--inbound {' '.join(inbound)}: {domain.name} is in the inventory with inbound "
                        f"{', '.join(domain.inbound_hosts)}; edit the inventory to change it, then run "
                        "`mailfleet domains.sync`")
    if relay and relay != domain.relay:
        problems.append(f"--relay {relay}: {domain.name} is in the inventory with relay {domain.relay or 'none'}; "
                        "edit the inventory to change it")
    if transactional_relay and transactional_relay != domain.transactional_relay:
        problems.append(f"--transactional-relay {transactional_relay}: {domain.name} is in the inventory with "
                        f"{domain.transactional_relay or 'none'}; edit the inventory to change it")
    if selector and selector != domain.dkim.selector:
        problems.append(f"--selector {selector}: {domain.name} signs with selector {domain.dkim.selector}; "
                        "use `mailfleet dkim.rotate` to move to a new one")
    if mta_sts and mta_sts != domain.mta_sts:
        problems.append(f"--mta-sts {mta_sts}: {domain.name} has mta_sts {domain.mta_sts or 'unset'}; edit the "
                        "inventory to change it, then run `mailfleet domains.sync`")
    if key_size and key_size != domain.dkim.key_size:
        problems.append(f"--key-size {key_size}: {domain.name} has key_size {domain.dkim.key_size}; a new size takes "
                        "a new key: set dkim.key_size in the inventory and run `mailfleet dkim.rotate`")
    if problems:
        raise DomainInputError(problems)
