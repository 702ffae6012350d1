"""Checks that keep the bulk split from backfiring: each trap measured in priority-measured.md.

Pure. The traps, and the rule that avoids each:

1. A bulk transport as wide as the default one takes every connection the receiving MX allows;
   transactional mail is answered 421 and waits >= ``minimal_backoff_time`` in the deferred
   queue (worse than no split at all). Rule: bulk concurrency plus the transactional headroom
   must stay within the receiver's per-client connection cap.
2. An explicit transport in ``transport_maps`` (``smtp:[mx]``, Mailcow's transport maps) wins over
   ``sender_dependent_default_transport_maps``: bulk silently leaves through the default
   transport. Rule: every ``transport_maps`` result that names a delivery transport is reported;
   entries that only set the next hop (``:[mx]``) are fine.
3. A campaign larger than ``qmgr_message_active_limit`` fills the active queue; new mail, resets
   included, waits in ``incoming`` under inflow control (seconds, not minutes). Rule: report the
   campaign size against the limit, with what the operator can do.
4. Postfix retries on a schedule set by the queue manager, not per transport, so the inventory's
   bulk backoff times can only be applied on a host whose whole queue is bulk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailfleet.inventory.model import BulkTransport, Fleet

# Big receivers (Gmail, Microsoft) cap a client at about 20 concurrent connections; the sink
# in the measured reproduction did the same.
DEFAULT_RECEIVER_CONNECTION_CAP = 20
# Connections left for transactional mail to the same receiver while bulk uses its share.
TRANSACTIONAL_HEADROOM = 5
# Postfix's default qmgr_message_active_limit.
DEFAULT_ACTIVE_LIMIT = 20000
# Transports that deliver locally or refuse: an entry choosing them does not steal bulk mail.
_LOCAL_TRANSPORTS = {"local", "virtual", "lmtp", "error", "discard", "retry", "dovecot", "maildrop",
                     "watchdog_discard"}
_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (refuse), "warning" (works, but a trap is armed) or "info"
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.level}: {self.message}" + (f"\n    hint: {self.hint}" if self.hint else "")


def parse_duration(text: str) -> int:
    """Seconds of a Postfix time value (``300s``, ``5m``, ``1h``; a bare number is seconds)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Postfix time such as 0s, 300s or 1h")
    return int(match.group(1)) * _UNIT[match.group(2)]


def initial_concurrency(settings: BulkTransport) -> int:
    """Postfix starts at 5 connections per destination; never above the bulk limit."""
    return min(5, settings.destination_concurrency_limit)


def check_concurrency(settings: BulkTransport, receiver_cap: int = DEFAULT_RECEIVER_CONNECTION_CAP) -> list[Finding]:
    """Trap 1: the bulk window must leave connections for transactional mail."""
    limit = settings.destination_concurrency_limit
    findings = []
    if limit < 1:
        findings.append(Finding("error", f"bulk destination_concurrency_limit is {limit}; Postfix needs at least 1",
                                "set fleet.bulk_transport.destination_concurrency_limit to 12"))
    elif limit + TRANSACTIONAL_HEADROOM > receiver_cap:
        findings.append(Finding(
            "error",
            f"bulk destination_concurrency_limit {limit} leaves {max(receiver_cap - limit, 0)} of the receiver's "
            f"{receiver_cap} connections for transactional mail (need {TRANSACTIONAL_HEADROOM})",
            f"lower it to {receiver_cap - TRANSACTIONAL_HEADROOM} or less: when bulk holds every connection the "
            "remote allows, resets are answered 421 and wait at least minimal_backoff_time (300 s) in the deferred queue"))
    try:
        delay = parse_duration(settings.destination_rate_delay)
    except ValueError as exc:
        findings.append(Finding("error", f"bulk destination_rate_delay: {exc}"))
        delay = 0
    if delay > 0:
        findings.append(Finding(
            "info", f"bulk destination_rate_delay {settings.destination_rate_delay} sends one bulk message per "
            "destination at a time, whatever the concurrency limit",
            "mailfleet also sets bulk_destination_concurrency_failed_cohort_limit = 10, as postconf(5) requires"))
    return findings


def transport_of(result: str) -> str:
    """The transport field of a transport(5) result: ``smtp:[mx]`` -> ``smtp``, ``:[mx]`` -> ``""``."""
    result = result.strip()
    if ":" not in result:
        # "relay" alone is a transport name; "[mx]" alone is not valid transport(5) syntax
        return "" if result.startswith("[") else result
    return result.split(":", 1)[0]


def check_transport_overrides(entries: Iterable[tuple[str, str]], source: str = "transport_maps") -> list[Finding]:
    """Trap 2: each (destination, result) of a transport table that names a delivery transport.

    ``transport_maps`` is consulted before ``sender_dependent_default_transport_maps``; an entry
    ``example.net smtp:[mx]`` sends bulk mail to example.net through ``smtp`` with the default
    concurrency, silently. ``example.net :[mx]`` (empty transport) only sets the next hop and
    keeps the sender-based choice."""
    findings = []
    for destination, result in entries:
        transport = transport_of(result)
        if not transport or transport in _LOCAL_TRANSPORTS:
            continue
        findings.append(Finding(
            "warning",
            f"{source}: mail to {destination} uses transport {transport!r} ({result}); bulk mail to it "
            "bypasses the bulk transport and its concurrency limit",
            f"write the entry as '{destination} :{result.split(':', 1)[1] if ':' in result else ''}' (empty "
            "transport keeps the sender-based choice) or route it with a sender-dependent transport instead"))
    return findings


def check_active_queue(campaign_size: int, active_limit: int = DEFAULT_ACTIVE_LIMIT) -> list[Finding]:
    """Trap 3: a campaign bigger than the active queue limit delays everything behind inflow control."""
    if campaign_size <= active_limit:
        return []
    return [Finding(
        "warning",
        f"a campaign of {campaign_size} messages is larger than qmgr_message_active_limit ({active_limit}); "
        "once the active queue is full, new mail (resets included) waits in the incoming queue and "
        "in_flow_delay slows every submitter: seconds of delay instead of the bulk split's milliseconds",
        "inject the campaign in batches that keep the backlog below the limit (watch `mailfleet queue`), "
        "send it through a bulk relay host (domains.*.relay with a separate transactional_relay), "
        "or raise qmgr_message_active_limit (memory: about 1-2 KB per message)")]


def dedicated_bulk_relays(fleet: Fleet) -> set[str]:
    """Relays whose whole queue is bulk: relay of some domains, transactional path of none."""
    relays = {d.relay for d in fleet.domains.values() if d.relay}
    carrying_transactional = {d.transactional_relay for d in fleet.domains.values() if d.transactional_relay}
    carrying_transactional |= {d.relay for d in fleet.domains.values() if d.relay and not d.transactional_relay}
    return {name for name in relays - carrying_transactional
            if name in fleet.hosts and not fleet.hosts[name].has_role("inbound")}


def applies_backoff(fleet: Fleet, host_name: str) -> bool:
    return host_name in dedicated_bulk_relays(fleet)


def source_address_host(fleet: Fleet) -> str | None:
    """The host that owns the bulk source address (its address or one of its public IPs)."""
    address = fleet.settings.bulk_transport.source_address
    if not address:
        return None
    for host in fleet.hosts.values():
        if address == host.address or address in host.public_ips:
            return host.name
    return None


def check_fleet(fleet: Fleet) -> list[Finding]:
    """Every finding about the fleet's bulk settings and routing, at once."""
    settings = fleet.settings.bulk_transport
    findings = check_concurrency(settings)
    defaults = BulkTransport()
    backoff_set = (settings.minimal_backoff_time, settings.maximal_backoff_time) != (
        defaults.minimal_backoff_time, defaults.maximal_backoff_time)
    if backoff_set:
        dedicated = sorted(dedicated_bulk_relays(fleet))
        findings.append(Finding(
            "info",
            "bulk minimal/maximal_backoff_time are queue-manager settings, not per transport; mailfleet applies "
            f"them only on dedicated bulk relays ({', '.join(dedicated) or 'none in this fleet'})",
            "give bulk domains a relay that carries no transactional mail (domains.*.transactional_relay on "
            "another host) to retry bulk on its own schedule"))
    if settings.source_address and source_address_host(fleet) is None:
        findings.append(Finding(
            "error",
            f"bulk source_address {settings.source_address} is not the address or a public IP of any host",
            "add it to the public_ips of the host that owns it; bulk leaves from it only on that host"))
    for domain in fleet.domains.values():
        if domain.bulk.empty:
            continue
        if domain.relay and domain.transactional_relay == domain.relay:
            findings.append(Finding(
                "warning",
                f"{domain.name}: bulk and transactional mail both leave through {domain.relay}; the bulk transport "
                "keeps them apart there, but a campaign larger than the active queue still delays resets",
                "give the domain a transactional_relay different from its relay"))
    return findings
