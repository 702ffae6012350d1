"""Which mail is bulk: the inventory's rules turned into Postfix tables and a Python classifier.

Pure. Every domain lists what counts as bulk for it (``domains.*.bulk``): envelope senders,
whole sender domains (a marketing subdomain) and header rules (``List-Unsubscribe``,
``Precedence: bulk``). Everything else is transactional and keeps Postfix's default path.

One rule set, two consumers, so they can never disagree:

* Postfix on a host: a ``regexp:`` table for ``sender_dependent_default_transport_maps``
  (sender -> ``bulk:<next hop>``) and a ``regexp:`` header_checks table whose action is
  ``FILTER bulk:<next hop>``. ``regexp`` (POSIX) rather than ``pcre``: it is built into every
  Postfix, Debian's included, while ``pcre`` is a separate package.
* ``mailfleet queue``: :func:`classify_sender` puts queued messages into the same classes.

Next hop: on a host that is not the domain's bulk relay (``domains.*.relay``), bulk goes to that
relay; on the relay itself (or when a domain has none) the next hop is empty, which keeps
Postfix's normal choice (relayhost or the recipient's MX).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from mailfleet.inventory.model import Domain, Fleet, Host

BULK_TRANSPORT = "bulk"
# The port the bulk relay accepts mail from the fleet's own hosts on (trusted networks).
RELAY_SMTP_PORT = 25

_PLAIN = re.compile(r"[A-Za-z0-9_@=,;:% -]")


@dataclass(frozen=True)
class SenderRule:
    """One sender pattern: a full address or ``@domain``, and where its bulk mail goes."""

    match: str  # "newsletter@example.com" or "@news.example.com"
    nexthop: str  # "" or "[203.0.113.21]:25"
    domain: str  # the inventory domain the rule comes from

    @property
    def regexp(self) -> str:
        """POSIX ERE for Postfix's regexp table; an address extension (``+tag``, VERP) still matches."""
        if self.match.startswith("@"):
            return f"^[^@]*{escape_ere(self.match)}$"
        local, _, domain = self.match.rpartition("@")
        return f"^{escape_ere(local)}(\\+[^@]*)?@{escape_ere(domain)}$"

    @property
    def action(self) -> str:
        return f"{BULK_TRANSPORT}:{self.nexthop}"


@dataclass(frozen=True)
class HeaderRule:
    """``Name`` (the header is present) or ``Name: value`` (its value starts with that word)."""

    name: str
    value: str
    domains: tuple[str, ...]

    @property
    def regexp(self) -> str:
        head = f"^{escape_ere(self.name)}:"
        if not self.value:
            return head
        return f"{head}[[:space:]]*{escape_ere(self.value)}([[:space:];,]|$)"


@dataclass(frozen=True)
class HostBulkRules:
    """What one host needs: sender rules, header rules with their one FILTER next hop, problems."""

    host: str
    senders: tuple[SenderRule, ...]
    headers: tuple[HeaderRule, ...]
    header_nexthop: str
    problems: tuple[str, ...] = ()

    @property
    def header_action(self) -> str:
        return f"FILTER {BULK_TRANSPORT}:{self.header_nexthop}"


def escape_ere(text: str) -> str:
    """Quote text for a POSIX extended regular expression inside ``/.../`` of a regexp table.

    Special characters become one-character brackets (``[.]``), which also keeps the table's
    ``/`` delimiter out of the pattern. ``^`` and ``\\`` have no bracket form that is safe in
    every libc, so they are escaped with a backslash."""
    out = []
    for char in text:
        if _PLAIN.fullmatch(char):
            out.append(char)
        elif char in "^\\":
            out.append("\\" + char)
        elif char == "]":
            out.append("[]]")
        else:
            out.append(f"[{char}]")
    return "".join(out)


def relay_nexthop(fleet: Fleet, domain: Domain, host_name: str) -> str:
    """Where bulk of ``domain`` leaves ``host_name``: its bulk relay, unless this host is it."""
    if not domain.relay or domain.relay == host_name or domain.relay not in fleet.hosts:
        return ""
    relay: Host = fleet.hosts[domain.relay]
    return f"[{relay.address}]:{RELAY_SMTP_PORT}"


def split_header_rule(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name.strip(), value.strip()


def plan_host_rules(fleet: Fleet, host_name: str) -> HostBulkRules:
    """The bulk rules of every domain this host sends for (its inbound and relay domains)."""
    problems: list[str] = []
    senders: dict[str, SenderRule] = {}
    headers: dict[str, HeaderRule] = {}
    header_hops: dict[str, list[str]] = {}
    for domain in fleet.domains_signed_by(host_name):
        hop = relay_nexthop(fleet, domain, host_name)
        matches = [s.lower() for s in domain.bulk.senders] + [f"@{d.lower()}" for d in domain.bulk.sender_domains]
        for match in matches:
            rule = SenderRule(match=match, nexthop=hop, domain=domain.ascii)
            known = senders.get(match)
            if known is None:
                senders[match] = rule
            elif known.nexthop != hop:
                problems.append(
                    f"bulk sender {match} is listed under {known.domain} (relay {known.nexthop or 'direct'}) "
                    f"and {domain.ascii} (relay {hop or 'direct'}); keep it under the one domain it sends from")
        for text in domain.bulk.headers:
            name, value = split_header_rule(text)
            key = f"{name.lower()}:{value.lower()}"
            known_header = headers.get(key)
            headers[key] = HeaderRule(name=name, value=value,
                                      domains=(known_header.domains if known_header else ()) + (domain.ascii,))
            header_hops.setdefault(hop, []).append(domain.ascii)
    header_nexthop = ""
    if len(header_hops) > 1:
        described = "; ".join(f"{', '.join(sorted(set(names)))} via {hop or 'direct delivery'}"
                              for hop, names in sorted(header_hops.items()))
        problems.append(
            f"host {host_name}: header rules apply to all mail submitted on the host, but its domains with "
            f"header rules send bulk through different relays ({described}); give these domains the same "
            "bulk relay, or classify them by sender (bulk.senders / bulk.sender_domains) instead of headers")
    elif header_hops:
        header_nexthop = next(iter(header_hops))
    return HostBulkRules(
        host=host_name,
        senders=tuple(sorted(senders.values(), key=lambda r: (r.match.startswith("@"), r.match))),
        headers=tuple(headers[k] for k in sorted(headers)),
        header_nexthop=header_nexthop,
        problems=tuple(problems),
    )


def fleet_sender_rules(fleet: Fleet) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every bulk sender address and sender domain in the fleet, lower case."""
    addresses = {s.lower() for d in fleet.domains.values() for s in d.bulk.senders}
    domains = {s.lower() for d in fleet.domains.values() for s in d.bulk.sender_domains}
    return tuple(sorted(addresses)), tuple(sorted(domains))


def classify_sender(sender: str, addresses: Collection[str], domains: Collection[str]) -> str:
    """``"bulk"`` or ``"transactional"`` for an envelope sender, by the same rules Postfix applies
    (address extension ignored, case-insensitive; the null sender is never bulk)."""
    sender = sender.strip().lower()
    if "@" not in sender:
        return "transactional"
    local, _, domain = sender.rpartition("@")
    base_local = local.split("+", 1)[0]
    if f"{base_local}@{domain}" in addresses or sender in addresses or domain in domains:
        return "bulk"
    return "transactional"
