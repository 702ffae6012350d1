"""The Postfix log store: SQLite in WAL mode, versioned by ``PRAGMA user_version`` migrations.

Schema (the contract for dashboards and reports; times are REAL epoch seconds, UTC)

``messages`` — one queue file on one host (a message seen on three hosts is three rows,
linked by ``parent_id``):
    id INTEGER PK · host (syslog hostname, or the inventory name for pulled logs) · qid ·
    first_ts, last_ts · origin (``smtpd`` accepted over SMTP, ``pickup`` local submission,
    ``reinject`` back from a content filter, ``bounce`` a DSN Postfix wrote, NULL unknown) ·
    service (syslog tag of the accepting daemon, e.g. ``postfix/submission/smtpd``) · client,
    client_ip, sasl_user · message_id (without <>) · sender (envelope, '' for <>) · size ·
    nrcpt · removed_ts (NULL while queued) · expired_ts · bounce_of (messages.id of the message
    this DSN reports on) · orig_qid (XFORWARD ``orig_queue_id``) · parent_id (messages.id of
    the copy that handed this one over: content filter, fleet relay, local forward).

``deliveries`` — one delivery attempt for one recipient:
    id · message_id → messages.id · host · qid · ts · rcpt · rcpt_domain (lower case) ·
    orig_to · relay (as logged) · relay_host, relay_ip, relay_port · transport (service part
    of the syslog tag: ``postfix/bulk/smtp`` → ``bulk``) · conn_use · delay · a, b, c, d (the
    ``delays=a/b/c/d`` split: before qmgr, **in the active queue (starvation signal)**,
    connection setup, transmission) · tls · dsn · status (sent, deferred, bounced,
    deliverable, ...) · reply · next_qid (``queued as``/``forwarded as`` id) ·
    next_message_id → messages.id once the next hop's copy is known.

``rejects`` — a refused transaction or message (``NOQUEUE: reject``, postscreen, cleanup
``milter-reject``, ...): id · message_id (NULL for NOQUEUE) · host · qid · ts · tag · action
(reject, milter-reject, reject_warning, discard, hold, ...) · stage (RCPT, CONNECT,
END-OF-MESSAGE, header, ...) · client, client_ip · code · dsn · reason · sender · rcpt · helo.

``sources`` — ingest cursors: key (``file:<fingerprint>``, ``pull:<host>``, ``api:<host>``) ·
kind · path · host · fingerprint (hash of the first line, so a renamed or compressed rotated
file keeps its cursor) · offset (bytes of complete lines consumed) · last_ts and last_hashes
(time cursor for pulled logs: lines at exactly ``last_ts`` already counted) · updated_ts.

``host_addresses`` — address or name (lower case) → fleet host, from the inventory and from
host names seen in logs; used to link ``relay=`` hand-offs to the next fleet host.

``ingests`` — one row per ingest run, for audit.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mailfleet.errors import IngestError
from mailfleet.postfix.correlate import DELIVERY_COLUMNS, MESSAGE_COLUMNS, REJECT_COLUMNS
from mailfleet.sqlite_binding import bind_none_directly
from mailfleet.sqlite_migrate import apply_migrations

# How far apart (seconds) a hand-off line and the next hop's first line may be: the next
# hop logs ``client=`` before the sender logs ``queued as``; hosts' clocks may drift.
LINK_WINDOW = 300.0
# Messages still queued are reloaded at the next ingest only if seen this recently
# (Postfix's maximal_queue_lifetime is 5 days), relative to the newest open message of that
# host; older ones lost their "removed" line to a log gap and stay as they are.
OPEN_HORIZON = 6 * 86400.0

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, host TEXT NOT NULL, qid TEXT NOT NULL,
        first_ts REAL NOT NULL, last_ts REAL NOT NULL, origin TEXT, service TEXT,
        client TEXT, client_ip TEXT, sasl_user TEXT, message_id TEXT, sender TEXT,
        size INTEGER, nrcpt INTEGER, removed_ts REAL, expired_ts REAL,
        bounce_of INTEGER, orig_qid TEXT, parent_id INTEGER
    );
    CREATE INDEX messages_qid ON messages(qid);
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_sender ON messages(sender COLLATE NOCASE);
    CREATE INDEX messages_open ON messages(host, last_ts) WHERE removed_ts IS NULL;
    CREATE INDEX messages_parent ON messages(parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX messages_bounce_of ON messages(bounce_of) WHERE bounce_of IS NOT NULL;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL, host TEXT NOT NULL,
        qid TEXT NOT NULL, ts REAL NOT NULL, rcpt TEXT, rcpt_domain TEXT, orig_to TEXT,
        relay TEXT, relay_host TEXT, relay_ip TEXT, relay_port INTEGER, transport TEXT,
        conn_use INTEGER, delay REAL, a REAL, b REAL, c REAL, d REAL, tls TEXT, dsn TEXT,
        status TEXT NOT NULL, reply TEXT, next_qid TEXT, next_message_id INTEGER
    );
    CREATE INDEX deliveries_message ON deliveries(message_id);
    CREATE INDEX deliveries_rcpt ON deliveries(rcpt COLLATE NOCASE);
    CREATE INDEX deliveries_next_qid ON deliveries(next_qid) WHERE next_qid IS NOT NULL;
    CREATE TABLE rejects (
        id INTEGER PRIMARY KEY, message_id INTEGER, host TEXT NOT NULL, qid TEXT,
        ts REAL NOT NULL, tag TEXT, action TEXT NOT NULL, stage TEXT, client TEXT,
        client_ip TEXT, code INTEGER, dsn TEXT, reason TEXT, sender TEXT, rcpt TEXT, helo TEXT
    );
    CREATE INDEX rejects_message ON rejects(message_id) WHERE message_id IS NOT NULL;
    CREATE TABLE sources (
        key TEXT PRIMARY KEY, kind TEXT NOT NULL, path TEXT, host TEXT, fingerprint TEXT,
        offset INTEGER NOT NULL DEFAULT 0, last_ts REAL, last_hashes TEXT,
        updated_ts REAL
    );
    CREATE TABLE host_addresses (
        address TEXT PRIMARY KEY, host TEXT NOT NULL, why TEXT
    );
    CREATE TABLE ingests (
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, source TEXT NOT NULL, lines INTEGER,
        unparsed INTEGER, other INTEGER, messages INTEGER, deliveries INTEGER,
        rejects INTEGER, links INTEGER
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
PAGE_SIZE = 16384
BUSY_TIMEOUT = 60.0  # seconds to wait for another ingest's write transaction


def begin_write(conn: sqlite3.Connection, what: str) -> None:
    """Start the one write transaction of an ingest; a long wait says who is in the way."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise IngestError(
            f"cannot write {what}: the log store is busy ({exc}) — another logs.ingest or logs.pull is "
            f"writing to it. Nothing was stored; run again when it has finished."
        ) from None


def load_store(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open (and migrate) the store. A newer schema than this code knows is refused."""
    db_path = Path(path)
    if not create and not db_path.exists():
        raise IngestError(
            f"log database {db_path} does not exist; nothing has been ingested there. "
            f"Run `mailfleet logs.ingest FILE --db {db_path}` or `logs.pull` first."
        )
    if db_path.parent and not db_path.parent.exists():
        db_path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not db_path.exists() or db_path.stat().st_size == 0
    bind_none_directly()
    try:
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT)
        if fresh:  # 16 KB pages: ~15% cheaper bulk inserts than 4 KB, measured on 1M lines
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        raise IngestError(
            f"{db_path} is not a usable SQLite database ({exc}); point --db at a log store "
            "or at a new file."
        ) from None
    conn.execute("PRAGMA synchronous=NORMAL")
    # Bounded memory (a 1M-line ingest stays well under 100 MB): 8 MB of page cache;
    # sorts beyond it spill to a temporary file.
    conn.execute("PRAGMA cache_size=-8000")
    migrate(conn, db_path)
    return conn


def migrate(conn: sqlite3.Connection, name: str | Path = "database") -> None:
    apply_migrations(conn, MIGRATIONS, name=f"log store {name}", begin=lambda c: begin_write(c, f"{name} (schema migration)"))


# Indexes only lookups (trace) read, on values that arrive in random order: kept up to date
# row by row they cost ~0.2 s each per million log lines, built once at the end ~0.07 s.
BULK_DEFERRED_INDEXES = ("messages_message_id", "messages_sender", "deliveries_rcpt")
# Their definitions, as the migrations create them (so a store that lost them, e.g. to an
# interrupted background build, gets exactly those back).
_DEFERRED_INDEX_SQL = {
    name: re.search(rf"CREATE INDEX {name} ON [^;]*", "\n".join(MIGRATIONS)).group(0).strip()  # type: ignore[union-attr]
    for name in BULK_DEFERRED_INDEXES
}


def drop_deferred_indexes(conn: sqlite3.Connection) -> list[str]:
    """Inside an ingest's transaction into an empty store: drop the lookup-only indexes and
    return their SQL for ``create_indexes`` (a rollback brings them back)."""
    names = ", ".join("?" * len(BULK_DEFERRED_INDEXES))
    rows = conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({names})", BULK_DEFERRED_INDEXES
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in rows]


def create_indexes(conn: sqlite3.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        conn.execute(statement)


def missing_deferred_indexes(conn: sqlite3.Connection) -> list[str]:
    """SQL of the lookup indexes this store lacks (none, unless a background build was cut off)."""
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return [sql for name, sql in _DEFERRED_INDEX_SQL.items() if name not in present]


def database_file(conn: sqlite3.Connection) -> Path:
    return Path(conn.execute("PRAGMA database_list").fetchone()[2])


def open_for_thread(db_path: Path) -> sqlite3.Connection:
    """A connection another thread will use (``build_deferred_indexes``). Opened by the caller
    before it closes its own: the last connection to close a WAL store checkpoints it, and
    that is the background's job, not the closing task's."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=BUSY_TIMEOUT, check_same_thread=False)
    conn.execute("PRAGMA cache_size=-8000")
    return conn


def build_deferred_indexes(conn: sqlite3.Connection) -> None:
    """In the background (``mailfleet.background``), on a connection of its own: create the
    lookup indexes the store lacks, then checkpoint the write-ahead log the bulk ingest left
    behind; closes ``conn``. Another writer waits for this as for any ingest
    (``BEGIN IMMEDIATE``); readers never wait."""
    try:
        begin_write(conn, f"{database_file(conn)} (trace indexes)")
        try:
            create_indexes(conn, missing_deferred_indexes(conn))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def next_message_id(conn: sqlite3.Connection) -> int:
    return (conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]) + 1


def next_delivery_id(conn: sqlite3.Connection) -> int:
    return (conn.execute("SELECT COALESCE(MAX(id), 0) FROM deliveries").fetchone()[0]) + 1


def load_open_messages(conn: sqlite3.Connection) -> list[list[Any]]:
    """Messages still queued at the end of earlier ingests, so their next lines join them."""
    columns = ", ".join(MESSAGE_COLUMNS)
    # Both lookups use the partial index on open messages only, so this stays cheap on a
    # store with years of delivered mail.
    newest = dict(
        conn.execute("SELECT host, MAX(last_ts) FROM messages WHERE removed_ts IS NULL GROUP BY host").fetchall()
    )
    rows = []
    for host, last in newest.items():
        rows += conn.execute(
            f"SELECT {columns} FROM messages WHERE removed_ts IS NULL AND host = ? AND last_ts >= ?",
            (host, last - OPEN_HORIZON),
        ).fetchall()
    return [list(row) for row in rows]


_INSERT_MESSAGE = (
    f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})"
)
_REPLACE_MESSAGE = _INSERT_MESSAGE.replace("INSERT INTO", "INSERT OR REPLACE INTO")
_INSERT_DELIVERY = (
    f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) VALUES ({', '.join('?' * len(DELIVERY_COLUMNS))})"
)
_INSERT_REJECT = f"INSERT INTO rejects ({', '.join(REJECT_COLUMNS)}) VALUES ({', '.join('?' * len(REJECT_COLUMNS))})"


def save_rows(
    conn: sqlite3.Connection,
    messages: Sequence[Sequence[Any]],
    deliveries: Sequence[Sequence[Any]],
    rejects: Sequence[Sequence[Any]],
    first_new_id: int = 0,
) -> None:
    """Write rows inside the caller's transaction (an ingest is one transaction).

    Messages with ``id < first_new_id`` were carried over from an earlier ingest and are
    replaced; the others are new, and a plain INSERT skips REPLACE's conflict handling.
    """
    if messages:
        carried = [row for row in messages if row[0] < first_new_id] if first_new_id else []
        if carried:
            conn.executemany(_REPLACE_MESSAGE, carried)
            messages = [row for row in messages if row[0] >= first_new_id]
        conn.executemany(_INSERT_MESSAGE, messages)
    if deliveries:
        conn.executemany(_INSERT_DELIVERY, deliveries)
    if rejects:
        conn.executemany(_INSERT_REJECT, rejects)


def save_host_addresses(conn: sqlite3.Connection, pairs: Iterable[tuple[str, str, str]]) -> None:
    """``(address, host, why)``: how a ``relay=`` name or IP maps to a fleet host."""
    conn.executemany(
        "INSERT INTO host_addresses (address, host, why) VALUES (lower(?), ?, ?) "
        "ON CONFLICT(address) DO UPDATE SET host = excluded.host, why = excluded.why",
        list(pairs),
    )


def load_source(conn: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT key, kind, path, host, fingerprint, offset, last_ts, last_hashes FROM sources WHERE key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None
    names = ("key", "kind", "path", "host", "fingerprint", "offset", "last_ts", "last_hashes")
    return dict(zip(names, row, strict=True))


def save_source(conn: sqlite3.Connection, source: dict[str, Any], now: float) -> None:
    conn.execute(
        """
        INSERT INTO sources (key, kind, path, host, fingerprint, offset, last_ts, last_hashes, updated_ts)
        VALUES (:key, :kind, :path, :host, :fingerprint, :offset, :last_ts, :last_hashes, :now)
        ON CONFLICT(key) DO UPDATE SET path = excluded.path, host = excluded.host,
            offset = excluded.offset, last_ts = excluded.last_ts,
            last_hashes = excluded.last_hashes, updated_ts = excluded.updated_ts
        """,
        {**source, "now": now},
    )


def save_ingest_record(conn: sqlite3.Connection, now: float, counts: Any) -> None:
    conn.execute(
        "INSERT INTO ingests (ts, source, lines, unparsed, other, messages, deliveries, rejects, links) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (now, counts.source, counts.lines, counts.unparsed, counts.other, counts.messages,
         counts.deliveries, counts.rejects, counts.links),  # fmt: skip
    )


def _is_loopback(relay_host: str | None, relay_ip: str | None) -> bool:
    if relay_ip is None:
        return relay_host in ("local", "virtual", "localhost", None) or bool(relay_host and "/" in relay_host)
    return relay_ip.startswith("127.") or relay_ip == "::1" or relay_host == "localhost"


def save_links(conn: sqlite3.Connection, first_delivery_id: int, first_message_id: int) -> int:
    """Link ``queued as NEWID`` / ``forwarded as NEWID`` hand-offs to the next hop's message.

    Looks both ways (new deliveries → any message; any pending delivery → new messages),
    so the order in which hosts' logs arrive does not matter. The next hop must be: the same
    host when the relay is loopback or local (content filter, local forward); the host the
    relay's address or name maps to (``host_addresses``); otherwise the only message with that
    id on another host within ``LINK_WINDOW``. Ambiguous candidates stay unlinked.
    Returns the number of links made.
    """
    addresses = dict(conn.execute("SELECT address, host FROM host_addresses").fetchall())
    select = """
        SELECT d.id, d.message_id, d.host, d.relay_host, d.relay_ip, m.id, m.host
        FROM {driver}
        WHERE d.next_message_id IS NULL AND d.next_qid IS NOT NULL AND {bound}
          AND m.first_ts BETWEEN d.ts - :w AND d.ts + :w AND m.id != d.message_id
    """
    candidates: dict[int, tuple[tuple[Any, ...], list[tuple[int, str]]]] = {}
    queries = [select.format(driver="deliveries AS d JOIN messages AS m ON m.qid = d.next_qid", bound="d.id >= :d0")]
    # New messages for older pending deliveries; the first query already paired every new
    # delivery with any message, so a store that had no deliveries before needs no second
    # pass (0.13 s of a fresh 1M-line ingest, measured).
    if conn.execute("SELECT 1 FROM deliveries WHERE id < ? LIMIT 1", (first_delivery_id,)).fetchone():
        queries.append(
            select.format(driver="messages AS m JOIN deliveries AS d ON d.next_qid = m.qid", bound="m.id >= :m0")
        )
    for query in queries:
        for row in conn.execute(query, {"w": LINK_WINDOW, "d0": first_delivery_id, "m0": first_message_id}):
            entry = candidates.setdefault(row[0], (row[:5], []))
            if (row[5], row[6]) not in entry[1]:
                entry[1].append((row[5], row[6]))
    links: list[tuple[int, int, int]] = []
    for delivery_id, (head, options) in candidates.items():
        _, parent_id, host, relay_host, relay_ip = head
        if _is_loopback(relay_host, relay_ip):
            wanted: str | None = host
        else:
            wanted = addresses.get((relay_ip or "").lower()) or addresses.get((relay_host or "").lower())
            if wanted is None and relay_host:
                wanted = addresses.get(relay_host.split(".", 1)[0].lower())
        if wanted is not None:
            chosen = [m for m in options if m[1] == wanted]
        else:
            chosen = [m for m in options if m[1] != host]
        if len(chosen) == 1:
            links.append((chosen[0][0], delivery_id, parent_id))
    conn.executemany("UPDATE deliveries SET next_message_id = ? WHERE id = ?", [(m, d) for m, d, _ in links])
    conn.executemany(
        "UPDATE messages SET parent_id = ? WHERE id = ? AND parent_id IS NULL",
        [(parent, child) for child, _, parent in links],
    )
    return len(links)
