"""``lab.status``: is each lab host there, running, reachable, and are its services up?

The SSH check is the real thing: a login with the lab's client key that accepts only the host
key pinned in the lab inventory (``RejectPolicy``), running a probe that prints the hostname
and the state of Postfix, Dovecot and the emulated Mailcow API.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mailfleet.errors import MailfleetError
from mailfleet.inventory import load_valid_inventory
from mailfleet.inventory.model import Fleet
from mailfleet.lab import boot, network
from mailfleet.lab.model import HostRecord
from mailfleet.lab.parse_probe import parse_probe_output, render_probe_command
from mailfleet.lab.state import LabPaths, load_state

SSH_TIMEOUT = 5


def _ssh_probe(record: HostRecord, fleet: Fleet | None, base_dir, install_dir: str) -> dict[str, Any]:
    if fleet is None or record.name not in fleet.hosts:
        return {"ok": False, "error": "the lab inventory is missing or lacks this host; run `mailfleet lab.up`"}
    from mailfleet.ssh import open_connection
    host = fleet.hosts[record.name]
    try:
        conn = open_connection(host, fleet, base_dir, timeout=SSH_TIMEOUT)
    except MailfleetError as exc:
        return {"ok": False, "error": str(exc)}
    try:
        result = conn.run(render_probe_command(install_dir, fleet.settings.api_port), hide=True, warn=True, in_stream=False,
                          timeout=15)
        probe = parse_probe_output(result.stdout)
        return {"ok": True, "hostname": probe.pop("hostname"), "pinned_key": host.host_key, **probe}
    except Exception as exc:  # noqa: BLE001 - any failure of the session is the host's state to report
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


def gather_status(paths: LabPaths) -> dict[str, Any]:
    state = load_state(paths)
    if state is None:
        return {"ok": False, "up": False, "state_dir": str(paths.state_dir), "hosts": {},
                "message": "no lab is up; start one with `mailfleet lab.up`"}
    fleet = None
    base_dir = paths.inventory.parent
    inventory_error = ""
    if paths.inventory.exists():
        try:
            inv = load_valid_inventory(paths.inventory)
            fleet, base_dir = inv.fleet, inv.base_dir
        except MailfleetError as exc:
            inventory_error = str(exc)
    else:
        inventory_error = f"{paths.inventory} is missing"

    def one(record: HostRecord) -> tuple[str, dict[str, Any]]:
        running = boot.host_running(record)
        entry: dict[str, Any] = {
            "address": record.address, "fqdn": record.fqdn, "roles": list(record.roles),
            "netns": network.netns_exists(record.netns), "init_pid": record.init_pid if running else None,
            "running": running, "link": "up" if network.link_is_up(record.veth) else "down",
            "faults": list(state.faults.get(record.name, ())),
        }
        if running and entry["link"] == "up":
            entry["ssh"] = _ssh_probe(record, fleet, base_dir, state.install_dir)
        else:
            entry["ssh"] = {"ok": False, "error": "host not running" if not running else "link down (partition)"}
        ssh = entry["ssh"]
        for service in ("postfix", "dovecot", "mailcow_api"):
            entry[service] = ssh.get(service, "unknown")
        entry["ok"] = bool(running and ssh.get("ok") and ssh.get("hostname") in (record.name, record.fqdn)
                           and entry["postfix"] == "up" and entry["dovecot"] in ("up", "none"))
        return record.name, entry

    with ThreadPoolExecutor(max_workers=8) as pool:
        hosts = dict(pool.map(one, state.hosts))
    ok = state.complete and bool(hosts) and all(h["ok"] for h in hosts.values())
    report: dict[str, Any] = {"ok": ok, "up": state.complete, "bridge": state.bridge, "subnet": state.subnet,
                              "inventory": str(paths.inventory), "hosts": hosts}
    if inventory_error:
        report["inventory_error"] = inventory_error
    if not state.complete:
        report["message"] = "the lab is half-built; run `mailfleet lab.up` to finish it or `mailfleet lab.down`"
    return report


def render_status_table(report: dict[str, Any]) -> str:
    if not report.get("hosts"):
        return report.get("message", "no lab")
    rows = [("HOST", "ADDRESS", "NETNS", "INIT", "LINK", "SSH (pinned key)", "POSTFIX", "DOVECOT", "MAILCOW API (EMULATOR)")]
    for name, h in report["hosts"].items():
        ssh = h["ssh"]
        ssh_text = f"ok, hostname {ssh['hostname']}" if ssh.get("ok") else "FAILED"
        rows.append((name, h["address"], "yes" if h["netns"] else "MISSING",
                     str(h["init_pid"]) if h["running"] else "DEAD", h["link"], ssh_text, h["postfix"],
                     h["dovecot"], {"none": "not installed"}.get(h["mailcow_api"], h["mailcow_api"])))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for name, h in report["hosts"].items():
        if not h["ssh"].get("ok"):
            lines.append(f"{name}: {h['ssh'].get('error', 'SSH failed')}")
        if h["faults"]:
            lines.append(f"{name}: injected faults: {', '.join(h['faults'])} (`mailfleet lab.heal` clears them)")
    if report.get("inventory_error"):
        lines.append(f"inventory: {report['inventory_error']}")
    if report.get("message"):
        lines.append(report["message"])
    verdict = "all hosts answer" if report["ok"] else "NOT all hosts answer"
    lines.append(f"lab {report['bridge']} {report['subnet']}: {verdict}; inventory {report['inventory']}")
    return "\n".join(lines)
