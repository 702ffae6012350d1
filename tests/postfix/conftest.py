"""Fixtures for the Postfix log tests: a fresh log store in a temporary directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailfleet.postfix import store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = store.load_store(tmp_path / "logs.db")
    yield conn
    conn.close()
