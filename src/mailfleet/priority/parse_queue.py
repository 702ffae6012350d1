"""``postqueue -j`` output -> the queue's shape by class (bulk/transactional) and transport.

Pure. ``postqueue -j`` prints one JSON object per queued message (Postfix 3.1+):
``{"queue_name", "queue_id", "arrival_time", "message_size", "forced_expire", "sender",
"recipients": [{"address", "delay_reason"?}]}``. It does not say which transport a message
will use, so the transport shown is the one mailfleet's rules choose for its sender (``bulk``
for bulk senders, ``default`` for the rest). Mail classified as bulk by a header rule only is
invisible here (the queue listing has no headers) and counts as transactional.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailfleet.priority.classify import BULK_TRANSPORT, classify_sender
from mailfleet.priority.rules import DEFAULT_ACTIVE_LIMIT

QUEUES = ("incoming", "active", "deferred", "hold", "maildrop")
CLASSES = ("transactional", "bulk")
MAX_LINE = 1_000_000  # a queue entry with thousands of recipients is still far below this
QUEUE_ID = re.compile(r"^[0-9A-Za-z]{6,32}$")


@dataclass(frozen=True)
class QueuedMessage:
    queue_id: str
    queue_name: str
    arrival_time: int
    size: int
    sender: str
    recipients: tuple[tuple[str, str], ...]  # (address, delay_reason or "")


@dataclass(frozen=True)
class QueueListing:
    messages: tuple[QueuedMessage, ...]
    errors: tuple[str, ...]


def parse_postqueue_json(text: str) -> QueueListing:
    """Every message of a ``postqueue -j`` listing; a bad line is reported, never fatal."""
    messages: list[QueuedMessage] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            errors.append(f"line {number}: longer than {MAX_LINE} characters; skipped")
            continue
        try:
            raw = json.loads(line)
            messages.append(_message(raw))
        except (ValueError, TypeError, KeyError) as exc:
            errors.append(f"line {number}: not a postqueue -j entry ({exc}); skipped")
    return QueueListing(tuple(messages), tuple(errors))


def _message(raw: Any) -> QueuedMessage:
    if not isinstance(raw, dict):
        raise TypeError("expected a JSON object")
    queue_id = str(raw["queue_id"])
    if not QUEUE_ID.match(queue_id):
        raise ValueError(f"queue id {queue_id!r} is not a Postfix queue id")
    recipients = tuple((str(r.get("address", "")), str(r.get("delay_reason", "")))
                       for r in raw.get("recipients", []) if isinstance(r, dict))
    return QueuedMessage(queue_id=queue_id, queue_name=str(raw["queue_name"]),
                         arrival_time=int(raw.get("arrival_time", 0)), size=int(raw.get("message_size", 0)),
                         sender=str(raw.get("sender", "")), recipients=recipients)


def class_of(message: QueuedMessage, addresses: Iterable[str], domains: Iterable[str]) -> str:
    return classify_sender(message.sender, frozenset(addresses), frozenset(domains))


def _empty_class() -> dict[str, Any]:
    return {"messages": 0, "recipients": 0, "bytes": 0, "by_queue": {q: 0 for q in QUEUES},
            "oldest_age_seconds": None, "deferred_reasons": {}}


def shape_queue(listing: QueueListing, addresses: Iterable[str], domains: Iterable[str], *, now: int,
                active_limit: int = DEFAULT_ACTIVE_LIMIT, top: int = 10) -> dict[str, Any]:
    """The queue by class, queue and transport, the busiest recipient domains per class, and
    warnings an operator acts on during a campaign."""
    addresses, domains = frozenset(addresses), frozenset(domains)
    classes = {name: _empty_class() for name in CLASSES}
    transports: Counter[str] = Counter()
    destinations: dict[str, Counter[str]] = {name: Counter() for name in CLASSES}
    reasons: dict[str, Counter[str]] = {name: Counter() for name in CLASSES}
    for message in listing.messages:
        cls = class_of(message, addresses, domains)
        entry = classes[cls]
        entry["messages"] += 1
        entry["recipients"] += len(message.recipients)
        entry["bytes"] += message.size
        entry["by_queue"][message.queue_name] = entry["by_queue"].get(message.queue_name, 0) + 1
        age = max(now - message.arrival_time, 0)
        if message.queue_name != "hold" and (entry["oldest_age_seconds"] is None or age > entry["oldest_age_seconds"]):
            entry["oldest_age_seconds"] = age
        transports[BULK_TRANSPORT if cls == "bulk" else "default"] += 1
        for address, reason in message.recipients:
            destinations[cls][address.rpartition("@")[2].lower() or "(none)"] += 1
            if reason:
                reasons[cls][_short_reason(reason)] += 1
    for cls in CLASSES:
        classes[cls]["top_destinations"] = [{"domain": d, "recipients": n} for d, n in destinations[cls].most_common(top)]
        classes[cls]["deferred_reasons"] = dict(reasons[cls].most_common(top))
    in_core = sum(classes[c]["by_queue"]["active"] for c in CLASSES)
    return {
        "total": len(listing.messages),
        "classes": classes,
        "transports": dict(sorted(transports.items())),
        "active": {"messages": in_core, "limit": active_limit},
        "warnings": _warnings(classes, in_core, active_limit),
        "errors": list(listing.errors),
    }


def _short_reason(reason: str) -> str:
    """Delay reasons without the varying parts (addresses, queue ids), so they group."""
    reason = re.sub(r"\[[0-9a-fA-F.:]+\](:\d+)?", "[...]", reason)
    return reason[:120]


def _warnings(classes: dict[str, Any], in_core: int, active_limit: int) -> list[str]:
    warnings = []
    if active_limit and in_core >= 0.8 * active_limit:
        warnings.append(
            f"the active queue holds {in_core} of {active_limit} messages: new mail, resets included, will wait in "
            "the incoming queue; pause bulk (`mailfleet queue --host H --pause-bulk`) or let the campaign drain")
    tx = classes["transactional"]
    if tx["by_queue"]["incoming"] > 0 and classes["bulk"]["by_queue"]["active"] > 0.5 * max(active_limit, 1):
        warnings.append(f"{tx['by_queue']['incoming']} transactional message(s) wait in the incoming queue behind "
                        "a bulk backlog in the active queue")
    if tx["by_queue"]["deferred"]:
        warnings.append(f"{tx['by_queue']['deferred']} transactional message(s) are deferred; `--push QUEUE_ID` "
                        "retries one now")
    return warnings


def select_ids(listing: QueueListing, addresses: Iterable[str], domains: Iterable[str], *, cls: str,
               queues: Iterable[str]) -> list[str]:
    """Queue ids of one class in the given queues (what pause and resume act on)."""
    wanted = set(queues)
    addresses, domains = frozenset(addresses), frozenset(domains)
    return [m.queue_id for m in listing.messages
            if m.queue_name in wanted and class_of(m, addresses, domains) == cls]
