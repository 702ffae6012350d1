"""``trace``: find messages by message-id, queue id, sender or recipient, then follow each
one across the fleet: content-filter re-injections, relay hand-offs to other fleet hosts
(``queued as NEWID``), and bounce notifications, both up and down the chain.

Each hit becomes one trace: the connected group of queue files (on any host) that carry the
same message, each with its own timeline (accepted, delivery attempts with relay, delays,
DSN, status and reply, bounce, expiry, removal). All lookups use indexes; a trace touches a
few dozen rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mailfleet.errors import MailfleetError
from mailfleet.postfix.correlate import MESSAGE_COLUMNS
from mailfleet.postfix.model import TracedMessage, TraceStep

MAX_MESSAGES_PER_TRACE = 200


class TraceQueryError(MailfleetError):
    """The trace query is missing or ambiguous."""


def _seed_ids(
    conn: sqlite3.Connection,
    *,
    message_id: str | None,
    queue_id: str | None,
    sender: str | None,
    recipient: str | None,
    since: float | None,
    limit: int,
) -> list[int]:
    given = [name for name, value in (("--message-id", message_id), ("--queue-id", queue_id),
                                      ("--sender", sender), ("--recipient", recipient)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise TraceQueryError(
            f"trace needs exactly one of --message-id, --queue-id, --sender, --recipient (got "
            f"{', '.join(given) or 'none'}); e.g. `mailfleet trace --db logs.db --recipient user@example.org`."
        )
    floor = since if since is not None else float("-inf")
    if message_id is not None:
        value = message_id.strip().strip("<>")
        sql = "SELECT id FROM messages WHERE message_id = ? AND first_ts >= ? ORDER BY first_ts DESC LIMIT ?"
    elif queue_id is not None:
        value = queue_id.strip()
        sql = "SELECT id FROM messages WHERE qid = ? AND first_ts >= ? ORDER BY first_ts DESC LIMIT ?"
    elif sender is not None:
        value = sender.strip().strip("<>")
        sql = (
            "SELECT id FROM messages WHERE sender = ? COLLATE NOCASE AND first_ts >= ? "
            "ORDER BY first_ts DESC LIMIT ?"
        )
    else:
        value = (recipient or "").strip().strip("<>")
        sql = (
            "SELECT message_id FROM deliveries WHERE rcpt = ? COLLATE NOCASE AND ts >= ? "
            "GROUP BY message_id ORDER BY MAX(ts) DESC LIMIT ?"
        )
    return [row[0] for row in conn.execute(sql, (value, floor, limit))]


def _component(conn: sqlite3.Connection, seed: int) -> list[int]:
    """Every message linked to ``seed`` through parent/child and bounce links."""
    seen = {seed}
    todo = [seed]
    while todo and len(seen) < MAX_MESSAGES_PER_TRACE:
        current = todo.pop()
        neighbours = conn.execute(
            """
            SELECT parent_id FROM messages WHERE id = ? AND parent_id IS NOT NULL
            UNION SELECT bounce_of FROM messages WHERE id = ? AND bounce_of IS NOT NULL
            UNION SELECT id FROM messages WHERE parent_id = ?
            UNION SELECT id FROM messages WHERE bounce_of = ?
            UNION SELECT next_message_id FROM deliveries WHERE message_id = ? AND next_message_id IS NOT NULL
            """,
            (current, current, current, current, current),
        ).fetchall()
        for (neighbour,) in neighbours:
            if neighbour not in seen:
                seen.add(neighbour)
                todo.append(neighbour)
    return sorted(seen)


def _message_steps(conn: sqlite3.Connection, row: dict[str, Any], names: dict[int, str]) -> tuple[TraceStep, ...]:
    host, qid = row["host"], row["qid"]
    steps: list[TraceStep] = []
    origin = row["origin"]
    accepted: dict[str, Any] = {
        "origin": origin, "message_id": row["message_id"], "sender": row["sender"], "size": row["size"],
        "nrcpt": row["nrcpt"],
    }  # fmt: skip
    if row["client"] is not None or row["client_ip"] is not None:
        accepted["client"] = f"{row['client'] or 'unknown'}[{row['client_ip'] or ''}]"
    if row["sasl_user"]:
        accepted["sasl_user"] = row["sasl_user"]
    if row["service"]:
        accepted["service"] = row["service"]
    if row["parent_id"] is not None:
        accepted["from_message"] = names.get(row["parent_id"])
    if row["bounce_of"] is not None:
        accepted["bounce_of"] = names.get(row["bounce_of"])
    steps.append(TraceStep(row["first_ts"], host, qid, "accepted", accepted))
    for reject in conn.execute(
        "SELECT ts, action, stage, reason, client FROM rejects WHERE message_id = ? ORDER BY ts, id", (row["id"],)
    ):
        steps.append(TraceStep(reject[0], host, qid, reject[1], {"stage": reject[2], "reason": reject[3]}))
    attempts: dict[str, int] = {}
    for d in conn.execute(
        """SELECT ts, rcpt, orig_to, relay, transport, delay, a, b, c, d, dsn, status, reply, next_message_id,
                  tls, conn_use
           FROM deliveries WHERE message_id = ? ORDER BY ts, id""",
        (row["id"],),
    ):
        attempts[d[1]] = attempts.get(d[1], 0) + 1
        detail: dict[str, Any] = {
            "rcpt": d[1], "relay": d[3], "transport": d[4], "delay": d[5],
            "delays": None if d[6] is None else [d[6], d[7], d[8], d[9]],
            "dsn": d[10], "status": d[11], "reply": d[12], "attempt": attempts[d[1]],
        }  # fmt: skip
        if d[2]:
            detail["orig_to"] = d[2]
        if d[14]:
            detail["tls"] = d[14]
        if d[13] is not None:
            detail["next"] = names.get(d[13])
        steps.append(TraceStep(d[0], host, qid, "delivery", detail))
    for child_id, child_ts in conn.execute(
        "SELECT id, first_ts FROM messages WHERE bounce_of = ? ORDER BY first_ts", (row["id"],)
    ):
        steps.append(TraceStep(child_ts, host, qid, "bounce", {"notification": names.get(child_id)}))
    if row["expired_ts"] is not None:
        steps.append(TraceStep(row["expired_ts"], host, qid, "expired", {"returned_to": row["sender"]}))
    if row["removed_ts"] is not None:
        steps.append(TraceStep(row["removed_ts"], host, qid, "removed", {}))
    return tuple(sorted(steps, key=lambda s: s.ts))


def load_trace(
    conn: sqlite3.Connection,
    *,
    message_id: str | None = None,
    queue_id: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    since: float | None = None,
    limit: int = 20,
) -> list[list[TracedMessage]]:
    """Traces for the query, newest first; each is its messages in time order."""
    seeds = _seed_ids(conn, message_id=message_id, queue_id=queue_id, sender=sender, recipient=recipient,
                      since=since, limit=limit)  # fmt: skip
    traces: list[list[TracedMessage]] = []
    covered: set[int] = set()
    columns = ", ".join(MESSAGE_COLUMNS)
    for seed in seeds:
        if seed in covered:
            continue
        ids = _component(conn, seed)
        covered.update(ids)
        marks = ", ".join("?" * len(ids))
        rows = [
            dict(zip(MESSAGE_COLUMNS, values, strict=True))
            for values in conn.execute(f"SELECT {columns} FROM messages WHERE id IN ({marks})", ids)
        ]
        names = {row["id"]: f"{row['host']}/{row['qid']}" for row in rows}
        messages = [
            TracedMessage(
                id=row["id"], host=row["host"], qid=row["qid"], message_id=row["message_id"], sender=row["sender"],
                origin=row["origin"], client=row["client"], first_ts=row["first_ts"], parent_id=row["parent_id"],
                bounce_of=row["bounce_of"], steps=_message_steps(conn, row, names),
            )  # fmt: skip
            for row in rows
        ]
        messages.sort(key=lambda m: (m.first_ts, m.id))
        traces.append(messages)
    return traces
