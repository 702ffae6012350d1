"""TLSA values of MX hosts, read from the certificate each host's Mailcow serves (I/O, SSH).

Reads ``<install_dir>/data/assets/ssl/cert.pem`` over SSH (the file nginx, Postfix and Dovecot
use) and derives ``3 1 1``. Hosts that cannot be reached are reported, not fatal: the records
are still printed, without their TLSA.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailfleet.dns.render_tlsa import render_tlsa_311
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Host
from mailfleet.ssh import open_connection, run_on_hosts


def gather_tlsa(inv: Inventory, hosts: Sequence[Host]) -> tuple[dict[str, str], dict[str, str]]:
    """({host: "3 1 1 <hex>"}, {host: why not})."""
    from mailfleet.mailcow.tunnel import fetch_api_endpoint

    assert inv.fleet is not None
    fleet = inv.fleet

    def work(host: Host) -> str:
        conn = open_connection(host, fleet, inv.base_dir)
        try:
            endpoint = fetch_api_endpoint(conn, host, fleet)
        finally:
            conn.close()
        return render_tlsa_311(endpoint.cert_pem.encode("ascii"))

    outcomes = run_on_hosts(list(hosts), work)
    values = {name: o.value for name, o in outcomes.items() if o.ok and o.value}
    errors = {name: o.error or "no value" for name, o in outcomes.items() if not o.ok}
    return values, errors
