"""Fleet-wide summary of the log store: the ``logs.summary`` contract plus breakdowns.

Counting rules (they differ from pflogsumm on purpose, because a fleet relays its own mail):

* ``received`` — messages that entered the fleet from outside: accepted by smtpd or picked
  up locally, and not the next-hop copy of another fleet message (``parent_id`` is NULL).
  Content-filter re-injections, relay hand-offs between fleet hosts and bounce notices
  Postfix wrote itself are not "received".
* ``delivered`` — final deliveries: ``status=sent`` attempts that did not hand the message
  to another message we track (a fleet relay, a content filter, a local forward).
* ``forwarded`` — ``status=sent`` hand-offs to another fleet host, plus local(8)
  ``forwarded as``; same-host content-filter hand-offs count in neither.
* ``deferred`` — messages with at least one deferred attempt (``deferrals`` counts attempts).
* ``bounced`` — bounced recipient deliveries; ``rejected`` — reject and milter-reject
  (``reject_warning`` etc. are listed under ``reject_actions``); ``expired`` — messages
  returned to sender after the queue lifetime.

Queue delay per transport is the ``b`` of ``delays=a/b/c/d`` (time in the active queue,
waiting for a delivery agent): high ``b`` on the transactional transport while ``bulk`` is
busy means bulk is starving it. ``relay=none`` rows are left out: their ``b`` measures a
destination marked dead, not a wait for a process.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from typing import Any

_ADDRESS = re.compile(r"<[^<>@\s]*@[^<>\s]*>")
_NOISE = re.compile(r"\b(?=[0-9A-Za-z+/=._-]*\d)[0-9A-Za-z+/=._-]{8,}\b|\[[^\]]*\]")


def normalise_reason(reply: str) -> str:
    """Group deferral replies: drop the ``host X said:`` prefix, ids, numbers and brackets."""
    text = reply
    said = text.find(" said: ")
    if said != -1 and text.startswith("host "):
        text = text[said + 7 :]
    text = text.replace(" (in reply to ", " (").strip()
    text = _NOISE.sub("…", _ADDRESS.sub("<…>", text))
    return text[:160]


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def load_summary(conn: sqlite3.Connection, since: float | None = None, top: int = 10) -> dict[str, Any]:
    """The contract's seven counts first, then per day, domain, relay, reasons, queue delay."""
    ts_min = since if since is not None else float("-inf")
    one = conn.execute
    received = one(
        "SELECT COUNT(*) FROM messages WHERE origin IN ('smtpd', 'pickup') AND parent_id IS NULL AND first_ts >= ?",
        (ts_min,),
    ).fetchone()[0]
    sent_rows = one(
        """
        SELECT SUM(d.next_message_id IS NULL AND d.reply NOT LIKE 'forwarded as %'),
               SUM((d.next_message_id IS NOT NULL AND n.host != d.host) OR d.reply LIKE 'forwarded as %')
        FROM deliveries AS d LEFT JOIN messages AS n ON n.id = d.next_message_id
        WHERE d.status = 'sent' AND d.ts >= ?
        """,
        (ts_min,),
    ).fetchone()
    deferred, deferrals = one(
        "SELECT COUNT(DISTINCT message_id), COUNT(*) FROM deliveries WHERE status = 'deferred' AND ts >= ?",
        (ts_min,),
    ).fetchone()
    bounced = one("SELECT COUNT(*) FROM deliveries WHERE status = 'bounced' AND ts >= ?", (ts_min,)).fetchone()[0]
    reject_actions = dict(one("SELECT action, COUNT(*) FROM rejects WHERE ts >= ? GROUP BY action", (ts_min,)))
    expired = one("SELECT COUNT(*) FROM messages WHERE expired_ts >= ?", (ts_min,)).fetchone()[0]
    summary: dict[str, Any] = {
        "received": received,
        "delivered": sent_rows[0] or 0,
        "forwarded": sent_rows[1] or 0,
        "deferred": deferred,
        "bounced": bounced,
        "rejected": reject_actions.get("reject", 0) + reject_actions.get("milter-reject", 0),
        "expired": expired,
        "deferrals": deferrals,
        "reject_actions": reject_actions,
        "hosts": [row[0] for row in one("SELECT DISTINCT host FROM messages ORDER BY host")],
    }
    summary["per_day"] = _per_day(conn, ts_min)
    summary["per_domain"] = _final_breakdown(conn, "rcpt_domain", "domain", ts_min, top)
    summary["per_relay"] = _final_breakdown(conn, "relay_host", "relay", ts_min, top)
    summary["top_deferral_reasons"] = _deferral_reasons(conn, ts_min, top)
    summary["queue_delay"] = load_queue_delay(conn, ts_min)
    return summary


def _per_day(conn: sqlite3.Connection, ts_min: float) -> list[dict[str, Any]]:
    days: dict[str, dict[str, Any]] = {}

    def row(day: str) -> dict[str, Any]:
        return days.setdefault(
            day, {"day": day, "received": 0, "delivered": 0, "deferred": 0, "bounced": 0, "rejected": 0}
        )

    for day, count in conn.execute(
        "SELECT date(first_ts, 'unixepoch'), COUNT(*) FROM messages "
        "WHERE origin IN ('smtpd', 'pickup') AND parent_id IS NULL AND first_ts >= ? GROUP BY 1",
        (ts_min,),
    ):
        row(day)["received"] = count
    for day, status, count in conn.execute(
        "SELECT date(ts, 'unixepoch'), status, COUNT(*) FROM deliveries WHERE ts >= ? "
        "AND status IN ('deferred', 'bounced') GROUP BY 1, 2",
        (ts_min,),
    ):
        row(day)[status] = count
    for day, count in conn.execute(
        "SELECT date(ts, 'unixepoch'), COUNT(*) FROM deliveries WHERE ts >= ? AND status = 'sent' "
        "AND next_message_id IS NULL AND reply NOT LIKE 'forwarded as %' GROUP BY 1",
        (ts_min,),
    ):
        row(day)["delivered"] = count
    for day, count in conn.execute(
        "SELECT date(ts, 'unixepoch'), COUNT(*) FROM rejects WHERE ts >= ? "
        "AND action IN ('reject', 'milter-reject') GROUP BY 1",
        (ts_min,),
    ):
        row(day)["rejected"] = count
    return [days[day] for day in sorted(days)]


def _final_breakdown(conn: sqlite3.Connection, column: str, label: str, ts_min: float, top: int) -> list[dict]:
    """Per recipient domain or relay: final attempts only (hand-offs inside the fleet excluded)."""
    rows = conn.execute(
        f"""
        SELECT {column}, SUM(status = 'sent'), SUM(status = 'deferred'), SUM(status = 'bounced'),
               AVG(CASE WHEN status = 'sent' THEN delay END), MAX(CASE WHEN status = 'sent' THEN delay END)
        FROM deliveries
        WHERE ts >= ? AND next_message_id IS NULL AND status IN ('sent', 'deferred', 'bounced')
        GROUP BY {column} ORDER BY COUNT(*) DESC, {column} LIMIT ?
        """,
        (ts_min, top),
    ).fetchall()
    return [
        {label: key, "delivered": sent or 0, "deferred": deferred or 0, "bounced": bounced or 0,
         "avg_delay": round(avg, 3) if avg is not None else None, "max_delay": peak}
        for key, sent, deferred, bounced, avg, peak in rows
    ]  # fmt: skip


def _deferral_reasons(conn: sqlite3.Connection, ts_min: float, top: int) -> list[dict[str, Any]]:
    counts: Counter[str] = Counter()
    for (reply,) in conn.execute("SELECT reply FROM deliveries WHERE status = 'deferred' AND ts >= ?", (ts_min,)):
        counts[normalise_reason(reply or "")] += 1
    return [{"reason": reason, "count": count} for reason, count in counts.most_common(top)]


def load_queue_delay(conn: sqlite3.Connection, ts_min: float = float("-inf")) -> list[dict[str, Any]]:
    """Per transport: attempts and the p50/p95/max of ``b`` (seconds in the active queue)."""
    per: dict[str, list[float]] = {}
    for transport, b in conn.execute(
        "SELECT transport, b FROM deliveries WHERE b IS NOT NULL AND relay != 'none' AND ts >= ?", (ts_min,)
    ):
        per.setdefault(transport, []).append(b)
    result = []
    for transport in sorted(per):
        values = sorted(per[transport])
        result.append(
            {"transport": transport, "deliveries": len(values), "b_p50": _percentile(values, 0.5),
             "b_p95": _percentile(values, 0.95), "b_max": values[-1]}  # fmt: skip
        )
    return result
