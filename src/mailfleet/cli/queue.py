"""``queue --host NAME``: the queue's shape by class and transport; pause/resume bulk; push one."""

from __future__ import annotations

from typing import Any

from invoke import Collection, task

from mailfleet.cli.common import default_inventory_path, print_json, reports_errors


def format_report(report: dict[str, Any]) -> str:
    """A short text view of ``run_queue_command``'s report."""
    lines = [f"{report['host']}: {report['total']} message(s) queued; active queue "
             f"{report['active']['messages']} of {report['active']['limit']}"]
    lines.append(f"{'class':14} {'messages':>8} {'rcpts':>7} {'incoming':>8} {'active':>7} {'deferred':>8} "
                 f"{'hold':>6} {'oldest':>8}")
    for name, entry in report["classes"].items():
        queues = entry["by_queue"]
        oldest = "-" if entry["oldest_age_seconds"] is None else f"{entry['oldest_age_seconds']}s"
        lines.append(f"{name:14} {entry['messages']:>8} {entry['recipients']:>7} {queues['incoming']:>8} "
                     f"{queues['active']:>7} {queues['deferred']:>8} {queues['hold']:>6} {oldest:>8}")
    lines.append("by transport: " + (", ".join(f"{k} {v}" for k, v in report["transports"].items()) or "none"))
    for name, entry in report["classes"].items():
        if entry["top_destinations"]:
            top = ", ".join(f"{d['domain']} {d['recipients']}" for d in entry["top_destinations"][:5])
            lines.append(f"{name} to: {top}")
    if "action" in report:
        lines.append(f"{report['action']['kind']}: {report['action']['detail']}")
    lines += [f"warning: {w}" for w in report["warnings"]]
    lines += [f"{f['level']}: {f['message']}" + (f" ({f['hint']})" if f["hint"] else "")
              for f in report.get("findings", []) if f["level"] != "info"]
    lines += [f"unparsed: {e}" for e in report["errors"]]
    return "\n".join(lines)


@task(name="queue", help={
    "host": "host name from the inventory (an inbound or outbound-relay host)",
    "inventory": "inventory file",
    "json": "print the report as JSON",
    "pause_bulk": "hold every queued bulk message (bulk by sender rules); survives restarts",
    "resume_bulk": "release held bulk messages and start a queue run",
    "push": "schedule one queued message (e.g. a stuck reset) for delivery now",
})
@reports_errors
def queue(c, host, inventory=None, json=False, pause_bulk=False, resume_bulk=False, push=None):
    """Show a host's mail queue by class (bulk/transactional) and transport; pause, resume, push."""
    from mailfleet.inventory import load_valid_inventory  # ruamel.yaml: load when used
    from mailfleet.priority.queue import QueueError, run_queue_command
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(default_inventory_path(inventory))
    assert inv.fleet is not None
    if host not in inv.fleet.hosts:
        raise QueueError(f"no host {host!r} in {inv.path}; hosts are {', '.join(inv.fleet.hosts)}")
    conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir)
    try:
        report = run_queue_command(conn, inv.fleet, host, pause_bulk=pause_bulk, resume_bulk=resume_bulk,
                                   push=push)
    finally:
        conn.close()
    if json:
        print_json(report)
    else:
        print(format_report(report))


def register(ns: Collection) -> None:
    ns.add_task(queue)
