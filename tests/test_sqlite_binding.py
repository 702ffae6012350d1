"""The None adapter stores NULL exactly as before, and is what the stores actually use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailfleet.sqlite_binding import bind_none_directly


def test_none_is_still_stored_as_null_and_other_values_unchanged() -> None:
    bind_none_directly()
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b, c, d)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(None, 1, 2.5, "x"), (None, None, None, None)])
    rows = conn.execute("SELECT typeof(a), typeof(b), typeof(c), typeof(d), a IS NULL FROM t").fetchall()
    assert rows == [("null", "integer", "real", "text", 1), ("null", "null", "null", "null", 1)]
    assert conn.execute("SELECT count(*) FROM t WHERE b IS NULL").fetchone() == (1,)


def test_opening_either_store_registers_the_adapter(tmp_path: Path) -> None:
    from mailfleet.dmarc import store as dmarc_store
    from mailfleet.postfix import store as log_store

    for load in (log_store.load_store, dmarc_store.load_store):
        sqlite3.adapters.pop((type(None), sqlite3.PrepareProtocol), None)
        load(tmp_path / f"{load.__module__}.db").close()
        assert sqlite3.adapters.get((type(None), sqlite3.PrepareProtocol)) is not None, load.__module__
