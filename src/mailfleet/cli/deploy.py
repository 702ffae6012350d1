"""``deploy``: converge hosts for their roles (``--check`` plans only and changes nothing)."""

from __future__ import annotations

import sys

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors


@task(help={
    "host": "host name from the inventory (comma-separated for several)",
    "role": "every host with this role (inbound, outbound-relay, monitoring)",
    "all": "every host in the inventory",
    "check": "gather facts and show the plan; run no mutating command",
    "json": "print {\"hosts\": {NAME: {\"ok\", \"changes\", \"steps\"}}} instead of the table",
    "inventory": "inventory file (default: $MAILFLEET_INVENTORY, else inventory/lab.yaml while a lab is up)",
})
@reports_errors
def deploy(c, host=None, role=None, all=False, check=False, json=False, inventory=None):  # noqa: A002
    """Gather facts over SSH, plan, show the plan and apply it; a second run changes nothing."""
    # Imported here: every `mailfleet` start builds the whole task namespace, and only deploy
    # needs SSH, the API client and the templates.
    from mailfleet.deploy.render_report import render_json, render_summary, render_table
    from mailfleet.deploy.run import deploy_fleet, select_hosts
    from mailfleet.inventory import load_valid_inventory

    inv = load_valid_inventory(default_inventory_path(inventory))
    assert inv.fleet is not None
    hosts = select_hosts(inv.fleet, host, role, all)
    outcomes = deploy_fleet(inv, hosts, check=check)
    if json:
        print_json(render_json(outcomes))
    else:
        print(render_table(outcomes, check=check))
        print()
        print(render_summary(outcomes, check=check))
    sys.stdout.flush()
    if any(not o.ok for o in outcomes.values()):
        raise Exit(code=1)


def register(ns: Collection) -> None:
    ns.add_task(deploy)
