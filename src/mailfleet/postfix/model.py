"""Names for the shapes that flow from a log line to the SQLite store and back to a trace.

Events are tuples for speed (a million-line log yields hundreds of thousands); their first
item is one of the kinds below and the positions are documented here, once:

=========  ===========================================================================
kind       fields after ``(kind, ts, host, qid, ...)``
=========  ===========================================================================
client     tag, client_name, client_ip, sasl_user, orig_qid          (smtpd ``client=``)
pickup     tag, sender                                                (local submission)
msgid      message_id                                                 (cleanup)
active     sender, size, nrcpt                                        (qmgr, every retry)
delivery   tag, rcpt, orig_to, relay, conn_use, delay, a, b, c, d, tls, dsn, status,
           reply, next_qid                                            (one attempt, one rcpt)
removed    —                                                          (qmgr/postsuper)
expired    sender                                                     (qmgr returned to sender)
bounce     kind, new_qid                     (``sender non-delivery notification: NEWQID``)
reject     tag, action, stage, client_name, client_ip, code, dsn, reason, sender, rcpt, helo
           (qid may be None: ``NOQUEUE``)
=========  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIENT = "client"
PICKUP = "pickup"
MSGID = "msgid"
ACTIVE = "active"
DELIVERY = "delivery"
REMOVED = "removed"
EXPIRED = "expired"
BOUNCE = "bounce"
REJECT = "reject"

Event = tuple[Any, ...]

# Where a message came from (messages.origin).
ORIGIN_SMTPD = "smtpd"  # accepted over SMTP from a client
ORIGIN_PICKUP = "pickup"  # local submission (sendmail/maildrop)
ORIGIN_REINJECT = "reinject"  # came back from a content filter on the same host
ORIGIN_BOUNCE = "bounce"  # a DSN Postfix generated about another message


@dataclass(frozen=True)
class IngestCounts:
    """What one ingest did, for the command's report; ``unparsed`` lines had no recognisable
    envelope, ``other`` lines had one but say nothing about a message's life."""

    source: str
    lines: int = 0
    skipped: int = 0
    unparsed: int = 0
    other: int = 0
    events: int = 0
    messages: int = 0
    deliveries: int = 0
    rejects: int = 0
    links: int = 0
    note: str = ""
    unparsed_samples: tuple[str, ...] = ()
    peak_rss_mb: float = 0.0  # of the parsing process (a child for big files)


@dataclass(frozen=True)
class TraceStep:
    """One line of a message's timeline."""

    ts: float
    host: str
    qid: str
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TracedMessage:
    """One queue file on one host, with how it relates to the others in the trace."""

    id: int
    host: str
    qid: str
    message_id: str | None
    sender: str | None
    origin: str | None
    client: str | None
    first_ts: float
    parent_id: int | None
    bounce_of: int | None
    steps: tuple[TraceStep, ...]
