"""``lab.up``, ``lab.down``, ``lab.status``, ``lab.fault``, ``lab.heal``: the local lab fleet."""

from __future__ import annotations

from invoke import Collection, Exit, task

from mailfleet.cli.common import print_json, reports_errors

_DIR_HELP = "the lab's state folder (default: var/lab in the repository)"
_INV_HELP = "where the lab's inventory is written (default: inventory/lab.yaml)"
_PREFIX_HELP = "the lab's name prefix (default mflab); only needed to find a lab whose state folder is gone"
_SUBNET_HELP = "read from the lab's state; accepted so every lab task takes the same options"


def _paths(dir, inventory):
    from mailfleet.lab.state import default_paths  # pulls in the inventory (ruamel.yaml): load when used
    return default_paths(dir, inventory)


def _space(prefix, subnet):
    from mailfleet.lab.model import parse_lab_space
    return parse_lab_space(prefix, subnet) if (prefix or subnet) else None


@task(help={"hosts": "number of hosts (6 reproduces inventory/example.yaml)", "dir": _DIR_HELP,
            "inventory": _INV_HELP,
            "prefix": "names of the lab's bridge, namespaces and links (default mflab); a second lab needs its own",
            "subnet": "the lab's private /24 or larger (default 10.77.0.0/24); a second lab needs its own"})
@reports_errors
def up(c, hosts=6, dir=None, inventory=None, prefix=None, subnet=None):
    """Start the lab fleet (or repair it); a running lab is left as it is."""
    from mailfleet.lab.lifecycle import lab_up
    lab_up(_paths(dir, inventory), int(hosts), _space(prefix, subnet))


@task(help={"dir": _DIR_HELP, "inventory": _INV_HELP, "prefix": _PREFIX_HELP, "subnet": _SUBNET_HELP})
@reports_errors
def down(c, dir=None, inventory=None, prefix=None, subnet=None):
    """Stop the lab and remove everything it made (processes, namespaces, links, files)."""
    from mailfleet.lab.lifecycle import lab_down
    lab_down(_paths(dir, inventory), _space(prefix, subnet))


@task(help={"dir": _DIR_HELP, "inventory": _INV_HELP, "prefix": _SUBNET_HELP, "subnet": _SUBNET_HELP,
            "json": "print {\"up\", \"hosts\": {NAME: {\"ssh\": {\"ok\", ...}, \"postfix\", ...}}}"})
@reports_errors
def status(c, dir=None, inventory=None, json=False, prefix=None, subnet=None):
    """Show each lab host: namespace, init, link, SSH with the pinned key, Postfix, Dovecot, API."""
    from mailfleet.lab.status import gather_status, render_status_table
    report = gather_status(_paths(dir, inventory))
    if json:
        print_json(report)
    else:
        print(render_status_table(report))
    if not report["ok"]:
        raise Exit(code=1)


@task(help={"host": "lab host name, e.g. mx1",
            "kind": "down (crash the host), partition (cut its link), api-errors (the emulated Mailcow API "
                    "fails), update-fails (the emulated update.sh fails)",
            "mode": "for api-errors: 500 (every call answers HTTP 500) or slow (calls wait --delay seconds)",
            "delay": "for api-errors --mode slow: seconds each call waits (default 5)",
            "dir": _DIR_HELP, "inventory": _INV_HELP, "prefix": _SUBNET_HELP, "subnet": _SUBNET_HELP})
@reports_errors
def fault(c, host, kind, mode="500", delay=5.0, dir=None, inventory=None, prefix=None, subnet=None):
    """Inject a fault into one lab host (undo it with lab.heal)."""
    from mailfleet.lab.faults import apply_fault
    apply_fault(_paths(dir, inventory), host, kind, mode=mode, delay_s=float(delay))


@task(help={"host": "heal only this host (default: every host)", "dir": _DIR_HELP, "inventory": _INV_HELP,
            "prefix": _SUBNET_HELP, "subnet": _SUBNET_HELP})
@reports_errors
def heal(c, host=None, dir=None, inventory=None, prefix=None, subnet=None):
    """Clear injected faults: restart crashed hosts, raise cut links, remove API/update faults."""
    from mailfleet.lab.faults import heal_lab
    heal_lab(_paths(dir, inventory), host)


def register(ns: Collection) -> None:
    ns.add_collection(Collection("lab", up, down, status, fault, heal))
