"""``dmarc.fetch``: read the report mailbox over IMAP with TLS and ingest each message once.

Crash safety comes from ordering and keys, not from luck:

1. a message is downloaded with ``BODY.PEEK[]`` (not marked seen) and hashed;
2. its reports are stored and the message hash is recorded in ``imap_message`` in the *same*
   SQLite transaction;
3. only then is it moved to the processed (or rejected) folder.

A crash before 2 leaves nothing stored and the message in the inbox: the next run does it again.
A crash between 2 and 3 leaves the message in the inbox but its hash known: the next run only
moves it. Even a message copied twice (a crash inside a non-atomic COPY/EXPUNGE move) is safe,
since reports are deduplicated by natural key and content hash.
"""

from __future__ import annotations

import hashlib
import imaplib
import re
import socket
import sqlite3
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from mailfleet.dmarc.ingest import Clock, FileResult, ingest_source, save_quarantine
from mailfleet.dmarc.model import Limits
from mailfleet.errors import IngestError

_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    mailbox: str = "INBOX"
    processed: str = "Processed"
    rejected: str = "Rejected"
    starttls: bool = False
    cafile: str | None = None
    max_messages: int = 1000
    timeout: float = 30.0


@dataclass
class FetchResult:
    messages: int = 0
    ingested: int = 0
    reports: int = 0
    duplicates: int = 0
    rejected: int = 0
    details: list[dict[str, object]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"messages": self.messages, "ingested": self.ingested, "reports": self.reports,
                "duplicates": self.duplicates, "rejected": self.rejected, "details": self.details}


def fetch_reports(conn: sqlite3.Connection, settings: ImapSettings, *, quarantine: Path | None = None,
                  limits: Limits | None = None, clock: Clock = time.time) -> FetchResult:
    limits = limits or Limits()
    imap = _connect(settings)
    result = FetchResult()
    try:
        _login(imap, settings)
        for folder in (settings.processed, settings.rejected):
            _ensure_folder(imap, folder)
        typ, data = imap.select(_quote(settings.mailbox))
        if typ != "OK":
            raise IngestError(f"cannot open mailbox {settings.mailbox!r} on {settings.host}: {_text(data)}")
        uidvalidity = _uidvalidity(imap)
        typ, data = imap.uid("SEARCH", None, "ALL")  # type: ignore[arg-type]
        if typ != "OK":
            raise IngestError(f"IMAP SEARCH failed on {settings.host}: {_text(data)}")
        uids = (data[0] or b"").split()[: settings.max_messages]
        for uid in uids:
            result.messages += 1
            _handle_message(conn, imap, settings, uid.decode(), uidvalidity, limits, quarantine, clock, result)
        imap.close()
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return result


def _handle_message(conn: sqlite3.Connection, imap: imaplib.IMAP4, settings: ImapSettings, uid: str,
                    uidvalidity: int | None, limits: Limits, quarantine: Path | None, clock: Clock,
                    result: FetchResult) -> None:
    name = f"imap:{settings.user}/{settings.mailbox}/{uidvalidity}/{uid}"
    typ, data = imap.uid("FETCH", uid, "(RFC822.SIZE)")
    size_match = _SIZE.search(_flatten(data)) if typ == "OK" else None
    size = int(size_match.group(1)) if size_match else 0
    if size > limits.max_email_bytes:
        reason = f"message is {size} bytes, over the cap of {limits.max_email_bytes}"
        _record(conn, f"size:{name}:{size}", settings, uidvalidity, uid, "rejected", reason, clock)
        result.rejected += 1
        result.details.append({"message": name, "outcome": "rejected", "reason": reason})
        _move(imap, uid, settings.rejected)
        return
    typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    raw = _body(data) if typ == "OK" else None
    if raw is None:
        raise IngestError(f"could not download message {uid} from {settings.mailbox}: {_text(data)}")
    digest = hashlib.sha256(raw).hexdigest()
    known = conn.execute("SELECT outcome FROM imap_message WHERE message_sha256=?", (digest,)).fetchone()
    if known:
        outcome = known[0]
        result.duplicates += 1
        result.details.append({"message": name, "outcome": "already-" + outcome})
    else:
        def remember(c: sqlite3.Connection, file_result: FileResult) -> None:
            _record(c, digest, settings, uidvalidity, uid, "ingested", "", clock, in_transaction=True)

        file_result = ingest_source(conn, name, raw, limits=limits, clock=clock, before_commit=remember)
        if file_result.rejected:
            outcome = "rejected"
            if quarantine is not None:
                save_quarantine(quarantine, f"imap-{uidvalidity}-{uid}.eml", raw, file_result.rejected)
            _record(conn, digest, settings, uidvalidity, uid, "rejected", file_result.rejected, clock)
            result.rejected += 1
            result.details.append({"message": name, "outcome": "rejected", "reason": file_result.rejected})
        else:
            outcome = "ingested"
            result.ingested += 1
            result.reports += file_result.stored + file_result.tls_stored
            result.details.append({"message": name, "outcome": "ingested", "stored": file_result.stored,
                                   "duplicates": file_result.duplicates, "tls_stored": file_result.tls_stored})
    _move(imap, uid, settings.rejected if outcome == "rejected" else settings.processed)


def _record(conn: sqlite3.Connection, digest: str, settings: ImapSettings, uidvalidity: int | None, uid: str,
            outcome: str, detail: str, clock: Clock, in_transaction: bool = False) -> None:
    sql = ("INSERT OR REPLACE INTO imap_message (message_sha256, mailbox, uidvalidity, uid, outcome, detail, "
           "fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
    params = (digest, f"{settings.user}@{settings.host}/{settings.mailbox}", uidvalidity, int(uid), outcome,
              detail, int(clock()))
    if in_transaction:
        conn.execute(sql, params)
    else:
        conn.execute("BEGIN")
        conn.execute(sql, params)
        conn.execute("COMMIT")


def _connect(settings: ImapSettings) -> imaplib.IMAP4:
    context = ssl.create_default_context(cafile=settings.cafile)
    try:
        if settings.starttls:
            imap = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
            typ, data = imap.starttls(ssl_context=context)
            if typ != "OK":
                raise IngestError(f"{settings.host}:{settings.port} refused STARTTLS; use implicit TLS (port 993)")
            return imap
        return imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context, timeout=settings.timeout)
    except ssl.SSLError as exc:
        raise IngestError(f"TLS with {settings.host}:{settings.port} failed ({exc.reason or exc}); if the server "
                          "uses a private CA, pass it with --cafile") from None
    except (OSError, socket.timeout) as exc:
        raise IngestError(f"cannot reach IMAP server {settings.host}:{settings.port} ({exc}); check host, port "
                          "and firewall") from None
    except imaplib.IMAP4.error as exc:
        raise IngestError(f"IMAP server {settings.host}:{settings.port} misbehaved: {exc}") from None


def _login(imap: imaplib.IMAP4, settings: ImapSettings) -> None:
    try:
        imap.login(settings.user, settings.password)
    except imaplib.IMAP4.error:
        raise IngestError(f"IMAP login as {settings.user!r} on {settings.host} failed; check the user and the "
                          "secret behind --password-ref") from None


def _ensure_folder(imap: imaplib.IMAP4, folder: str) -> None:
    typ, data = imap.list('""', _quote(folder))
    if typ == "OK" and any(item for item in data if item):
        return
    typ, data = imap.create(_quote(folder))
    if typ != "OK" and b"ALREADYEXISTS" not in _flatten(data):
        raise IngestError(f"cannot create IMAP folder {folder!r}: {_text(data)}")


def _move(imap: imaplib.IMAP4, uid: str, folder: str) -> None:
    if "MOVE" in imap.capabilities:
        typ, data = imap.uid("MOVE", uid, _quote(folder))
        if typ != "OK":
            raise IngestError(f"could not move message {uid} to {folder!r}: {_text(data)}")
        return
    typ, data = imap.uid("COPY", uid, _quote(folder))
    if typ != "OK":
        raise IngestError(f"could not copy message {uid} to {folder!r}: {_text(data)}")
    imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
    if "UIDPLUS" in imap.capabilities:
        imap.uid("EXPUNGE", uid)
    else:
        imap.expunge()


def _uidvalidity(imap: imaplib.IMAP4) -> int | None:
    typ, data = imap.response("UIDVALIDITY")
    if data and data[0]:
        try:
            return int(data[0])
        except (TypeError, ValueError):
            return None
    return None


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(data: list[object]) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _flatten(data: list[object]) -> bytes:
    parts: list[bytes] = []
    for item in data or []:
        if isinstance(item, tuple):
            parts.extend(x for x in item if isinstance(x, bytes))
        elif isinstance(item, bytes):
            parts.append(item)
    return b" ".join(parts)


def _text(data: list[object]) -> str:
    return _flatten(data).decode("utf-8", "replace")[:200]
