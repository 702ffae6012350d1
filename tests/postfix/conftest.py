"""Helpers for the Postfix log tests: fixture paths, a store in a temp dir, fixed clocks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailfleet.postfix import store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postfix"
# The synthetic fixtures were generated in November 2025; year-less stamps need this.
REFERENCE = datetime(2025, 11, 28, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = store.load_store(tmp_path / "logs.db")
    yield conn
    conn.close()


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path
