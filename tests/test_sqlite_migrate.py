"""One migration mechanism for both stores: versions step up one transaction at a time, work
another process finished meanwhile is skipped, a newer store is refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailfleet.errors import IngestError
from mailfleet.sqlite_migrate import apply_migrations

MIGRATIONS = ("CREATE TABLE a (x); CREATE INDEX a_x ON a(x)", "CREATE TABLE b (y)")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_migrates_step_by_step_and_twice_is_a_no_op(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "s.db")
    assert apply_migrations(conn, MIGRATIONS, name="s") == 2
    assert apply_migrations(conn, MIGRATIONS, name="s") == 2
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"a", "a_x", "b"}
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_migration_another_process_finished_while_this_one_waited_is_skipped(tmp_path: Path) -> None:
    """Both saw version 0; the other got the write lock first and migrated everything."""
    ours = _connect(tmp_path / "s.db")
    other = _connect(tmp_path / "s.db")
    raced = []

    def begin_after_the_other(conn: sqlite3.Connection) -> None:
        if not raced:
            raced.append(apply_migrations(other, MIGRATIONS, name="s"))
        conn.execute("BEGIN IMMEDIATE")

    assert apply_migrations(ours, MIGRATIONS, name="s", begin=begin_after_the_other) == 2
    assert raced == [2]
    assert ours.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_newer_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "s.db")
    conn.execute("PRAGMA user_version = 5")
    with pytest.raises(IngestError, match="s.db has schema version 5, newer than this mailfleet knows"):
        apply_migrations(conn, MIGRATIONS, name=tmp_path / "s.db")
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_a_failing_migration_rolls_back_to_the_last_good_version(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations(conn, (*MIGRATIONS, "CREATE TABLE c (z); CREATE TABLE a (again)"), name="s")
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    assert "c" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
