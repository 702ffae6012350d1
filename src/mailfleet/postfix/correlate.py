"""Join one host's events into messages: one queue file = one message row.

A message is keyed by ``(host, queue id)`` while it is in the queue. Queue ids are reused
once a file is removed, so the key is only valid between the first line and ``removed``: a
new ``client=``/``uid=`` line for a key whose message already has an origin starts a new
message (the previous ``removed`` line was lost or is outside the window).

Links made here are the ones visible on one host in log order: a bounce notification
(``sender non-delivery notification: NEWQID``) points the DSN message at its original; a
``client=... orig_queue_id=Q`` (XFORWARD from a content filter) marks a re-injection. Links
across hosts and through ``queued as NEWID`` replies need every host's rows and are made by
the store after the rows are written (``store.save_links``).

Pure: the correlator takes events, hands back rows, and keeps the in-flight messages; the
caller decides when to write (``drain``) and seeds messages still open from earlier runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailfleet.postfix.model import (
    ACTIVE,
    BOUNCE,
    CLIENT,
    DELIVERY,
    EXPIRED,
    MSGID,
    ORIGIN_BOUNCE,
    ORIGIN_PICKUP,
    ORIGIN_REINJECT,
    ORIGIN_SMTPD,
    PICKUP,
    REJECT,
    REMOVED,
    Event,
)
from mailfleet.postfix.parse_events import parse_delivery_fields, parse_relay, transport_of

# Positions in a message state list; the same order as the ``messages`` table columns.
M_ID, M_HOST, M_QID, M_FIRST, M_LAST, M_ORIGIN, M_SERVICE, M_CLIENT, M_CLIENT_IP, M_SASL = range(10)
M_MSGID, M_SENDER, M_SIZE, M_NRCPT, M_REMOVED, M_EXPIRED, M_BOUNCE_OF, M_ORIG_QID, M_PARENT = range(10, 19)
MESSAGE_COLUMNS = (
    "id", "host", "qid", "first_ts", "last_ts", "origin", "service", "client", "client_ip",
    "sasl_user", "message_id", "sender", "size", "nrcpt", "removed_ts", "expired_ts",
    "bounce_of", "orig_qid", "parent_id",
)  # fmt: skip
DELIVERY_COLUMNS = (
    "message_id", "host", "qid", "ts", "rcpt", "rcpt_domain", "orig_to", "relay", "relay_host",
    "relay_ip", "relay_port", "transport", "conn_use", "delay", "a", "b", "c", "d", "tls", "dsn",
    "status", "reply", "next_qid",
)  # fmt: skip
REJECT_COLUMNS = (
    "message_id", "host", "qid", "ts", "tag", "action", "stage", "client", "client_ip", "code",
    "dsn", "reason", "sender", "rcpt", "helo",
)  # fmt: skip


def _is_reinjection_service(tag: str) -> bool:
    """``postfix/10025/smtpd``: an smtpd on a numbered port is a content filter's return path."""
    return any(part.isdigit() for part in tag.split("/")[:-1])


class Correlator:
    """Stateful joiner. ``next_id`` is the first free ``messages.id``; ids are assigned here so
    delivery rows can reference their message before the message row is written."""

    def __init__(self, next_id: int, open_messages: Iterable[list] = ()) -> None:
        self.next_id = next_id
        self.open: dict[tuple[str, str], list] = {}
        for state in open_messages:
            self.open[(state[M_HOST], state[M_QID])] = list(state)
        self.done: list[list] = []
        self.deliveries: list[tuple] = []
        self.rejects: list[tuple] = []
        self.message_count = 0
        self._relays: dict[str, tuple[str, str | None, int | None]] = {}
        self._transports: dict[str, str] = {}
        self._reinjection_tags: dict[str, bool] = {}

    def _new(self, host: str, qid: str, ts: float) -> list:
        state: list = [None] * len(MESSAGE_COLUMNS)
        state[M_ID] = self.next_id
        self.next_id += 1
        self.message_count += 1
        state[M_HOST] = host
        state[M_QID] = qid
        state[M_FIRST] = ts
        state[M_LAST] = ts
        self.open[(host, qid)] = state
        return state

    def _get(self, host: str, qid: str, ts: float) -> list:
        state = self.open.get((host, qid))
        if state is None:
            return self._new(host, qid, ts)
        if ts > state[M_LAST]:
            state[M_LAST] = ts
        return state

    def _start(self, host: str, qid: str, ts: float) -> list:
        """A line that begins a queue file: a stale message under the same key is closed."""
        state = self.open.get((host, qid))
        if state is not None and state[M_ORIGIN] is not None and state[M_ORIGIN] != ORIGIN_BOUNCE:
            self.done.append(self.open.pop((host, qid)))
            state = None
        if state is None:
            return self._new(host, qid, ts)
        return state

    def delivery(
        self, ts: float, host: str, qid: str, tag: str, rcpt: str, orig_to: str | None, relay: str,
        conn_use: int | None, delay: float | None, a: float | None, b: float | None, c: float | None,
        d: float | None, tls: str | None, dsn: str | None, status: str, reply: str, next_qid: str | None,
    ) -> None:  # fmt: skip
        """One delivery attempt (the hot path: relay and transport parses are cached)."""
        state = self.open.get((host, qid))
        if state is None:
            state = self._new(host, qid, ts)
        elif ts > state[M_LAST]:
            state[M_LAST] = ts
        relay_parts = self._relays.get(relay)
        if relay_parts is None:
            relay_parts = parse_relay(relay)
            if len(self._relays) < 50000:  # bounded: relays repeat, but not without limit
                self._relays[relay] = relay_parts
        transport = self._transports.get(tag)
        if transport is None:
            transport = self._transports[tag] = transport_of(tag)
        at = rcpt.rfind("@")
        self.deliveries.append(
            (
                state[M_ID], host, qid, ts, rcpt, rcpt[at + 1 :].lower() if at != -1 else "",
                orig_to, relay, relay_parts[0], relay_parts[1], relay_parts[2], transport, conn_use,
                delay, a, b, c, d, tls, dsn, status, reply, next_qid,
            )  # fmt: skip
        )

    def delivery_unparsed(self, ts: float, host: str, qid: str, tag: str, rest: str) -> None:
        """A delivery line whose fields are parsed later, by ``expand_deliveries`` in the
        process that writes the rows (the parser child is the slower of the two). The row
        keeps its place among the parsed ones, so ids come out as with ``delivery``."""
        state = self.open.get((host, qid))
        if state is None:
            state = self._new(host, qid, ts)
        elif ts > state[M_LAST]:
            state[M_LAST] = ts
        self.deliveries.append((state[M_ID], host, qid, ts, tag, rest))

    def removed(self, ts: float, host: str, qid: str) -> None:
        state = self.open.pop((host, qid), None)
        if state is None:  # removal of a message whose other lines we never saw
            state = self._new(host, qid, ts)
            del self.open[(host, qid)]
        state[M_REMOVED] = ts
        if ts > state[M_LAST]:
            state[M_LAST] = ts
        self.done.append(state)

    def active(self, ts: float, host: str, qid: str, sender: str, size: int | None, nrcpt: int | None) -> None:
        state = self.open.get((host, qid))
        if state is None:
            state = self._new(host, qid, ts)
        elif ts > state[M_LAST]:
            state[M_LAST] = ts
        state[M_SENDER] = sender
        state[M_SIZE] = size
        state[M_NRCPT] = nrcpt

    def client(
        self, ts: float, host: str, qid: str, tag: str, name: str | None, ip: str | None, sasl: str | None,
        orig_qid: str | None,
    ) -> None:  # fmt: skip
        state = self._start(host, qid, ts)
        reinjected = orig_qid is not None
        if not reinjected:
            reinjected = self._reinjection_tags.get(tag)
            if reinjected is None:  # a handful of tags per host: cache the answer
                reinjected = _is_reinjection_service(tag)
                if len(self._reinjection_tags) < 1000:
                    self._reinjection_tags[tag] = reinjected
        state[M_ORIGIN] = ORIGIN_REINJECT if reinjected else ORIGIN_SMTPD
        state[M_SERVICE] = tag
        state[M_CLIENT] = name
        state[M_CLIENT_IP] = ip
        state[M_SASL] = sasl
        state[M_ORIG_QID] = orig_qid
        if orig_qid is not None:
            parent = self.open.get((host, orig_qid))
            if parent is not None:
                state[M_PARENT] = parent[M_ID]

    def message_id(self, ts: float, host: str, qid: str, value: str) -> None:
        self._get(host, qid, ts)[M_MSGID] = value

    def feed(self, event: Event) -> None:
        kind = event[0]
        if kind == DELIVERY:
            self.delivery(*event[1:])
        elif kind == ACTIVE:
            self.active(event[1], event[2], event[3], event[4], event[5], event[6])
        elif kind == MSGID:
            self.message_id(event[1], event[2], event[3], event[4])
        elif kind == REMOVED:
            self.removed(event[1], event[2], event[3])
        elif kind == CLIENT:
            self.client(*event[1:])
        elif kind == PICKUP:
            state = self._start(event[2], event[3], event[1])
            state[M_ORIGIN] = ORIGIN_PICKUP
            state[M_SERVICE] = event[4]
            if event[5] is not None:
                state[M_SENDER] = event[5]
        elif kind == REJECT:
            (_, ts, host, qid, tag, action, stage, client, client_ip, code, dsn, reason, sender, rcpt,
             helo) = event  # fmt: skip
            message_id = self._get(host, qid, ts)[M_ID] if qid is not None else None
            self.rejects.append(
                (message_id, host, qid, ts, tag, action, stage, client, client_ip, code, dsn, reason,
                 sender, rcpt, helo)  # fmt: skip
            )
        elif kind == BOUNCE:
            _, ts, host, qid, _kind, new_qid = event
            original = self._get(host, qid, ts)
            notice = self._get(host, new_qid, ts)
            notice[M_BOUNCE_OF] = original[M_ID]
            if notice[M_ORIGIN] is None:
                notice[M_ORIGIN] = ORIGIN_BOUNCE
        elif kind == EXPIRED:
            state = self._get(event[2], event[3], event[1])
            state[M_EXPIRED] = event[1]
            if event[4] is not None and state[M_SENDER] is None:
                state[M_SENDER] = event[4]

    def drain(self, final: bool = False) -> tuple[list[list], list[tuple], list[tuple]]:
        """Hand back finished messages and every delivery/reject so far; with ``final`` the
        still-open messages too (they stay open in the store and are seeded next run)."""
        done = self.done
        if final:
            done.extend(self.open.values())
            self.open = {}
        deliveries, rejects = self.deliveries, self.rejects
        self.done, self.deliveries, self.rejects = [], [], []
        return done, deliveries, rejects


UNPARSED_DELIVERY_LENGTH = 6


def expand_deliveries(
    rows: list[tuple], relays: dict[str, tuple[str, str | None, int | None]], transports: dict[str, str]
) -> list[tuple]:
    """Turn ``delivery_unparsed`` rows ``(message id, host, qid, ts, tag, rest)`` into full
    delivery rows (the others pass through). ``relays`` and ``transports`` are the caller's
    caches, kept across batches. The rest was checked to hold ``, status=``, so it parses."""
    if not any(len(row) == UNPARSED_DELIVERY_LENGTH for row in rows):
        return rows
    out = []
    for row in rows:
        if len(row) != UNPARSED_DELIVERY_LENGTH:
            out.append(row)
            continue
        message_id, host, qid, ts, tag, rest = row
        fields = parse_delivery_fields(rest)
        if fields is None:  # unreachable after the ", status=" check; never drop a counted row
            raise ValueError(f"delivery line no longer parses: {rest[:200]}")
        rcpt, orig_to, relay, conn_use, delay, a, b, c, d, tls, dsn, status, reply, next_qid = fields
        relay_parts = relays.get(relay)
        if relay_parts is None:
            relay_parts = parse_relay(relay)
            if len(relays) < 50000:
                relays[relay] = relay_parts
        transport = transports.get(tag)
        if transport is None:
            transport = transports[tag] = transport_of(tag)
        at = rcpt.rfind("@")
        out.append(
            (
                message_id, host, qid, ts, rcpt, rcpt[at + 1 :].lower() if at != -1 else "",
                orig_to, relay, relay_parts[0], relay_parts[1], relay_parts[2], transport, conn_use,
                delay, a, b, c, d, tls, dsn, status, reply, next_qid,
            )  # fmt: skip
        )
    return out
