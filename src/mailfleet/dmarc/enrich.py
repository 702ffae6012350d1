"""Optional enrichment of source IPs: reverse DNS and a sender name, cached with a TTL.

Never on the parsing path (parsedmarc's reverse lookups inside the parser made one report take a
day). Run after ingest, with bounded concurrency and a timeout per lookup; failures (NXDOMAIN,
timeouts) are cached too, so a dead resolver costs one timeout per IP per TTL, not per report.
The resolver is injected: tests pass a fake one, nothing reaches the network by accident.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from mailfleet.dmarc.ingest import Clock

# PTR suffix -> sender. A hint for a human, not proof that a sender is authorised.
KNOWN_SENDERS: tuple[tuple[str, str], ...] = (
    ("google.com", "Google"), ("googlemail.com", "Google"), ("outlook.com", "Microsoft"),
    ("protection.outlook.com", "Microsoft 365"), ("hotmail.com", "Microsoft"), ("amazonses.com", "Amazon SES"),
    ("sendgrid.net", "Twilio SendGrid"), ("mcsv.net", "Mailchimp"), ("mcdlv.net", "Mailchimp"),
    ("rsgsv.net", "Mailchimp"), ("mailgun.net", "Mailgun"), ("mailgun.org", "Mailgun"),
    ("sparkpostmail.com", "SparkPost"), ("mailjet.com", "Mailjet"), ("sendinblue.com", "Brevo"),
    ("brevo.com", "Brevo"), ("postmarkapp.com", "Postmark"), ("mtasv.net", "Postmark"), ("zoho.com", "Zoho"),
    ("yahoo.com", "Yahoo"), ("salesforce.com", "Salesforce"), ("exacttarget.com", "Salesforce"),
    ("zendesk.com", "Zendesk"), ("hubspotemail.net", "HubSpot"), ("klaviyomail.com", "Klaviyo"),
)


class PtrResolver(Protocol):
    def __call__(self, ip: str) -> str | None:
        """Return the PTR name, None when there is none; raise on a lookup failure."""


@dataclass
class EnrichResult:
    looked_up: int = 0
    named: int = 0
    failed: int = 0
    cached: int = 0


def sender_name(ptr: str | None) -> str | None:
    if not ptr:
        return None
    name = ptr.lower().rstrip(".")
    for suffix, sender in KNOWN_SENDERS:
        if name == suffix or name.endswith("." + suffix):
            return sender
    return None


class DnsPtrResolver:
    """Reverse lookups with dnspython, one query at a time per call, bounded by ``timeout``."""

    def __init__(self, nameserver: str | None = None, timeout: float = 2.0) -> None:
        import dns.resolver

        self._resolver = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver:
            host, _, port = nameserver.partition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
            self._resolver.nameservers = [host]
            if port:
                self._resolver.port = int(port)
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    def __call__(self, ip: str) -> str | None:
        import dns.exception
        import dns.resolver
        import dns.reversename

        try:
            answer = self._resolver.resolve(dns.reversename.from_address(ip), "PTR")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise LookupError(str(exc) or exc.__class__.__name__) from None
        return str(answer[0].target).rstrip(".")


def enrich_sources(conn: sqlite3.Connection, resolver: PtrResolver | Callable[[str], str | None], *,
                   ttl_seconds: int = 86_400, concurrency: int = 16, limit: int = 5000,
                   clock: Clock = time.time) -> EnrichResult:
    now = int(clock())
    todo = [row[0] for row in conn.execute(
        "SELECT DISTINCT r.source_ip FROM record r LEFT JOIN ip_info i ON i.ip = r.source_ip "
        "WHERE i.ip IS NULL OR i.expires_at <= ? LIMIT ?", (now, limit))]
    result = EnrichResult(cached=conn.execute("SELECT COUNT(*) FROM ip_info WHERE expires_at > ?", (now,)).fetchone()[0])

    def lookup(ip: str) -> tuple[str, str | None, str | None]:
        try:
            return ip, resolver(ip), None
        except Exception as exc:  # noqa: BLE001 - any resolver failure is cached as an error
            return ip, None, str(exc) or exc.__class__.__name__

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, 64))) as pool:
        answers = list(pool.map(lookup, todo))
    conn.execute("BEGIN")
    for ip, ptr, error in answers:
        name = sender_name(ptr)
        result.looked_up += 1
        result.named += 1 if name else 0
        result.failed += 1 if error else 0
        conn.execute("INSERT OR REPLACE INTO ip_info (ip, ptr, sender, error, looked_up_at, expires_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (ip, ptr, name, error, now, now + ttl_seconds))
    conn.execute("COMMIT")
    return result
