"""Small helpers for lab tests: run a command on a lab host with its pinned key."""

from __future__ import annotations

from pathlib import Path

from mailfleet.inventory import load_valid_inventory


def run_on(inventory: Path, host: str, command: str, timeout: int = 20) -> str:
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(inventory)
    assert inv.fleet is not None
    conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir, timeout=5)
    try:
        result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        assert result.ok, f"{host}: {command!r} failed: {result.stderr}"
        return result.stdout
    finally:
        conn.close()
