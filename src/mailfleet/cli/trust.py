"""``trust-host``: first contact with a host: show the key it presents and pin it."""

from __future__ import annotations

import sys

from invoke import Collection, Exit, task

from mailfleet.cli.common import default_inventory_path, reports_errors
from mailfleet.errors import MailfleetError


@task(name="trust-host", help={
    "host": "host name from the inventory",
    "inventory": "inventory file",
    "yes": "pin without asking (only after comparing the fingerprint with the host's console)",
})
@reports_errors
def trust_host(c, host, inventory=None, yes=False):
    """Show the SSH key a host presents and pin it in the inventory after you confirm."""
    from mailfleet.inventory import load_valid_inventory, save_inventory  # ruamel.yaml: load when used
    from mailfleet.inventory.merge import merge_host_key

    inv = load_valid_inventory(default_inventory_path(inventory))
    assert inv.fleet is not None
    if host not in inv.fleet.hosts:
        raise MailfleetError(f"no host {host!r} in {inv.path}; hosts are {', '.join(inv.fleet.hosts)}")
    entry = inv.fleet.hosts[host]
    from mailfleet.ssh import fetch_host_key, fingerprint  # paramiko: load when used

    presented = fetch_host_key(entry.address, entry.ssh_port)
    print(f"{host} ({entry.address}:{entry.ssh_port}) presents {presented.split()[0]} {fingerprint(presented)}")
    if entry.host_key == presented:
        print(f"{host}: this key is already pinned; nothing to do")
        return
    if entry.host_key:
        print(f"WARNING: the inventory pins a different key: {fingerprint(entry.host_key)}")
    if not yes:
        if not sys.stdin.isatty():
            raise Exit("not pinned: compare the fingerprint with the host's console "
                       "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then rerun with --yes", code=1)
        answer = input("Pin this key? Type 'yes' after checking the fingerprint on the host: ")
        if answer.strip().lower() != "yes":
            raise Exit("not pinned; nothing changed", code=1)
    merge_host_key(inv.doc, host, presented)
    save_inventory(inv)
    print(f"{host}: pinned {fingerprint(presented)} in {inv.path}")


def register(ns: Collection) -> None:
    ns.add_task(trust_host)
