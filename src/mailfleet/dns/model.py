"""DNS records as data. Pure.

Names are absolute, in IDNA ASCII form, lower case, without the trailing dot; values are in
presentation form (``10 mx1.example.com.`` for MX), except TXT, whose value is the whole text
unquoted and unsplit (renderers quote and split it into 255-byte strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How much a record matters; the table groups by it and dns.check only counts drift of
# records that are not advice.
LEVELS = ("required", "recommended", "optional", "advice")


@dataclass(frozen=True)
class DnsRecord:
    name: str
    rtype: str
    value: str
    ttl: int
    why: str
    level: str = "required"
    # A short tag saying what the record is for (mx, spf, dkim, dmarc, ...); dns.check
    # compares records of a kind by the kind's rules.
    kind: str = ""
    # A record mailfleet cannot complete yet (no DKIM key generated): shown, never checked.
    pending: bool = False

    def relative_to(self, origin: str) -> str | None:
        """The owner name relative to ``origin`` (``@`` for the apex), or None when outside it."""
        if self.name == origin:
            return "@"
        if self.name.endswith("." + origin):
            return self.name[: -len(origin) - 1]
        return None


@dataclass(frozen=True)
class RecordSet:
    """A domain's complete record set and what the user should know about it."""

    domain: str  # IDNA ASCII
    display_name: str
    records: tuple[DnsRecord, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def in_zone(self) -> list[DnsRecord]:
        return [r for r in self.records if r.relative_to(self.domain) is not None]

    def out_of_zone(self) -> list[DnsRecord]:
        return [r for r in self.records if r.relative_to(self.domain) is None]
