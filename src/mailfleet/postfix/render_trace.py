"""Trace output: a readable timeline per message, and the ``--json`` shape.

Pure: takes the traced messages, returns text or plain data.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mailfleet.postfix.model import TracedMessage, TraceStep


def iso(ts: float) -> str:
    """UTC ISO 8601 with milliseconds only when the log had them."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if ts % 1 else "seconds")
    return text.replace("+00:00", "Z")


def _timeline(trace: list[TracedMessage]) -> list[TraceStep]:
    steps = [step for message in trace for step in message.steps]
    order = {"accepted": 0, "reject": 1, "milter-reject": 1, "delivery": 2, "bounce": 3, "expired": 4, "removed": 5}
    steps.sort(key=lambda s: (s.ts, order.get(s.what, 2)))
    return steps


def render_trace_json(traces: list[list[TracedMessage]], query: dict[str, Any]) -> dict[str, Any]:
    result = []
    for trace in traces:
        names = {m.id: f"{m.host}/{m.qid}" for m in trace}
        first = trace[0]
        result.append(
            {
                "message_id": next((m.message_id for m in trace if m.message_id), None),
                "sender": first.sender,
                "hosts": sorted({m.host for m in trace}),
                "messages": [
                    {"host": m.host, "qid": m.qid, "origin": m.origin, "client": m.client,
                     "message_id": m.message_id, "sender": m.sender, "first_seen": iso(m.first_ts),
                     "parent": names.get(m.parent_id) if m.parent_id is not None else None,
                     "bounce_of": names.get(m.bounce_of) if m.bounce_of is not None else None}
                    for m in trace
                ],  # fmt: skip
                "timeline": [
                    {"ts": iso(step.ts), "host": step.host, "qid": step.qid, "event": step.what, **step.detail}
                    for step in _timeline(trace)
                ],
            }
        )
    return {"query": query, "traces": result}


def _describe(step: TraceStep) -> str:
    d = step.detail
    if step.what == "accepted":
        origin = d.get("origin")
        if d.get("bounce_of"):
            text = f"bounce notification about {d['bounce_of']}"
        elif d.get("from_message"):
            text = f"handed over by {d['from_message']}"
            if d.get("client"):
                text += f" (client {d['client']})"
        elif origin == "pickup":
            text = "picked up (local submission)"
        elif d.get("client"):
            text = f"accepted from {d['client']}"
            if d.get("sasl_user"):
                text += f" as {d['sasl_user']}"
        else:
            text = "first seen (accepting line not in the logs)"
        if d.get("service"):
            text += f" via {d['service']}"
        parts = [text]
        if d.get("sender") is not None:
            parts.append(f"from=<{d['sender']}>")
        if d.get("message_id"):
            parts.append(f"message-id=<{d['message_id']}>")
        if d.get("size") is not None:
            parts.append(f"size={d['size']}")
        return ", ".join(parts)
    if step.what == "delivery":
        delays = "/".join(f"{x:g}" for x in d["delays"]) if d.get("delays") else "-"
        text = (
            f"{d['status']} to <{d['rcpt']}> (attempt {d['attempt']}) via {d['relay']} [{d['transport']}] "
            f"dsn={d.get('dsn')} delay={d.get('delay')} delays={delays}"
        )
        if d.get("next"):
            text += f" → {d['next']}"
        if d.get("reply"):
            text += f"\n{'':>36}reply: {d['reply']}"
        return text
    if step.what == "bounce":
        return f"bounce notification {d.get('notification')} sent to the sender"
    if step.what == "expired":
        return f"expired, returned to <{d.get('returned_to')}>"
    if step.what == "removed":
        return "removed from the queue"
    return f"{step.what} at {d.get('stage')}: {d.get('reason')}"


_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}


def _printable(text: str) -> str:
    """Log text comes from strangers (HELO names, remote replies): no terminal escapes."""
    return text.translate(_CONTROL)


def render_trace_text(traces: list[list[TracedMessage]]) -> str:
    if not traces:
        return "no message matches"
    blocks = []
    for number, trace in enumerate(traces, start=1):
        message_id = next((m.message_id for m in trace if m.message_id), None)
        hosts = " → ".join(dict.fromkeys(f"{m.host}/{m.qid}" for m in trace))
        lines = [f"Trace {number}: message-id <{message_id or '?'}>  [{hosts}]"]
        for step in _timeline(trace):
            where = f"{step.host}/{step.qid}"
            described = "\n".join(_printable(part) for part in _describe(step).split("\n"))
            lines.append(f"  {iso(step.ts):<24} {where:<28} {described}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
