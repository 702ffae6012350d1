"""``add-domain``, ``domains.sync`` and ``dkim.rotate``: domains and their DKIM keys on every
Mailcow host that serves or signs for them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors

if TYPE_CHECKING:
    from mailfleet.domains.push import PushReport

_INVENTORY_HELP = "inventory file (default: $MAILFLEET_INVENTORY, inventory/lab.yaml while a lab is up, else inventory/example.yaml)"


def render_entry(name: str, entry: dict[str, Any]) -> str:
    """The YAML lines add-domain would append under ``domains:``."""
    import io

    from ruamel.yaml import YAML

    buffer = io.StringIO()
    from mailfleet.inventory.merge import merge_domain

    doc: dict[str, Any] = {"domains": None}
    merge_domain(doc, name, entry)  # the same flow styles the inventory gets
    YAML(typ="rt").dump(doc, buffer)
    return "\n".join("  | " + line for line in buffer.getvalue().splitlines()[1:])


def report_json(report: PushReport, check: bool) -> dict[str, Any]:
    hosts = {}
    for name, result in report.results.items():
        steps = result.planned if check else result.done
        hosts[name] = {"ok": result.ok, "changes": len(steps), "steps": steps, "warnings": result.warnings,
                       "error": result.error}
    return {"check": check, "hosts": hosts,
            "conflicts": [{"host": c.host, "domain": c.domain, "message": c.message} for c in report.conflicts],
            "notes": report.notes}


def render_report(report: PushReport, check: bool) -> str:
    lines = []
    for name, result in report.results.items():
        steps = result.planned if check else result.done
        verb = "would change" if check else "changed"
        if result.error and not steps:
            lines.append(f"{name}: FAILED: {result.error}")
        else:
            lines.append(f"{name}: {verb} {len(steps)}" if steps else f"{name}: no changes")
            lines += [f"  + {s}" for s in steps]
            if result.error:
                pending = [s for s in result.planned if s not in result.done]
                lines.append(f"  FAILED: {result.error}")
                lines += [f"  - not done: {s}" for s in pending[1:]]
        lines += [f"  ! {w}" for w in result.warnings]
    for conflict in report.conflicts:
        lines.append(f"conflict on {conflict.host}: {conflict.message}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _finish(report: PushReport, check: bool, rerun: str, json: bool = False) -> None:
    total = report.planned if check else report.changes
    hosts = len(report.results)
    if json:
        pass  # the JSON carries it; stdout stays one document
    elif check:
        print(f"plan: {total} change{'s' if total != 1 else ''} on {hosts} host{'s' if hosts != 1 else ''}; "
              "nothing was changed (--check)")
    else:
        print(f"{total} change{'s' if total != 1 else ''} on {hosts} host{'s' if hosts != 1 else ''}"
              + ("" if total else ": everything was already in place"))
    if report.failed:
        raise Exit(f"error: {len(report.failed)} host(s) failed: {', '.join(report.failed)}; what was done stays "
                   f"done; fix the cause and run `{rerun}` again to complete the rest", code=1)
    if report.conflicts:
        raise Exit(f"error: {len(report.conflicts)} conflict(s) left alone (see above)", code=1)


@task(name="add-domain", iterable=["inbound"], help={
    "domain": "the domain to add (IDNA names are fine)",
    "inbound": "an inbound host for its MX (repeatable, first = preference 10); default: every inbound host",
    "relay": "the outbound relay for its mail; default: the first outbound-relay host",
    "transactional_relay": "the relay for its transactional mail (optional)",
    "selector": "DKIM selector; default: the one most domains of the fleet use, else 'dkim'",
    "key_size": "DKIM RSA key size for a new domain: 1024, 2048 (default), 3072 or 4096",
    "mta_sts": "MTA-STS mode for a new domain: enforce, testing or none (default: no MTA-STS)",
    "check": "show the plan (inventory entry and every host's changes); change nothing",
    "json": "print {\"hosts\": {NAME: {\"ok\", \"changes\", \"steps\", \"warnings\", \"error\"}}, ...}",
    "inventory": _INVENTORY_HELP,
})
@reports_errors
def add_domain(c, domain=None, inbound=None, relay=None, transactional_relay=None, selector=None, key_size=None,
               mta_sts=None, check=False, json=False, inventory=None):
    """Add a domain to the inventory and to every Mailcow host that serves or signs for it.

    Writes the inventory entry (defaults: every inbound host, the first relay, DMARC p=none,
    postmaster + report mailboxes, abuse alias), generates the DKIM key (secrets/dkim, 0600),
    imports it on every signing host, and creates the domain, mailboxes, aliases, relayhost
    wiring and MTA-STS policy on its inbound hosts. A domain already in the inventory is pushed
    as written. Run twice, it changes nothing.
    """
    if not domain:
        raise Exit("error: add-domain needs --domain NAME", code=2)
    from mailfleet.inventory import load_valid_inventory  # ruamel.yaml: load when used

    inv = load_valid_inventory(default_inventory_path(inventory))
    if key_size is not None and not str(key_size).isdigit():
        raise Exit(f"error: --key-size must be a number of bits such as 2048, not {key_size!r}", code=2)
    from mailfleet.domains.add import add_domain as run_add_domain  # SSH and HTTP stacks: load when used

    result = run_add_domain(inv, domain, inbound=inbound or [], relay=relay, transactional_relay=transactional_relay,
                            selector=selector, key_size=int(key_size) if key_size is not None else None,
                            mta_sts=mta_sts, check=check)
    if json:
        data = report_json(result.report, check)
        data.update({"domain": result.domain.ascii, "inventory_entry": result.entry if result.new_in_inventory else None,
                     "dkim_key_created": result.key_created})
        print_json(data)
    else:
        d = result.domain
        if result.new_in_inventory:
            verb = "would add" if check else "added"
            print(f"inventory: {verb} {d.name} (inbound {', '.join(d.inbound_hosts)}; relay {d.relay or 'none'}; "
                  f"selector {d.dkim.selector}; DMARC p={d.dmarc.policy}) {'to' if check else 'in'} {inv.path}")
            if check and result.entry is not None:
                print(render_entry(d.name, result.entry))
        else:
            print(f"inventory: {d.name} is already there; pushing it as written")
        if result.key_created:
            print(f"dkim: {'would generate' if check else 'generated'} an RSA {d.dkim.key_size} key, selector "
                  f"{d.dkim.selector} ({inv.secrets_dir}/dkim/{d.ascii}.{d.dkim.selector}.pem, mode 0600)")
        print(render_report(result.report, check))
        if not check:
            print(f"next: publish the records (`mailfleet dns.records --domain {d.name}`), then "
                  f"`mailfleet dns.check --domain {d.name}`")
    _finish(result.report, check, f"mailfleet add-domain --domain {domain}", json)


@task(help={"check": "show the drift and the plan; change nothing; exit 1 when there is drift",
            "json": "print the per-host report as JSON",
            "inventory": _INVENTORY_HELP})
@reports_errors
def sync(c, check=False, json=False, inventory=None):
    """Reconcile every inventory domain with every Mailcow host; report drift and fix it."""
    from mailfleet.inventory import load_valid_inventory  # ruamel.yaml: load when used

    inv = load_valid_inventory(default_inventory_path(inventory))
    from mailfleet.domains.sync import sync_domains

    result = sync_domains(inv, check=check)
    if json:
        data = report_json(result.report, check)
        data["skipped"] = result.skipped
        print_json(data)
    else:
        print(render_report(result.report, check))
        for domain, why in result.skipped.items():
            print(f"skipped {domain}: {why}")
    _finish(result.report, check, "mailfleet domains.sync", json)
    if result.skipped:
        raise Exit(f"error: {len(result.skipped)} domain(s) skipped (see above)", code=1)
    if check and result.report.planned:
        raise Exit(code=1)  # drift found: `domains.sync --check` in cron alerts like dns.check


def dns_visibility(nameserver: str | None):
    """``(name, expected TXT) -> bool`` asking DNS (the given server, else the system resolver)."""
    from mailfleet.dkim.render_key import parse_dkim_tags
    from mailfleet.dns.check import fetch_rrset, make_resolver

    resolver = make_resolver(nameserver)

    def visible(name: str, expected: str) -> bool:
        want = parse_dkim_tags(expected).get("p")
        return any(parse_dkim_tags(v).get("p") == want for v in fetch_rrset(resolver, name + ".", "TXT").values)

    return visible


@task(help={
    "domain": "the domain whose key to rotate",
    "selector": "the new selector (default: s<YYYYMM> of today)",
    "nameserver": "HOST[:PORT] to ask whether the new record is published (default: the system resolver)",
    "grace_days": "days the old record stays published after the switch (default 7)",
    "check": "say what the next step would be; change nothing",
    "inventory": _INVENTORY_HELP,
})
@reports_errors
def rotate(c, domain=None, selector=None, nameserver=None, grace_days=7, check=False, inventory=None):
    """Rotate a domain's DKIM key: publish a new selector, switch signing once DNS serves it, retire the old.

    Run it again for each step: 1) generates the new key and shows the record to publish;
    2) when DNS serves it, imports it on every signing host and moves the inventory's
    selector; 3) after the grace period, retires the old selector.
    """
    from datetime import datetime, timedelta, timezone

    from mailfleet.dkim.rotate import rotate_dkim
    from mailfleet.dns.render_bind import render_txt_strings
    from mailfleet.inventory import load_valid_inventory

    if not domain:
        raise Exit("error: dkim.rotate needs --domain NAME", code=2)
    inv = load_valid_inventory(default_inventory_path(inventory))
    result = rotate_dkim(inv, domain, datetime.now(timezone.utc), dns_visibility(nameserver), selector=selector,
                         grace=timedelta(days=int(grace_days)), check=check)
    print(f"{'next step' if check else 'step'}: {result.step.kind}: {result.step.message}")
    for line in result.done:
        print(f"  + {line}")
    if result.record:
        name, value = result.record
        print(f"publish:\n{name}.\t3600\tIN\tTXT\t{render_txt_strings(value)}")
        print(f"then run `mailfleet dkim.rotate --domain {domain}` again")
    if result.host_errors:
        for host, error in result.host_errors.items():
            print(f"  {host}: FAILED: {error}")
        raise Exit(f"error: {len(result.host_errors)} host(s) did not switch; the rotation stays in its "
                   "current phase; fix them and run dkim.rotate again", code=1)


def register(ns: Collection) -> None:
    ns.add_task(add_domain)
    ns.add_collection(Collection("domains", sync))
    ns.add_collection(Collection("dkim", rotate))
