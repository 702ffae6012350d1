"""The safety rules of a rollout, checked on any set of "host down" intervals.

The same check runs on a plan (scheduled slots) and on a journal (what really happened), so a
bug in the scheduler or an operator running two rollouts by hand is caught the same way:

* never two inbound hosts of one domain down at once (the domain's mail would bounce back to
  senders' queues with every MX gone, or worse, to a backup MX that is itself restarting);
* never every relay down at once when the fleet has more than one (outbound mail stops);
* monitoring hosts last (they watch the others' upgrades).

Pure: intervals in, violations out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailfleet.inventory.model import Fleet


@dataclass(frozen=True)
class DownInterval:
    """``host`` was (or will be) down in ``[start, end)``; ``end`` None means still down."""

    host: str
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class Violation:
    rule: str
    hosts: tuple[str, ...]
    at: datetime | None
    message: str

    def __str__(self) -> str:
        return self.message


def _overlap(a: DownInterval, b: DownInterval) -> datetime | None:
    """The first moment both are down, or None."""
    start = max(a.start, b.start)
    ends = [e for e in (a.end, b.end) if e is not None]
    end = min(ends) if ends else None
    if end is None or start < end:
        return start
    return None


def check_down_intervals(fleet: Fleet, intervals: Sequence[DownInterval]) -> list[Violation]:
    """Every moment at which the down hosts break a rule, one violation per rule and host set."""
    violations: list[Violation] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for i, a in enumerate(intervals):
        for b in intervals[i + 1:]:
            if a.host == b.host:
                continue
            moment = _overlap(a, b)
            if moment is None:
                continue
            pair = tuple(sorted((a.host, b.host)))
            for domain in fleet.domains.values():
                inbound = set(domain.inbound_hosts)
                if a.host in inbound and b.host in inbound and ("inbound", pair) not in seen:
                    seen.add(("inbound", pair))
                    violations.append(Violation(
                        "inbound", pair, moment,
                        f"{pair[0]} and {pair[1]} would both be down at {moment.isoformat()}, and both take mail for "
                        f"{domain.name}: never two inbound hosts of one domain at once"))
    relays = sorted(h.name for h in fleet.hosts_with_role("outbound-relay"))
    if len(relays) > 1:
        violations.extend(_all_relays_down(relays, intervals))
    return violations


def _all_relays_down(relays: list[str], intervals: Sequence[DownInterval]) -> list[Violation]:
    relay_intervals = [iv for iv in intervals if iv.host in relays]
    # The set of relays down changes only at interval starts; test each start.
    for probe in sorted({iv.start for iv in relay_intervals}):
        down = {iv.host for iv in relay_intervals
                if iv.start <= probe and (iv.end is None or probe < iv.end)}
        if set(relays) <= down:
            return [Violation("relays", tuple(relays), probe,
                              f"every relay ({', '.join(relays)}) would be down at {probe.isoformat()}: "
                              "outbound mail would stop; upgrade relays one at a time")]
    return []


def check_order(fleet: Fleet, order: Sequence[str]) -> list[Violation]:
    """Rules on the order itself: known hosts, each once, monitoring hosts after all others."""
    violations: list[Violation] = []
    seen: set[str] = set()
    for name in order:
        if name not in fleet.hosts:
            violations.append(Violation("unknown", (name,), None,
                                        f"{name!r} is not a host of this fleet; hosts are {', '.join(fleet.hosts)}"))
        elif name in seen:
            violations.append(Violation("twice", (name,), None, f"{name} appears twice in the order"))
        seen.add(name)
    monitoring = [n for n in order if n in fleet.hosts and fleet.hosts[n].has_role("monitoring")]
    others = [n for n in order if n in fleet.hosts and not fleet.hosts[n].has_role("monitoring")]
    if monitoring and others:
        last_other = max(order.index(n) for n in others)
        early = [n for n in monitoring if order.index(n) < last_other]
        if early:
            violations.append(Violation(
                "monitoring-last", tuple(early), None,
                f"monitoring host{'s' if len(early) > 1 else ''} {', '.join(early)} must be upgraded last, "
                f"after {others[-1]}: it watches the other hosts' upgrades"))
    return violations
