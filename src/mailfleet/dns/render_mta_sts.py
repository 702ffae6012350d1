"""The MTA-STS policy (RFC 8461) of a domain and its ``id``. Pure.

The policy served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` names the domain's
MX hosts; the ``_mta-sts`` TXT record's ``id`` must change whenever the policy changes and
only then (senders refetch the policy when it does). Deriving the id from the policy text makes
that automatic (Mail-in-a-Box does the same).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailfleet.inventory.model import Domain, Fleet

MAX_AGE = {"enforce": 604800, "testing": 86400, "none": 86400}


@dataclass(frozen=True)
class MtaStsPolicy:
    mode: str
    mx: tuple[str, ...]
    max_age: int

    @property
    def text(self) -> str:
        lines = ["version: STSv1", f"mode: {self.mode}", *(f"mx: {m}" for m in self.mx), f"max_age: {self.max_age}"]
        return "\r\n".join(lines) + "\r\n"

    @property
    def policy_id(self) -> str:
        """20 hex digits of the policy's SHA-256 (RFC 8461 allows 1-32 alphanumerics)."""
        return hashlib.sha256(self.text.encode("ascii")).hexdigest()[:20]


def render_mta_sts_policy(fleet: Fleet, domain: Domain) -> MtaStsPolicy | None:
    if not domain.mta_sts:
        return None
    mx = tuple(fleet.hosts[h].hostname for h in domain.inbound_hosts)
    return MtaStsPolicy(domain.mta_sts, mx, MAX_AGE[domain.mta_sts])
