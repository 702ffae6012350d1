"""A first big ingest hands its trace indexes to a background thread (``logs.ingest`` does, so
``logs.summary`` in the same command runs meanwhile): the rows are committed before, the
indexes arrive exactly as the schema defines them, a build that was cut off is repaired by
the next ingest, and a failed build fails the command."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailfleet import background
from mailfleet.postfix import ingest, store
from mailfleet.postfix.ingest import save_log_file
from mailfleet.postfix.trace import load_trace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postfix"
LOG = FIXTURES / "synthetic/mailcow-style-5k.log"
REFERENCE = datetime(2025, 11, 28, tzinfo=timezone.utc)


def _indexes(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name").fetchall()


@pytest.fixture
def schema(tmp_path: Path) -> list[tuple[str, str]]:
    store.load_store(tmp_path / "schema.db").close()
    return _indexes(tmp_path / "schema.db")


def test_rows_are_committed_and_traceable_before_the_indexes_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: list
) -> None:
    go = threading.Event()
    real_build = store.build_deferred_indexes

    def held_build(conn: sqlite3.Connection) -> None:
        assert go.wait(60)
        real_build(conn)

    monkeypatch.setattr(store, "build_deferred_indexes", held_build)
    db = tmp_path / "logs.db"
    conn = store.load_store(db)
    counts = save_log_file(conn, LOG, reference=REFERENCE, now=0.0, parallel=True, indexes_in_background=True)
    conn.close()
    try:
        lookup = {name for name, _ in schema} - {name for name, _ in _indexes(db)}
        assert lookup == set(store.BULK_DEFERRED_INDEXES)  # not yet built...
        reader = store.load_store(db, create=False)
        assert reader.execute("SELECT count(*) FROM messages").fetchone() == (counts.messages,)  # ...rows are in
        some_id = reader.execute("SELECT message_id FROM messages WHERE message_id IS NOT NULL LIMIT 1").fetchone()[0]
        assert load_trace(reader, message_id=some_id)  # trace works meanwhile, by scanning
        reader.close()
    finally:
        go.set()
    assert background.wait_all() == []
    assert _indexes(db) == schema


def test_a_build_cut_off_is_reported_and_repaired_by_the_next_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: list
) -> None:
    def broken_build(conn: sqlite3.Connection) -> None:
        conn.close()
        raise OSError("disk full")

    monkeypatch.setattr(store, "build_deferred_indexes", broken_build)
    db = tmp_path / "logs.db"
    lines = LOG.read_text().splitlines(keepends=True)
    log = tmp_path / "mail.log"
    log.write_text("".join(lines[:3000]))
    conn = store.load_store(db)
    save_log_file(conn, log, reference=REFERENCE, now=0.0, parallel=True, indexes_in_background=True)
    failures = background.wait_all()
    assert len(failures) == 1 and "trace indexes" in failures[0] and "disk full" in failures[0]
    assert len(_indexes(db)) == len(schema) - len(store.BULK_DEFERRED_INDEXES)
    monkeypatch.undo()
    with log.open("a") as handle:
        handle.write("".join(lines[3000:]))
    save_log_file(conn, log, reference=REFERENCE, now=1.0, parallel=False)
    assert _indexes(db) == schema
    assert background.wait_all() == []


class _Program:
    """Stands in for Invoke's Program: runs "tasks" that leave work in the background."""

    def __init__(self, exit_code: int | None, fails: bool) -> None:
        self.exit_code, self.fails = exit_code, fails

    def run(self, argv: list[str]) -> None:
        def work() -> None:
            if self.fails:
                raise RuntimeError("no space left")

        background.start("building the trace indexes of x.db", work)
        if self.exit_code is not None:
            sys.exit(self.exit_code)


@pytest.mark.parametrize(
    ("exit_code", "fails", "expected"),
    [(None, False, None), (None, True, 1), (0, True, 1), (2, True, 2), (2, False, 2)],
)
def test_the_command_waits_for_background_work_and_a_failure_fails_it(
    capsys: pytest.CaptureFixture[str], exit_code: int | None, fails: bool, expected: int | None
) -> None:
    from mailfleet.cli.program import _run_then_wait

    if expected is None:
        _run_then_wait(_Program(exit_code, fails), ["mailfleet"])  # type: ignore[arg-type]
    else:
        with pytest.raises(SystemExit) as raised:
            _run_then_wait(_Program(exit_code, fails), ["mailfleet"])  # type: ignore[arg-type]
        assert raised.value.code == expected
    assert ("building the trace indexes of x.db failed: RuntimeError: no space left" in capsys.readouterr().err) == fails
    assert background.wait_all() == []  # nothing left over


def test_logs_ingest_then_summary_in_one_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], schema: list
) -> None:
    """The real command line: the ingest leaves the indexes to the background, the summary
    runs, the command exits 0 once the indexes are in."""
    from mailfleet.cli.program import main

    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)  # the fixture is small; take the big-file path
    db = tmp_path / "logs.db"
    argv = ["mailfleet", "logs.ingest", str(LOG), "--db", str(db), "--json", "logs.summary", "--db", str(db), "--json"]
    monkeypatch.setattr(sys, "argv", argv)
    started: list[str] = []
    real_start = background.start
    monkeypatch.setattr(background, "start", lambda what, work: (started.append(what), real_start(what, work)))
    main()
    assert started == [f"building the trace indexes of {db}"]
    out = capsys.readouterr().out
    decoder = json.JSONDecoder()
    counts, end = decoder.raw_decode(out)
    summary, _ = decoder.raw_decode(out[end:].lstrip())
    assert counts["sources"][0]["lines"] == 5000 and summary["received"] > 0
    assert _indexes(db) == schema


def test_a_second_file_forks_its_parser_only_after_the_first_files_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: list
) -> None:
    """Two big files into a fresh store in one call: the first leaves its indexes to the
    background; the second forks its parser child only once that thread is done (a thread
    busy in SQLite at fork time would leave the child locks nobody releases)."""
    real_build = store.build_deferred_indexes
    events: list[str] = []

    def slow_build(conn: sqlite3.Connection) -> None:
        threading.Event().wait(0.3)  # still running when the second file starts
        real_build(conn)
        events.append("indexes built")

    real_fork = ingest.produce_in_child

    def produce(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("second file parsed" if events else "first file parsed")
        return real_fork(*args, **kwargs)

    monkeypatch.setattr(store, "build_deferred_indexes", slow_build)
    monkeypatch.setattr(ingest, "produce_in_child", produce)
    lines = LOG.read_text().splitlines(keepends=True)
    first, second = tmp_path / "mail.log.1", tmp_path / "mail.log"
    first.write_text("".join(lines[:2500]))
    second.write_text("".join(lines[2500:]))
    conn = store.load_store(tmp_path / "logs.db")
    monkeypatch.setattr(ingest, "PARALLEL_MIN_BYTES", 0)
    ingest.save_log_files(conn, [first, second], reference=REFERENCE, now=0.0, indexes_in_background=True)
    assert background.wait_all() == []
    assert events == ["first file parsed", "indexes built", "second file parsed"]
    assert _indexes(tmp_path / "logs.db") == schema
