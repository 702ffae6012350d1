"""``dns.records`` and ``dns.check``: every domain's DNS, printed and verified."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors
from mailfleet.dkim.publications import load_publications
from mailfleet.dns.model import RecordSet
from mailfleet.dns.records import plan_records
from mailfleet.dns.render_bind import render_bind
from mailfleet.dns.render_octodns import render_octodns
from mailfleet.dns.render_table import render_json, render_table
from mailfleet.dns.render_tlsa import render_tlsa_311
from mailfleet.errors import MailfleetError
from mailfleet.inventory import Inventory, load_valid_inventory

FORMATS = ("table", "bind", "json", "octodns")
_INVENTORY_HELP = "inventory file (default: $MAILFLEET_INVENTORY, inventory/lab.yaml while a lab is up, else inventory/example.yaml)"
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
            out[host] = render_tlsa_311(Path(file).read_bytes())
        except OSError as exc:
            raise MailfleetError(f"--tlsa {pair!r}: cannot read {file}: {exc.strerror}") from None
        except ValueError as exc:
            raise MailfleetError(f"--tlsa {pair!r}: {file} is not a PEM certificate or key ({exc})") from None
    return out


def load_record_set(inv: Inventory, domain_name: str, tlsa_pairs: list[str] | None = None) -> RecordSet:
    """The expected record set of one inventory domain (reads local DKIM keys, no network)."""
    assert inv.fleet is not None
    domain = inv.fleet.domain(domain_name)
    if domain is None:
        known = ", ".join(inv.fleet.domains) or "none"
        raise MailfleetError(f"{domain_name!r} is not a domain in {inv.path} (domains: {known}); "
                             f"add it with `mailfleet add-domain --domain {domain_name}`")
    return plan_records(inv.fleet, domain, load_publications(inv.secrets_dir, domain), load_tlsa(inv, tlsa_pairs or []))


@task(iterable=["tlsa"], help={
    "domain": "the mail domain (as written in the inventory, or its xn-- form)",
    "format": f"one of {', '.join(FORMATS)} (default table)",
    "soa": "with --format bind: add SOA and NS naming this name server, so the text is a complete zone",
    "tlsa": _TLSA_HELP,
    "inventory": _INVENTORY_HELP,
})
@reports_errors
def records(c, domain, format="table", soa=None, tlsa=None, inventory=None):
    """Print every DNS record DOMAIN needs, each with why; works with every host down."""
    if format not in FORMATS:
        raise Exit(f"error: --format must be one of {', '.join(FORMATS)}, not {format!r}", code=2)
    inv = load_valid_inventory(default_inventory_path(inventory))
    record_set = load_record_set(inv, domain, tlsa)
    if format == "json":
        print_json(render_json(record_set))
    elif format == "bind":
        sys.stdout.write(render_bind(record_set, soa_ns=soa))
    elif format == "octodns":
        sys.stdout.write(render_octodns(record_set))
    else:
        sys.stdout.write(render_table(record_set))


def register(ns: Collection) -> None:
    collection = Collection("dns", records)
    try:
        from mailfleet.cli.dns_check import check
    except ImportError:  # pragma: no cover - during development only
        pass
    else:
        collection.add_task(check)
    ns.add_collection(collection)
