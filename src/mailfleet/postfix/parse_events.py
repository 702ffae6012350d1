"""Message text → lifecycle event: what one Postfix line says about one message.

The text is what follows ``<tag>[pid]: ``. Only the lines that move a message through its
life become events (client, pickup, message-id, queue active, delivery attempt, bounce
notification, expiry, removal, reject); the rest (postscreen chatter, TLS, anvil, warnings)
return None and are counted, never fatal.

Events are plain tuples, not dataclasses: a million-line log makes 400k of them, and the
correlator reads them positionally. Their shapes are named in ``model.py``.

Formats follow Postfix's own source (``log_adhoc.c`` for deliveries): optional fields
(``orig_to``, ``conn_use``, ``tls``) may appear or not, in any order, so the delivery line is
split into ``key=value`` pairs rather than matched by one fixed regex. The daemon is the last
component of the tag, whatever the ``syslog_name`` (``postfix/submission/smtpd``,
``enforced-tls-smtp/smtp``, ``postfix/10025/smtpd``).
"""

from __future__ import annotations

import re

from mailfleet.postfix.model import (
    ACTIVE,
    BOUNCE,
    CLIENT,
    DELIVERY,
    EXPIRED,
    MSGID,
    PICKUP,
    REJECT,
    REMOVED,
    Event,
)

# Short ids: upper-case hex. Long ids (enable_long_queue_ids): base-52 digits and consonants,
# a "z" separator, then more of the same.
_QID = re.compile(
    r"[0-9A-F]{5,20}|[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]{6,}z[0-9BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy]+"
)
_NEXT_QID = re.compile(r"(?:queued as|forwarded as) ([0-9A-Za-z]+)")
_CLIENT = re.compile(r"([^\[\s]*)\[([^\]]*)\](?::(\d+))?")
_ANGLE_FIELD = re.compile(r"\b(from|to|helo)=<([^>]*)>")
_DSN = re.compile(r"\d\.\d{1,3}\.\d{1,3}")

_DELIVERY_DAEMONS = frozenset(
    {"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard", "relay", "qmgr"}
)
_REJECT_ACTIONS = ("reject", "milter-reject", "reject_warning", "discard", "hold", "filter", "redirect")


def parse_qid(text: str) -> tuple[str | None, str]:
    """Split ``QID: rest``; ``(None, text)`` when the text does not start with a queue id."""
    colon = text.find(": ")
    if colon < 5 or colon > 24:
        return None, text
    candidate = text[:colon]
    if _QID.fullmatch(candidate) is None:
        return None, text
    return candidate, text[colon + 2 :]


def transport_of(tag: str) -> str:
    """The transport a delivery ran on, from its syslog tag: the service part.

    ``postfix/smtp`` → ``smtp``; ``postfix/bulk/smtp`` → ``bulk``;
    ``enforced-tls-smtp/smtp`` → ``enforced-tls-smtp``; ``smtp`` → ``smtp``.
    """
    parts = tag.split("/")
    if len(parts) == 1:
        return tag
    if len(parts) == 2:
        return parts[1] if parts[0] == "postfix" else parts[0]
    return parts[-2]


def split_address(value: str) -> str:
    """``<a@b>`` → ``a@b``; bare values stay as they are."""
    if value.startswith("<"):
        end = value.find(">")
        return value[1:end] if end != -1 else value[1:]
    return value


def parse_relay(relay: str) -> tuple[str, str | None, int | None]:
    """``mx.example[192.0.2.1]:25`` → ``(mx.example, 192.0.2.1, 25)``; ``local`` → ``(local, None, None)``."""
    bracket = relay.find("[")
    if bracket == -1:
        return relay, None, None
    close = relay.find("]", bracket)
    if close == -1:
        return relay, None, None
    port: int | None = None
    if close + 1 < len(relay) and relay[close + 1] == ":":
        try:
            port = int(relay[close + 2 :])
        except ValueError:
            port = None
    return relay[:bracket], relay[bracket + 1 : close], port


# The layout Postfix writes (log_adhoc.c), optional fields in their usual places; anything
# else falls back to the key=value split below.
_DELIVERY_USUAL = re.compile(
    r"to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=([^,]+), (?:conn_use=(\d+), )?delay=([\d.]+), "
    r"delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+), (?:tls=([^,]+), )?dsn=(\d\.\d+\.\d+), status=(\S+)(?: \((.*)\))?$"
)


def parse_delivery_fields(rest: str) -> tuple | None:
    """``(rcpt, orig_to, relay, conn_use, delay, a, b, c, d, tls, dsn, status, reply, next_qid)``."""
    found = _DELIVERY_USUAL.match(rest)
    if found is None:
        event = parse_delivery(0.0, "", "", "", rest)
        return event[5:] if event is not None else None
    rcpt, orig_to, relay, conn_use, delay, a, b, c, d, tls, dsn, status, reply = found.groups()
    if reply is None:
        reply = ""
    next_qid = None
    if status == "sent" and " as " in reply:
        queued = _NEXT_QID.search(reply)
        if queued is not None:
            next_qid = queued.group(1)
    return (
        rcpt, orig_to, relay, int(conn_use) if conn_use is not None else None, float(delay), float(a),
        float(b), float(c), float(d), tls, dsn, status, reply, next_qid,
    )  # fmt: skip


def parse_delivery(ts: float, host: str, tag: str, qid: str, rest: str) -> Event | None:
    """``to=<r>[, orig_to=<o>], relay=R[, conn_use=N], delay=D, delays=a/b/c/d[, tls=T], dsn=X, status=S (reply)``."""
    status_at = rest.find(", status=")
    if status_at == -1:
        return None
    tail = rest[status_at + 9 :]
    space = tail.find(" ")
    if space == -1:
        status, reply = tail, ""
    else:
        status = tail[:space]
        reply = tail[space + 1 :]
        if reply.startswith("(") and reply.endswith(")"):
            reply = reply[1:-1]
    fields: dict[str, str] = {}
    for index, part in enumerate(rest[:status_at].split(", ")):
        key, sep, value = part.partition("=")
        if not sep:
            if index == 0:  # some agents log the bare recipient first
                fields["to"] = part
            continue
        fields[key] = value
    rcpt = fields.get("to")
    if rcpt is None:
        return None
    delays = fields.get("delays", "").split("/")
    try:
        a, b, c, d = (float(x) for x in delays) if len(delays) == 4 else (None, None, None, None)
        delay = float(fields["delay"]) if "delay" in fields else None
        conn_use = int(fields["conn_use"]) if "conn_use" in fields else None
    except ValueError:
        a = b = c = d = delay = None
        conn_use = None
    next_qid = None
    if status == "sent" and (" as " in reply):
        found = _NEXT_QID.search(reply)
        if found is not None:
            next_qid = found.group(1)
    orig_to = fields.get("orig_to")
    return (
        DELIVERY, ts, host, qid, tag,
        split_address(rcpt), split_address(orig_to) if orig_to is not None else None,
        fields.get("relay", ""), conn_use, delay, a, b, c, d, fields.get("tls"),
        fields.get("dsn"), status, reply, next_qid,
    )  # fmt: skip


def parse_reject(ts: float, host: str, tag: str, qid: str | None, rest: str) -> Event | None:
    """``ACTION: STAGE from CLIENT: CODE DSN reason; from=<s> to=<r> proto=P helo=<h>``.

    The same shape comes from smtpd, postscreen (comma-separated fields) and cleanup
    (``reject: header Subject: ... from host[ip]; from=<> to=<> ...: 5.7.1 text``).
    """
    colon = rest.find(": ")
    if colon == -1:
        return None
    action = rest[:colon]
    if action not in _REJECT_ACTIONS:
        return None
    body = rest[colon + 2 :]
    stage = body.split(" ", 1)[0]
    client_name = client_ip = None
    from_at = body.find(" from ")
    reason = body
    if from_at != -1:
        found = _CLIENT.match(body, from_at + 6)
        if found is not None:
            client_name = found.group(1) or None
            client_ip = found.group(2)
            after = found.end()
            reason = body[after + 2 :] if body.startswith(": ", after) else body[after:].lstrip("; ")
    fields_at = reason.rfind("; from=")
    envelope = reason[fields_at:] if fields_at != -1 else ""
    if fields_at != -1:
        reason = reason[:fields_at]
    if not envelope and "; from=<" in body:
        envelope = body[body.rfind("; from=<") :]
    found_fields = dict(_ANGLE_FIELD.findall(envelope))
    code = dsn = None
    words = reason.split(" ", 2)
    if words and len(words[0]) == 3 and words[0].isdigit():
        code = int(words[0])
        if len(words) > 1 and _DSN.fullmatch(words[1]):
            dsn = words[1]
    elif words and _DSN.fullmatch(words[0]):  # milter: "5.7.1 Blocked by ..."
        dsn = words[0]
    elif envelope and ": " in body[body.rfind("; from=<") :]:
        # cleanup puts the status after the envelope fields: "...helo=<h>: 5.7.1 text"
        trailing = body[body.rfind("; from=<") :].split(">: ", 1)
        if len(trailing) == 2:
            tail_words = trailing[1].split(" ", 1)
            if _DSN.fullmatch(tail_words[0]):
                dsn = tail_words[0]
            reason = f"{reason}: {trailing[1]}" if reason else trailing[1]
    return (
        REJECT, ts, host, qid, tag, action, stage, client_name, client_ip, code, dsn, reason.strip(),
        found_fields.get("from"), found_fields.get("to"), found_fields.get("helo"),
    )  # fmt: skip


def parse_client(ts: float, host: str, tag: str, qid: str, rest: str) -> Event:
    """``client=name[ip][, sasl_method=M, sasl_username=U][, orig_queue_id=Q, orig_client=C]``."""
    name = ip = sasl_user = orig_qid = None
    for part in rest.split(", "):
        key, _, value = part.partition("=")
        if key == "client":
            found = _CLIENT.match(value)
            if found is not None:
                name, ip = found.group(1) or None, found.group(2)
            else:
                name = value
        elif key == "sasl_username":
            sasl_user = value
        elif key == "orig_queue_id":
            orig_qid = value
    return (CLIENT, ts, host, qid, tag, name, ip, sasl_user, orig_qid)


_ACTIVE_USUAL = re.compile(r"from=<([^>]*)>, size=(\d+), nrcpt=(\d+) \(queue active\)$")
_CLIENT_USUAL = re.compile(r"client=([^\[\s,]*)\[([^\]]*)\](?::\d+)?(?:, sasl_method=[^,]*, sasl_username=(.*))?$")


def parse_active_fields(rest: str) -> tuple[str, int | None, int | None] | None:
    """``(sender, size, nrcpt)`` of a qmgr ``(queue active)`` line."""
    found = _ACTIVE_USUAL.match(rest)
    if found is not None:
        return found.group(1), int(found.group(2)), int(found.group(3))
    event = parse_active(0.0, "", "", rest)
    return event[4:] if event is not None else None  # type: ignore[return-value]


def parse_client_fields(tag: str, rest: str) -> tuple[str | None, str | None, str | None, str | None]:
    """``(client_name, client_ip, sasl_user, orig_qid)`` of an smtpd ``client=`` line."""
    found = _CLIENT_USUAL.match(rest)
    if found is not None:
        return found.group(1) or None, found.group(2), found.group(3), None
    return parse_client(0.0, "", tag, "", rest)[5:]  # type: ignore[return-value]


def parse_active(ts: float, host: str, qid: str, rest: str) -> Event | None:
    """qmgr ``from=<s>, size=N, nrcpt=N (queue active)``."""
    sender = size = nrcpt = None
    for part in rest.split(", "):
        key, _, value = part.partition("=")
        if key == "from":
            sender = split_address(value)
        elif key == "size":
            size = int(value) if value.isdigit() else None
        elif key == "nrcpt":
            number = value.split(" ", 1)[0]
            nrcpt = int(number) if number.isdigit() else None
    if sender is None:
        return None
    return (ACTIVE, ts, host, qid, sender, size, nrcpt)


def parse_event(ts: float, host: str, tag: str, text: str) -> Event | None:
    """One line's event, or None for lines that do not move a message (counted by the caller)."""
    if text.startswith("NOQUEUE: "):
        return parse_reject(ts, host, tag, None, text[9:])
    qid, rest = parse_qid(text)
    if qid is None:
        return None
    return parse_queue_event(ts, host, tag, qid, rest)


def parse_queue_event(ts: float, host: str, tag: str, qid: str, rest: str) -> Event | None:
    """The event of a line whose text is ``QID: rest`` (``qid`` may be ``NOQUEUE``)."""
    if qid == "NOQUEUE":
        return parse_reject(ts, host, tag, None, rest)
    slash = tag.rfind("/")
    daemon = tag[slash + 1 :] if slash != -1 else tag
    first = rest[:3]
    if first == "to=" or (daemon in _DELIVERY_DAEMONS and ", relay=" in rest and ", status=" in rest):
        return parse_delivery(ts, host, tag, qid, rest)
    if daemon == "qmgr":
        if rest == "removed":
            return (REMOVED, ts, host, qid)
        if rest.endswith("(queue active)"):
            return parse_active(ts, host, qid, rest)
        if "status=expired" in rest or "status=force-expired" in rest:
            found = _ANGLE_FIELD.search(rest)
            return (EXPIRED, ts, host, qid, found.group(2) if found else None)
        return None
    if daemon == "cleanup":
        if rest.startswith("message-id="):
            return (MSGID, ts, host, qid, split_address(rest[11:].strip()))
        return parse_reject(ts, host, tag, qid, rest)
    if daemon == "smtpd":
        if rest.startswith("client="):
            return parse_client(ts, host, tag, qid, rest)
        return parse_reject(ts, host, tag, qid, rest)
    if daemon == "bounce":
        kind, sep, new_qid = rest.rpartition(" notification: ")
        if sep and _QID.fullmatch(new_qid):
            return (BOUNCE, ts, host, qid, kind, new_qid)
        return None
    if daemon == "pickup":
        at = rest.find("from=<")
        return (PICKUP, ts, host, qid, tag, split_address(rest[at + 5 :]) if at != -1 else None)
    if daemon == "postsuper" and rest in ("removed", "Removed"):
        return (REMOVED, ts, host, qid)
    return None
