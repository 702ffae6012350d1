"""``inventory.check``: validate an inventory and print every problem with file:line:column."""

from __future__ import annotations

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors


@task(help={"inventory": "inventory file (default: $MAILFLEET_INVENTORY, inventory/lab.yaml while a lab is up, "
                         "else inventory/example.yaml)",
            "json": "print {\"ok\", \"problems\": [{file, line, column, message, hint}]}"})
@reports_errors
def check(c, inventory=None, json=False):
    """Validate the inventory; list every problem at once; exit 1 if there is any."""
    from mailfleet.inventory import load_inventory  # ruamel.yaml: load when used

    path = default_inventory_path(inventory)
    loaded = load_inventory(path)
    if json:
        print_json({"ok": not loaded.problems, "problems": [
            {"file": p.source, "line": p.line, "column": p.column, "message": p.message, "hint": p.hint}
            for p in loaded.problems]})
    elif loaded.problems:
        for problem in loaded.problems:
            print(problem)
    if loaded.problems:
        count = len(loaded.problems)
        raise Exit(f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was changed", code=1)
    fleet = loaded.fleet
    assert fleet is not None
    if not json:
        print(f"{path}: ok — {len(fleet.hosts)} hosts, {len(fleet.domains)} domains")


def register(ns: Collection) -> None:
    ns.add_collection(Collection("inventory", check))
