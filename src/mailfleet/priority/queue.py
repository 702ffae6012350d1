"""The queue of a host's postfix-mailcow: gather its shape, pause/resume bulk, push one message.

Effectful (SSH). Commands run inside the container the way an operator would:
``cd <install_dir> && docker compose exec -T postfix-mailcow <command>``.

Why pause means *hold*: Postfix has no per-transport pause that survives a restart and leaves
main.cf alone. ``defer_transports = bulk`` would need a main.cf edit (Mailcow regenerates main.cf
at every start, so the pause would silently end, and it fights deploy's idempotency) and it turns
every bulk message into a deferred one with a retry schedule. ``postsuper -h`` moves exactly the
bulk messages (same rules as the transport: the sender) from incoming, active and deferred to the
hold queue, where they stay across restarts until released; Mailcow's own queue UI uses the same
hold/unhold. The limit: bulk submitted *after* the pause is not held; the command says how many
it held, and running it again holds the newcomers.

Resume releases the held bulk messages (``postsuper -H``, they return to the deferred queue) and
asks for an immediate queue run (``postqueue -f``) so the campaign restarts now instead of at the
next deferred-queue scan (up to ``queue_run_delay``, 300 s). The bulk transport's concurrency
limit still applies, so transactional mail keeps its place.

Push: ``postqueue -i ID`` schedules one deferred message now (a stuck reset); a held message is
released first.
"""

from __future__ import annotations

import io
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailfleet.errors import MailfleetError, RemoteError
from mailfleet.inventory.model import Fleet, Host
from mailfleet.priority.classify import fleet_sender_rules
from mailfleet.priority.parse_queue import QUEUE_ID, QueueListing, parse_postqueue_json, select_ids, shape_queue
from mailfleet.priority.parse_transport import parse_inline, parse_table_list, parse_table_text
from mailfleet.priority.rules import DEFAULT_ACTIVE_LIMIT, Finding, check_fleet, check_transport_overrides

SERVICE = "postfix-mailcow"


class QueueError(MailfleetError):
    """A queue operation cannot be done as asked (unknown queue id, no Mailcow on the host)."""


@dataclass(frozen=True)
class QueueAction:
    kind: str
    queue_ids: tuple[str, ...]
    done: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "selected": len(self.queue_ids), "done": self.done, "detail": self.detail}


def postfix_command(fleet: Fleet, argv: Sequence[str]) -> str:
    """A shell command running ``argv`` inside postfix-mailcow, every word quoted."""
    install_dir = fleet.settings.mailcow.install_dir
    return f"cd {shlex.quote(install_dir)} && docker compose exec -T {SERVICE} {shlex.join(argv)}"


def _run(conn: Any, host: Host, command: str, *, stdin: str | None = None, what: str) -> str:
    kwargs: dict[str, Any] = {"hide": True, "warn": True, "in_stream": io.StringIO(stdin) if stdin is not None else False}
    result = conn.run(command, **kwargs)
    if result.exited != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise RemoteError(f"{host.name}: {what} failed (exit {result.exited}): {detail[-1] if detail else 'no output'}. "
                          "Is postfix-mailcow running? Check with `docker compose ps` in the Mailcow directory; "
                          "no further step was attempted")
    return result.stdout


def _check_host(fleet: Fleet, host_name: str) -> Host:
    if host_name not in fleet.hosts:
        raise QueueError(f"no host {host_name!r} in the inventory; hosts are {', '.join(fleet.hosts)}")
    host = fleet.hosts[host_name]
    if not host.runs_mailcow:
        raise QueueError(f"{host_name} runs no Mailcow (roles: {', '.join(host.roles)}), so it has no mail queue; "
                         "choose an inbound or outbound-relay host")
    return host


def gather_queue(conn: Any, fleet: Fleet, host: Host) -> tuple[QueueListing, int]:
    """The host's queue listing and its ``qmgr_message_active_limit``."""
    listing = parse_postqueue_json(_run(conn, host, postfix_command(fleet, ["postqueue", "-j"]),
                                        what="postqueue -j"))
    limit_text = _run(conn, host, postfix_command(fleet, ["postconf", "-h", "qmgr_message_active_limit"]),
                      what="postconf").strip()
    return listing, int(limit_text) if limit_text.isdigit() else DEFAULT_ACTIVE_LIMIT


def gather_transport_findings(conn: Any, fleet: Fleet, host: Host) -> list[Finding]:
    """Trap 2 on the live host: transport_maps entries that name a transport steal bulk mail.

    Tables whose text can be read (inline, files) are checked; server tables (Mailcow's MySQL
    transport maps) are named as unchecked with where to look."""
    value = _run(conn, host, postfix_command(fleet, ["postconf", "-h", "transport_maps"]), what="postconf")
    findings: list[Finding] = []
    for ref in parse_table_list(value):
        if ref.kind == "inline":
            findings += check_transport_overrides(parse_inline(ref.spec), f"transport_maps {ref.kind}")
        elif ref.path:
            result = conn.run(postfix_command(fleet, ["cat", ref.path]), hide=True, warn=True, in_stream=False)
            if result.exited == 0:
                findings += check_transport_overrides(parse_table_text(ref.kind, result.stdout), ref.spec)
            else:
                findings.append(Finding("info", f"{ref.spec} could not be read; its entries were not checked"))
        else:
            findings.append(Finding(
                "info", f"{ref.spec} is answered by a server and was not checked",
                "in Mailcow, transports under Configuration -> Routing -> Transport maps use "
                "smtp_via_transport_maps and override the bulk transport for their destinations"))
    return findings


def queue_report(fleet: Fleet, host: Host, listing: QueueListing, active_limit: int,
                 action: QueueAction | None = None, now: int | None = None,
                 findings: Sequence[Finding] = ()) -> dict[str, Any]:
    addresses, domains = fleet_sender_rules(fleet)
    shape = shape_queue(listing, addresses, domains, now=int(time.time()) if now is None else now,
                        active_limit=active_limit)
    report: dict[str, Any] = {"host": host.name, **shape,
                              "findings": [f.as_dict() for f in [*check_fleet(fleet), *findings]]}
    if action is not None:
        report["action"] = action.as_dict()
    return report


def _now_in(conn: Any, fleet: Fleet, host: Host, ids: Sequence[str]) -> dict[str, str]:
    """Which queue each of ``ids`` is in now (absent ones left the queue). postsuper reports its
    counts on stderr only when that is a terminal, so the queue itself is the witness."""
    wanted = set(ids)
    listing, _ = gather_queue(conn, fleet, host)
    return {m.queue_id: m.queue_name for m in listing.messages if m.queue_id in wanted}


def apply_pause_bulk(conn: Any, fleet: Fleet, host: Host, listing: QueueListing) -> QueueAction:
    addresses, domains = fleet_sender_rules(fleet)
    ids = select_ids(listing, addresses, domains, cls="bulk", queues=("incoming", "active", "deferred"))
    if not ids:
        return QueueAction("pause-bulk", (), 0, "no bulk mail waiting outside the hold queue; nothing changed")
    _run(conn, host, postfix_command(fleet, ["postsuper", "-h", "-"]), stdin="\n".join(ids) + "\n",
         what="postsuper -h")
    held = sum(1 for queue in _now_in(conn, fleet, host, ids).values() if queue == "hold")
    return QueueAction("pause-bulk", tuple(ids), held,
                       f"held {held} of {len(ids)} bulk messages (the rest left the queue meanwhile); bulk submitted "
                       "from now on is not held: run --pause-bulk again or stop the sender")


def apply_resume_bulk(conn: Any, fleet: Fleet, host: Host, listing: QueueListing) -> QueueAction:
    addresses, domains = fleet_sender_rules(fleet)
    ids = select_ids(listing, addresses, domains, cls="bulk", queues=("hold",))
    if not ids:
        return QueueAction("resume-bulk", (), 0, "no held bulk mail; nothing changed")
    _run(conn, host, postfix_command(fleet, ["postsuper", "-H", "-"]), stdin="\n".join(ids) + "\n",
         what="postsuper -H")
    _run(conn, host, postfix_command(fleet, ["postqueue", "-f"]), what="postqueue -f")
    still_held = sum(1 for queue in _now_in(conn, fleet, host, ids).values() if queue == "hold")
    released = len(ids) - still_held  # released ones may have been delivered already
    return QueueAction("resume-bulk", tuple(ids), released,
                       f"released {released} held bulk messages and asked for a queue run; the bulk transport's "
                       "concurrency limit keeps transactional mail ahead")


def apply_push(conn: Any, fleet: Fleet, host: Host, listing: QueueListing, queue_id: str) -> QueueAction:
    if not QUEUE_ID.match(queue_id):
        raise QueueError(f"{queue_id!r} is not a Postfix queue id (letters and digits, e.g. 4F2B81C0A3D); "
                         "copy it from `mailfleet queue --host H --json` or `postqueue -p`")
    found = next((m for m in listing.messages if m.queue_id == queue_id), None)
    if found is None:
        raise QueueError(f"{host.name}: no message {queue_id} in the queue (it may have been delivered); "
                         "nothing was changed")
    detail = f"{queue_id} was in the {found.queue_name} queue"
    if found.queue_name == "hold":
        _run(conn, host, postfix_command(fleet, ["postsuper", "-H", queue_id]), what="postsuper -H")
        detail += "; released from hold"
    _run(conn, host, postfix_command(fleet, ["postqueue", "-i", queue_id]), what="postqueue -i")
    return QueueAction("push", (queue_id,), 1, detail + "; scheduled for delivery now (it still waits for a free "
                       "delivery slot to its destination)")


def run_queue_command(conn: Any, fleet: Fleet, host_name: str, *, pause_bulk: bool = False,
                      resume_bulk: bool = False, push: str | None = None) -> dict[str, Any]:
    """Gather, act (at most one action), gather again, and report."""
    chosen = [name for name, on in (("--pause-bulk", pause_bulk), ("--resume-bulk", resume_bulk),
                                    ("--push", bool(push))) if on]
    if len(chosen) > 1:
        raise QueueError(f"choose one of {', '.join(chosen)}; nothing was changed")
    host = _check_host(fleet, host_name)
    listing, limit = gather_queue(conn, fleet, host)
    action = None
    if pause_bulk:
        action = apply_pause_bulk(conn, fleet, host, listing)
    elif resume_bulk:
        action = apply_resume_bulk(conn, fleet, host, listing)
    elif push:
        action = apply_push(conn, fleet, host, listing, push)
    if action is not None and action.queue_ids:
        listing, limit = gather_queue(conn, fleet, host)
    return queue_report(fleet, host, listing, limit, action, findings=gather_transport_findings(conn, fleet, host))
