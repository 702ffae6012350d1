"""The complete DNS record set of one mail domain, each record with its reason. Pure.

Input is the fleet (hosts, their names and addresses), the domain, the public DKIM key(s) we
hold and the TLSA digests we know; output is a ``RecordSet``. Nothing here queries DNS or
reads a file, so ``dns.records`` works with every host down.

What goes in (shared/reference/mailcow.md §5, orchestration.md §4):
MX to the inbound hosts; SPF with the sending IPs of the domain's relays and inbound hosts,
ending in ``-all``; DKIM from our own key; DMARC from the inventory's policy with ``rua`` to
the report mailbox, and the ``_report._dmarc`` authorisation (RFC 7489 §7.1) when reports go to
another domain; TLS-RPT; MTA-STS TXT and CNAME; autodiscover/autoconfig CNAMEs and the SRV set
(RFC 6186, RFC 8314) to the first inbound host; A/AAAA for fleet hosts named inside the
domain; TLSA ``3 1 1`` for MX hosts whose key is known; and, as advice, the PTR each sending
IP must have.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailfleet.dkim.render_key import render_dkim_txt
from mailfleet.dns.model import DnsRecord, RecordSet
from mailfleet.dns.render_mta_sts import render_mta_sts_policy
from mailfleet.dns.rules_spf import LOOKUP_LIMIT, count_direct_lookups, parse_spf, render_spf
from mailfleet.inventory.model import Domain, Fleet, Host

DEFAULT_TTL = 3600
# SRV records Mailcow documents (prerequisite-dns): service, port, what it announces.
SRV_SERVICES = (
    ("_autodiscover._tcp", 443, "Outlook/ActiveSync autodiscover", "recommended"),
    ("_submissions._tcp", 465, "mail submission over implicit TLS (RFC 8314)", "optional"),
    ("_submission._tcp", 587, "mail submission with STARTTLS (RFC 6186)", "optional"),
    ("_smtps._tcp", 465, "mail submission over TLS for older clients", "optional"),
    ("_imaps._tcp", 993, "IMAP over TLS (RFC 6186)", "optional"),
    ("_imap._tcp", 143, "IMAP with STARTTLS (RFC 6186)", "optional"),
    ("_pop3s._tcp", 995, "POP3 over TLS (RFC 6186)", "optional"),
    ("_pop3._tcp", 110, "POP3 with STARTTLS (RFC 6186)", "optional"),
    ("_sieve._tcp", 4190, "ManageSieve filter editing", "optional"),
    ("_caldavs._tcp", 443, "calendars (CalDAV over TLS, SOGo)", "optional"),
    ("_carddavs._tcp", 443, "contacts (CardDAV over TLS, SOGo)", "optional"),
)
DAV_PATH = "path=/SOGo/dav/"


@dataclass(frozen=True)
class DkimPublication:
    """A DKIM key to publish. ``state``: ``active`` (signing now), ``next`` (published ahead of a
    rotation, not yet signing) or ``previous`` (kept while mail signed with it is in flight)."""

    selector: str
    public_b64: str | None
    state: str = "active"


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def _is_under(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def report_domain_needs_authorisation(domain: str, report_domain: str) -> bool:
    """RFC 7489 §7.1: a report address outside the domain's organisation needs the receiving
    domain's consent. Without a public suffix list we treat a domain and its sub- or parent
    domains as one organisation; anything else gets the record (publishing it is harmless)."""
    return not (_is_under(domain, report_domain) or _is_under(report_domain, domain))


def dmarc_report_address(fleet: Fleet, domain: Domain) -> str | None:
    return domain.dmarc.rua or fleet.settings.dmarc_reports


def sending_hosts(fleet: Fleet, domain: Domain) -> list[Host]:
    """Hosts whose addresses send this domain's mail: its relays first, then its inbound hosts
    (they send bounces, forwards and auto-replies)."""
    names: list[str] = []
    for name in (domain.relay, domain.transactional_relay, *domain.inbound_hosts):
        if name and name not in names:
            names.append(name)
    return [fleet.hosts[n] for n in names]


def render_dmarc(fleet: Fleet, domain: Domain) -> str:
    policy = domain.dmarc
    tags = ["v=DMARC1", f"p={policy.policy}"]
    if policy.subdomain_policy:
        tags.append(f"sp={policy.subdomain_policy}")
    if policy.pct != 100:
        tags.append(f"pct={policy.pct}")
    if policy.adkim != "r":
        tags.append(f"adkim={policy.adkim}")
    if policy.aspf != "r":
        tags.append(f"aspf={policy.aspf}")
    rua = dmarc_report_address(fleet, domain)
    if rua:
        tags.append(f"rua=mailto:{rua}")
    return "; ".join(tags)


def plan_records(fleet: Fleet, domain: Domain, dkim: Sequence[DkimPublication] = (),
                 tlsa: Mapping[str, str] | None = None, ttl: int = DEFAULT_TTL) -> RecordSet:
    """Every record ``domain`` needs. ``tlsa`` maps fleet host names to a ``3 1 1 <hex>`` value."""
    d = domain.ascii
    tlsa = tlsa or {}
    records: list[DnsRecord] = []
    notes: list[str] = []
    inbound = [fleet.hosts[h] for h in domain.inbound_hosts]
    first = inbound[0] if inbound else None

    # MX ------------------------------------------------------------------------------------
    for name, pref in sorted(domain.inbound, key=lambda item: (item[1], item[0])):
        host = fleet.hosts[name]
        others = "; senders try lower preferences first" if len(domain.inbound) > 1 else ""
        records.append(DnsRecord(d, "MX", f"{pref} {_fqdn(host.hostname)}", ttl,
                                 f"mail for {domain.name} is delivered to {name} (inbound, preference {pref}){others}",
                                 "required", "mx"))

    # SPF -----------------------------------------------------------------------------------
    senders = sending_hosts(fleet, domain)
    ips = [ip for host in senders for ip in host.public_ips]
    missing_ips = [h.name for h in senders if not h.public_ips]
    if missing_ips:
        notes.append(f"hosts {', '.join(missing_ips)} have no public_ips in the inventory, so SPF cannot list them; "
                     "mail they send fails SPF until you add them")
    spf = render_spf(ips)
    lookups = count_direct_lookups(parse_spf(spf))
    roles = ", ".join(f"{h.name} ({'relay' if h.has_role('outbound-relay') else 'inbound'})" for h in senders)
    records.append(DnsRecord(d, "TXT", spf, ttl,
                             f"only the addresses of {roles or 'no host'} may send as {domain.name}; "
                             f"-all fails the rest; {lookups}/{LOOKUP_LIMIT} DNS lookups",
                             "required", "spf"))
    if lookups > LOOKUP_LIMIT:
        notes.append(f"SPF needs {lookups} DNS lookups, more than the {LOOKUP_LIMIT} receivers evaluate")
    if len(spf) > 450:
        notes.append(f"the SPF record is {len(spf)} bytes; answers above about 450 bytes may need TCP "
                     "(RFC 7208 §3.4); fewer addresses per host keep it small")

    # DKIM ----------------------------------------------------------------------------------
    if not dkim:
        dkim = [DkimPublication(domain.dkim.selector, None)]
    for pub in dkim:
        name = f"{pub.selector}._domainkey.{d}"
        signers = ", ".join(domain.signing_hosts)
        if pub.public_b64 is None:
            records.append(DnsRecord(name, "TXT", "v=DKIM1; k=rsa; p=<pending>", ttl,
                                     f"pending: no DKIM key for selector {pub.selector} yet; "
                                     f"`mailfleet add-domain --domain {domain.name}` generates it",
                                     "required", "dkim", pending=True))
            notes.append(f"no DKIM key for {domain.name} selector {pub.selector} exists yet; "
                         "the DKIM record is pending until add-domain generates it")
            continue
        why = {
            "active": f"receivers verify the DKIM signatures {signers} add with this key (ours, selector {pub.selector})",
            "next": f"the next key (selector {pub.selector}), published before signing switches to it so no "
                    "receiver meets a signature it cannot verify",
            "previous": f"the previous key (selector {pub.selector}), kept until mail signed with it has been "
                        "delivered and checked; `dkim.rotate` retires it",
        }[pub.state]
        records.append(DnsRecord(name, "TXT", render_dkim_txt(pub.public_b64), ttl, why, "required", "dkim"))

    # DMARC ---------------------------------------------------------------------------------
    rua = dmarc_report_address(fleet, domain)
    records.append(DnsRecord(f"_dmarc.{d}", "TXT", render_dmarc(fleet, domain), ttl,
                             f"receivers apply p={domain.dmarc.policy} to mail failing SPF and DKIM alignment"
                             + (f" and send aggregate reports to {rua}" if rua else ""),
                             "required", "dmarc"))
    if not rua:
        notes.append(f"no DMARC report address (fleet.dmarc_reports or domains.{domain.name}.dmarc.rua): "
                     "you will not see who sends as this domain")
    if rua:
        report_domain = rua.partition("@")[2]
        if report_domain_needs_authorisation(d, report_domain):
            records.append(DnsRecord(f"{d}._report._dmarc.{report_domain}", "TXT", "v=DMARC1", ttl,
                                     f"{report_domain} agrees to receive {domain.name}'s DMARC reports; without it "
                                     "receivers drop the rua (RFC 7489 §7.1). Publish it in the zone of "
                                     f"{report_domain}", "recommended", "dmarc-auth"))
    # Domains of the fleet that send their reports into this one.
    for other in fleet.domains.values():
        other_rua = dmarc_report_address(fleet, other)
        if other.ascii == d or not other_rua or other_rua.partition("@")[2] != d:
            continue
        if report_domain_needs_authorisation(other.ascii, d):
            records.append(DnsRecord(f"{other.ascii}._report._dmarc.{d}", "TXT", "v=DMARC1", ttl,
                                     f"lets receivers send {other.name}'s DMARC reports to {other_rua} "
                                     "(RFC 7489 §7.1)", "recommended", "dmarc-auth"))

    # TLS-RPT -------------------------------------------------------------------------------
    if domain.tlsrpt:
        if fleet.settings.tlsrpt_reports:
            records.append(DnsRecord(f"_smtp._tls.{d}", "TXT",
                                     f"v=TLSRPTv1; rua=mailto:{fleet.settings.tlsrpt_reports}", ttl,
                                     f"senders report TLS failures delivering to {domain.name} to "
                                     f"{fleet.settings.tlsrpt_reports} (RFC 8460)", "recommended", "tlsrpt"))
        else:
            notes.append("TLS-RPT is on but fleet.tlsrpt_reports is not set; no _smtp._tls record")

    # MTA-STS -------------------------------------------------------------------------------
    policy = render_mta_sts_policy(fleet, domain)
    if policy is not None and first is not None:
        records.append(DnsRecord(f"_mta-sts.{d}", "TXT", f"v=STSv1; id={policy.policy_id}", ttl,
                                 f"announces the MTA-STS policy (mode {policy.mode}); the id follows the policy "
                                 "text, so senders refetch it exactly when it changes", "recommended", "mta-sts"))
        records.append(DnsRecord(f"mta-sts.{d}", "CNAME", _fqdn(first.hostname), ttl,
                                 f"senders fetch the policy from https://mta-sts.{d}/.well-known/mta-sts.txt, "
                                 f"served by {first.name}'s Mailcow", "recommended", "mta-sts"))

    # Client configuration ------------------------------------------------------------------
    if first is not None:
        target = _fqdn(first.hostname)
        records.append(DnsRecord(f"autodiscover.{d}", "CNAME", target, ttl,
                                 f"Outlook and ActiveSync clients find {first.name}'s settings", "recommended",
                                 "client"))
        records.append(DnsRecord(f"autoconfig.{d}", "CNAME", target, ttl,
                                 f"Thunderbird finds {first.name}'s settings", "recommended", "client"))
        for service, port, what, level in SRV_SERVICES:
            records.append(DnsRecord(f"{service}.{d}", "SRV", f"0 1 {port} {target}", ttl,
                                     f"{what} on {first.name}", level, "client"))
            if service in ("_caldavs._tcp", "_carddavs._tcp"):
                records.append(DnsRecord(f"{service}.{d}", "TXT", DAV_PATH, ttl,
                                         f"where {what.split(' (')[0]} live on the server", level, "client"))

    # Hosts named inside this domain --------------------------------------------------------
    for host in fleet.hosts.values():
        if not _is_under(host.hostname, d) or host.hostname == d:
            continue
        for ip in host.public_ips:
            rtype = "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"
            records.append(DnsRecord(host.hostname, rtype, ip, ttl,
                                     f"the address of {host.name} ({', '.join(host.roles)}); MX, CNAME and SRV "
                                     "targets must resolve", "required", "host"))

    # TLSA (DANE) for MX hosts --------------------------------------------------------------
    tlsa_hosts = [h for h in inbound] + [h for h in fleet.hosts.values()
                                         if h.has_role("inbound") and _is_under(h.hostname, d) and h not in inbound]
    for host in tlsa_hosts:
        value = tlsa.get(host.name)
        if value:
            where = "" if _is_under(host.hostname, d) else f"; publish it in the zone of {host.hostname}"
            records.append(DnsRecord(f"_25._tcp.{host.hostname}", "TLSA", value, ttl,
                                     f"DANE: pins {host.name}'s TLS key (3 1 1 survives renewals that keep the key); "
                                     f"only effective with DNSSEC{where}", "recommended", "tlsa"))

    # PTR advice ----------------------------------------------------------------------------
    for host in senders:
        for ip in host.public_ips:
            records.append(DnsRecord(ipaddress.ip_address(ip).reverse_pointer, "PTR", _fqdn(host.hostname), ttl,
                                     f"advice: {ip} sends mail for {domain.name}; receivers expect its reverse name to "
                                     f"be {host.hostname} (and that to resolve back); set it at the provider of {ip}",
                                     "advice", "ptr"))
    return RecordSet(d, domain.name, tuple(_dedupe(records)), tuple(notes))


def _dedupe(records: list[DnsRecord]) -> list[DnsRecord]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for record in records:
        key = (record.name, record.rtype, record.value)
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out
