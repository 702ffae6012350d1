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
from datetime import date, timedelta
from typing import Any

_EPOCH = date(1970, 1, 1)
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


# kind: 0 final delivery, 1 forwarded to another fleet host (or local ``forwarded as``),
# 2 handed to the same host (content filter); only linked rows pay for the subquery.
_DELIVERY_ROLLUP = """
    SELECT CAST(ts / 86400 AS INTEGER), rcpt_domain, relay_host, status,
           CASE WHEN next_message_id IS NULL THEN (reply LIKE 'forwarded as %')
                WHEN (SELECT host FROM messages WHERE id = next_message_id) != deliveries.host THEN 1
                ELSE 2 END,
           COUNT(*), SUM(delay), MAX(delay)
    FROM deliveries
    WHERE ts >= ? AND status IN ('sent', 'deferred', 'bounced')
    GROUP BY 1, 2, 3, 4, 5
"""


def load_summary(conn: sqlite3.Connection, since: float | None = None, top: int = 10) -> dict[str, Any]:
    """The contract's seven counts first, then per day, domain, relay, reasons, queue delay.

    Deliveries are read in one grouped scan and folded here, so the summary of a
    million-line day costs a few table scans, not one per breakdown.
    """
    ts_min = since if since is not None else float("-inf")
    days: dict[int, dict[str, Any]] = {}

    def day_row(day_number: int) -> dict[str, Any]:
        """Rows are grouped by UTC day number (ts // 86400): cheaper than date() per row."""
        row = days.get(day_number)
        if row is None:
            day = (_EPOCH + timedelta(days=day_number)).isoformat()
            row = days[day_number] = {"day": day, "received": 0, "delivered": 0, "deferred": 0, "bounced": 0,
                                      "rejected": 0}  # fmt: skip
        return row

    totals = {"delivered": 0, "forwarded": 0, "bounced": 0, "deferrals": 0}
    domains: dict[str, list[float]] = {}
    relays: dict[str, list[float]] = {}
    for day, domain, relay, status, kind, count, delay_sum, delay_max in conn.execute(_DELIVERY_ROLLUP, (ts_min,)):
        if status == "sent":
            if kind == 0:
                totals["delivered"] += count
                day_row(day)["delivered"] += count
            elif kind == 1:
                totals["forwarded"] += count
        elif status == "bounced":
            totals["bounced"] += count
            day_row(day)["bounced"] += count
        else:
            totals["deferrals"] += count
            day_row(day)["deferred"] += count
        if kind != 0:
            continue
        for table, key in ((domains, domain), (relays, relay)):
            # sent, deferred, bounced, sum of sent delays, max sent delay
            row = table.setdefault(key or "", [0, 0, 0, 0.0, None])
            row[("sent", "deferred", "bounced").index(status)] += count
            if status == "sent" and delay_sum is not None:
                row[3] += delay_sum
                row[4] = delay_max if row[4] is None else max(row[4], delay_max)
    received = 0
    for day, count in conn.execute(
        "SELECT CAST(first_ts / 86400 AS INTEGER), COUNT(*) FROM messages "
        "WHERE origin IN ('smtpd', 'pickup') AND parent_id IS NULL AND first_ts >= ? GROUP BY 1",
        (ts_min,),
    ):
        received += count
        day_row(day)["received"] = count
    reject_actions: dict[str, int] = {}
    for day, action, count in conn.execute(
        "SELECT CAST(ts / 86400 AS INTEGER), action, COUNT(*) FROM rejects WHERE ts >= ? GROUP BY 1, 2", (ts_min,)
    ):
        reject_actions[action] = reject_actions.get(action, 0) + count
        if action in ("reject", "milter-reject"):
            day_row(day)["rejected"] += count
    deferred = conn.execute(
        "SELECT COUNT(DISTINCT message_id) FROM deliveries WHERE status = 'deferred' AND ts >= ?", (ts_min,)
    ).fetchone()[0]
    expired = conn.execute("SELECT COUNT(*) FROM messages WHERE expired_ts >= ?", (ts_min,)).fetchone()[0]
    return {
        "received": received,
        "delivered": totals["delivered"],
        "forwarded": totals["forwarded"],
        "deferred": deferred,
        "bounced": totals["bounced"],
        "rejected": reject_actions.get("reject", 0) + reject_actions.get("milter-reject", 0),
        "expired": expired,
        "deferrals": totals["deferrals"],
        "reject_actions": dict(sorted(reject_actions.items())),
        "hosts": [row[0] for row in conn.execute("SELECT DISTINCT host FROM messages ORDER BY host")],
        "per_day": [days[day] for day in sorted(days)],
        "per_domain": _breakdown(domains, "domain", top),
        "per_relay": _breakdown(relays, "relay", top),
        "top_deferral_reasons": _deferral_reasons(conn, ts_min, top),
        "queue_delay": load_queue_delay(conn, ts_min),
    }


def _breakdown(table: dict[str, list[float]], label: str, top: int) -> list[dict[str, Any]]:
    """Per recipient domain or relay: final attempts only (hand-offs inside the fleet excluded)."""
    ranked = sorted(table.items(), key=lambda item: (-(item[1][0] + item[1][1] + item[1][2]), item[0]))[:top]
    return [
        {label: key, "delivered": int(sent), "deferred": int(deferred), "bounced": int(bounced),
         "avg_delay": round(delay_sum / sent, 3) if sent else None, "max_delay": delay_max}
        for key, (sent, deferred, bounced, delay_sum, delay_max) in ranked
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


def load_queue_delay_series(
    conn: sqlite3.Connection, since: float | None = None, bucket: int = 3600
) -> list[dict[str, Any]]:
    """Per time bucket (default hourly, UTC) and transport: attempts and p50/p95/max of ``b``.

    The chart that shows starvation: transactional ``b`` climbing while ``bulk`` is busy.
    For dashboards and the HTML report; ``relay=none`` rows are left out as above.
    """
    from datetime import datetime, timezone

    per: dict[tuple[int, str], list[float]] = {}
    for start, transport, b in conn.execute(
        "SELECT CAST(ts / ? AS INTEGER) * ?, transport, b FROM deliveries "
        "WHERE b IS NOT NULL AND relay != 'none' AND ts >= ?",
        (bucket, bucket, since if since is not None else float("-inf")),
    ):
        per.setdefault((start, transport), []).append(b)
    series = []
    for (start, transport), values in sorted(per.items()):
        values.sort()
        series.append(
            {"bucket": datetime.fromtimestamp(start, tz=timezone.utc).isoformat().replace("+00:00", "Z"),
             "transport": transport, "deliveries": len(values), "b_p50": _percentile(values, 0.5),
             "b_p95": _percentile(values, 0.95), "b_max": values[-1]}  # fmt: skip
        )
    return series
