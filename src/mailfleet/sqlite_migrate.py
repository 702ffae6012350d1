"""Schema migrations for mailfleet's SQLite stores, versioned by ``PRAGMA user_version``.

Migration N (0-based) takes a store from version N to N+1 in its own write transaction.
Two processes may open a new store at once (a cron job and a command): each migration
re-reads the version once it holds the write lock and skips what the other already did.
A store newer than the code is refused, never written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from mailfleet.errors import IngestError


def _begin_immediate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def apply_migrations(
    conn: sqlite3.Connection,
    migrations: Sequence[str],
    *,
    name: str | Path,
    begin: Callable[[sqlite3.Connection], None] = _begin_immediate,
) -> int:
    """Bring ``conn`` up to ``len(migrations)``; ``name`` says which store in errors, ``begin``
    opens the write transaction (a store may word a busy database its own way). Statements
    are split at ``;`` (migrations hold no semicolons inside literals). Returns the version."""
    target = len(migrations)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > target:
        raise IngestError(
            f"{name} has schema version {version}, newer than this mailfleet knows ({target}); "
            "upgrade mailfleet before writing to it."
        )
    for number in range(version, target):
        begin(conn)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] > number:  # another process did it
                conn.execute("COMMIT")
                continue
            for statement in migrations[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return target
