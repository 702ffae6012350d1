"""``dns.records`` and ``dns.check``: every domain's DNS, printed and verified."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors
from mailfleet.errors import MailfleetError

# Every `mailfleet` start imports this module: the inventory (ruamel.yaml) and the record planner
# (cryptography via mailfleet.dkim) load inside the tasks that use them; these names are annotations.
if TYPE_CHECKING:
    from mailfleet.dns.model import RecordSet
    from mailfleet.dns.rules_check import Verdict
    from mailfleet.inventory import Inventory

FORMATS = ("table", "bind", "json", "octodns")
_INVENTORY_HELP = "inventory file (default: $MAILFLEET_INVENTORY, inventory/lab.yaml while a lab is up, else inventory/example.yaml)"
_TLSA_HOSTS_HELP = "read each MX host's Mailcow certificate over SSH and add its TLSA 3 1 1 record"
_TLSA_HELP = "HOST=FILE: the PEM certificate or key an MX host presents (repeatable); adds its TLSA 3 1 1 record"


def load_tlsa(inv: Inventory, pairs: list[str]) -> dict[str, str]:
    assert inv.fleet is not None
    out = {}
    for pair in pairs or []:
        host, sep, file = pair.partition("=")
        if not sep or not file:
            raise MailfleetError(f"--tlsa {pair!r}: write HOST=FILE, e.g. --tlsa mx1=/path/to/cert.pem")
        if host not in inv.fleet.hosts:
            raise MailfleetError(f"--tlsa {pair!r}: there is no host {host!r}; hosts are {', '.join(inv.fleet.hosts)}")
        try:
            from mailfleet.dns.render_tlsa import render_tlsa_311  # cryptography: load when used

            out[host] = render_tlsa_311(Path(file).read_bytes())
        except OSError as exc:
            raise MailfleetError(f"--tlsa {pair!r}: cannot read {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise MailfleetError(f"--tlsa {pair!r}: {file} is not a PEM certificate or key ({exc})") from None
    return out


def load_record_set(inv: Inventory, domain_name: str, tlsa_pairs: list[str] | None = None,
                    tlsa_from_hosts: bool = False) -> RecordSet:
    """The expected record set of one inventory domain (reads local DKIM keys; the network only
    with ``tlsa_from_hosts``, and a host that cannot be reached only loses its TLSA record)."""
    assert inv.fleet is not None
    domain = inv.fleet.domain(domain_name)
    if domain is None:
        known = ", ".join(inv.fleet.domains) or "none"
        raise MailfleetError(f"{domain_name!r} is not a domain in {inv.path} (domains: {known}); "
                             f"add it with `mailfleet add-domain --domain {domain_name}`")
    tlsa = load_tlsa(inv, tlsa_pairs or [])
    if tlsa_from_hosts:
        from mailfleet.dns.gather_tlsa import gather_tlsa

        wanted = [inv.fleet.hosts[h] for h in domain.inbound_hosts if h not in tlsa]
        found, errors = gather_tlsa(inv, wanted)
        tlsa.update(found)
        for host, error in errors.items():
            print(f"warning: no TLSA for {host}: {error}", file=sys.stderr)
    from mailfleet.dkim.publications import load_publications  # cryptography: load when used
    from mailfleet.dns.records import plan_records

    return plan_records(inv.fleet, domain, load_publications(inv.secrets_dir, domain), tlsa)


@task(iterable=["tlsa"], help={
    "domain": "the mail domain (as written in the inventory, or its xn-- form)",
    "format": f"one of {', '.join(FORMATS)} (default table)",
    "soa": "with --format bind: add SOA and NS naming this name server, so the text is a complete zone",
    "tlsa": _TLSA_HELP,
    "tlsa_from_hosts": _TLSA_HOSTS_HELP,
    "inventory": _INVENTORY_HELP,
})
@reports_errors
def records(c, domain=None, format="table", soa=None, tlsa=None, tlsa_from_hosts=False, inventory=None):
    """Print every DNS record DOMAIN needs, each with why; works with every host down."""
    if format not in FORMATS:
        raise Exit(f"error: --format must be one of {', '.join(FORMATS)}, not {format!r}", code=2)
    if not domain:
        raise Exit("error: this task needs --domain NAME", code=2)
    from mailfleet.dns.render_bind import render_bind
    from mailfleet.dns.render_octodns import render_octodns
    from mailfleet.dns.render_table import render_json, render_table
    from mailfleet.inventory import load_valid_inventory

    inv = load_valid_inventory(default_inventory_path(inventory))
    record_set = load_record_set(inv, domain, tlsa, tlsa_from_hosts)
    if format == "json":
        print_json(render_json(record_set))
    elif format == "bind":
        sys.stdout.write(render_bind(record_set, soa_ns=soa))
    elif format == "octodns":
        sys.stdout.write(render_octodns(record_set))
    else:
        sys.stdout.write(render_table(record_set))


def render_verdicts(record_set: RecordSet, verdicts: list[Verdict], server: str) -> str:
    origin = record_set.domain
    lines = [f"{record_set.display_name}: {len(verdicts)} records checked against {server}"]
    for verdict in verdicts:
        record = verdict.record
        owner = record.relative_to(origin) or record.name + "."
        lines.append(f"  {verdict.mark} {record.rtype:<5} {owner:<28} {record.value if len(record.value) < 90 else record.value[:87] + '...'}")
        if verdict.status != "ok":
            if verdict.found and verdict.status != "pending":
                for found in verdict.found:
                    lines.append(f"      found: {found if len(found) < 120 else found[:117] + '...'}")
            lines.append(f"      {verdict.explanation}")
    drift = [v for v in verdicts if v.is_drift]
    warn = [v for v in verdicts if v.status == "warn"]
    pending = [v for v in verdicts if v.status == "pending"]
    summary = f"{len(verdicts) - len(drift) - len(warn) - len(pending)} ok, {len(drift)} drift"
    summary += f", {len(warn)} advice" if warn else ""
    summary += f", {len(pending)} pending" if pending else ""
    lines.append(summary)
    if drift:
        names = sorted({f"{v.record.name}. {v.record.rtype}" + (f" ({v.record.kind})" if v.record.kind else "")
                        for v in drift})
        lines.append("drift in: " + ", ".join(names))
        lines.append(f"next step: publish the expected values (`mailfleet dns.records --domain {record_set.display_name} "
                     "--format bind`) and run dns.check again")
    return "\n".join(lines) + "\n"


def _verdicts_json(record_set: RecordSet, verdicts: list[Verdict]) -> dict:
    return {"domain": record_set.domain, "ok": not any(v.is_drift for v in verdicts), "records": [
        {"name": v.record.name, "type": v.record.rtype, "expected": v.record.value, "found": list(v.found),
         "status": v.status, "level": v.record.level, "explanation": v.explanation} for v in verdicts]}


@task(iterable=["tlsa"], help={
    "domain": "the mail domain",
    "all": "check every inventory domain (one report each; exit 1 if any drifts)",
    "nameserver": "HOST[:PORT] to ask directly (e.g. your authoritative server); default: the system resolver",
    "tlsa": _TLSA_HELP,
    "tlsa_from_hosts": _TLSA_HOSTS_HELP,
    "json": "print {\"domain\", \"ok\", \"records\": [{name, type, expected, found, status, explanation}]} "
            "(with --all: {\"ok\", \"domains\": [...]})",
    "inventory": _INVENTORY_HELP,
})
@reports_errors
def check(c, domain=None, all=False, nameserver=None, tlsa=None, tlsa_from_hosts=False, json=False, inventory=None):
    """Compare published DNS with the records DOMAIN needs; exit 1 on drift."""
    if not domain and not all:
        raise Exit("error: this task needs --domain NAME (or --all)", code=2)
    from mailfleet.inventory import load_valid_inventory

    inv = load_valid_inventory(default_inventory_path(inventory))
    assert inv.fleet is not None
    names = [d.name for d in inv.fleet.domains.values()] if all else [domain]
    from mailfleet.dns.check import check_domain, make_resolver  # dnspython: load when used

    resolver = make_resolver(nameserver)
    server = nameserver or "the system resolver"
    reports = []
    drift = False
    for name in names:
        record_set = load_record_set(inv, name, tlsa, tlsa_from_hosts)
        verdicts = check_domain(record_set, resolver)
        drift = drift or any(v.is_drift for v in verdicts)
        if json:
            reports.append(_verdicts_json(record_set, verdicts))
        else:
            sys.stdout.write(render_verdicts(record_set, verdicts, server) + ("\n" if all else ""))
    if json:
        print_json({"ok": not drift, "domains": reports} if all else reports[0])
    if drift:
        raise Exit(code=1)


def register(ns: Collection) -> None:
    ns.add_collection(Collection("dns", records, check))
