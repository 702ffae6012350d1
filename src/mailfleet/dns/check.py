"""Ask DNS what a domain publishes (dnspython), then judge it with ``rules_check``.

The resolver is injected: ``--nameserver HOST[:PORT]`` asks one server directly (the
authoritative one, to see a change before caches expire); without it the system's resolver
is used. Names are queried absolute (trailing dot) so no search domain is appended.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import dns.exception
import dns.name
import dns.resolver

from mailfleet.dns.model import RecordSet
from mailfleet.dns.rules_check import Published, Verdict, plan_check
from mailfleet.dns.rules_spf import SpfSyntaxError, count_direct_lookups, is_spf, parse_spf, referenced_domains
from mailfleet.errors import MailfleetError

TIMEOUT = 5.0


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address → (IP, port)."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise MailfleetError(f"--nameserver {text!r}: cannot resolve {host!r} ({exc.strerror}); "
                             "give the server's IP address") from None
    return str(infos[0][4][0]), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise MailfleetError(f"--nameserver {whole!r}: the port must be a number from 1 to 65535")
    return int(text)


def make_resolver(nameserver: str | None = None, timeout: float = TIMEOUT) -> dns.resolver.Resolver:
    if nameserver:
        ip, port = parse_nameserver(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [ip]
        resolver.port = port
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise MailfleetError("no system resolver is configured (/etc/resolv.conf); pass --nameserver HOST[:PORT]") \
                from None
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


def _presentation(rdata: object, rtype: str) -> str:
    if rtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    return rdata.to_text()  # type: ignore[attr-defined]


def fetch_rrset(resolver: dns.resolver.Resolver, name: str, rtype: str) -> Published:
    """One query; every failure becomes a ``Published`` with an error a person can act on."""
    try:
        answer = resolver.resolve(dns.name.from_text(name), rtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return Published(nxdomain=True)
    except dns.resolver.NoNameservers:
        return Published(error="the name server refused or failed to answer (SERVFAIL/REFUSED): "
                               "it may not serve this zone")
    except dns.exception.Timeout:
        return Published(error=f"no answer within {resolver.lifetime:.0f} s")
    except dns.exception.DNSException as exc:
        return Published(error=f"query failed: {exc}")
    if answer.rrset is None:
        return Published()
    return Published(tuple(_presentation(r, rtype) for r in answer.rrset))


def fetch_spf_lookups(resolver: dns.resolver.Resolver, domain: str, depth: int = 0,
                      seen: frozenset[str] = frozenset()) -> int:
    """Lookups the SPF record of ``domain`` costs, counting its includes recursively (capped)."""
    if depth > 10 or domain in seen:
        return 0
    published = fetch_rrset(resolver, domain, "TXT")
    spfs = [v for v in published.values if is_spf(v)]
    if len(spfs) != 1:
        return 0
    try:
        terms = parse_spf(spfs[0])
    except SpfSyntaxError:
        return 0
    return count_direct_lookups(terms) + sum(
        fetch_spf_lookups(resolver, d, depth + 1, seen | {domain}) for d in referenced_domains(terms))


def gather_published(resolver: dns.resolver.Resolver, record_set: RecordSet) -> dict[tuple[str, str], Published]:
    keys: dict[tuple[str, str], None] = {}
    for record in record_set.records:
        if not record.pending:
            keys[(record.name, record.rtype)] = None
    return {key: fetch_rrset(resolver, key[0] + ".", key[1]) for key in keys}


def gather_include_lookups(resolver: dns.resolver.Resolver,
                           published: dict[tuple[str, str], Published], names: Iterable[str]) -> dict[str, int]:
    """For each SPF include/redirect target in the published apex records, its lookup cost."""
    out: dict[str, int] = {}
    for name in names:
        for value in published.get((name, "TXT"), Published()).values:
            if not is_spf(value):
                continue
            try:
                terms = parse_spf(value)
            except SpfSyntaxError:
                continue
            for target in referenced_domains(terms):
                if target not in out:
                    out[target] = fetch_spf_lookups(resolver, target, 1, frozenset({name}))
    return out


def check_domain(record_set: RecordSet, resolver: dns.resolver.Resolver) -> list[Verdict]:
    published = gather_published(resolver, record_set)
    spf_names = [r.name for r in record_set.records if r.kind == "spf"]
    return plan_check(record_set, published, gather_include_lookups(resolver, published, spf_names))
