"""The parser child (lines counted and delivery fields parsed by the parent) stores exactly
the rows, ids and counts of the in-process path, on every plain-text fixture and on odd
delivery lines (no ``status=``, unusual field order, junk between them)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailfleet.postfix import store
from mailfleet.postfix.correlate import expand_deliveries
from mailfleet.postfix.ingest import describe, save_log_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postfix"
REFERENCE = datetime(2025, 11, 28, tzinfo=timezone.utc)
PLAIN = sorted(
    str(p.relative_to(FIXTURES))
    for p in FIXTURES.rglob("*.log")
    if not p.read_bytes().lstrip()[:1] in (b"[", b"{")
)
ODD = [
    "Nov 28 10:00:00 mx1 postfix/smtpd[1]: AAAAA11111: client=a.example[192.0.2.1]",
    "Nov 28 10:00:01 mx1 postfix/smtp[2]: AAAAA11111: to=<x@b.example>, relay=none, delay=1, dsn=4.4.1, no status here",
    "Nov 28 10:00:02 mx1 postfix/smtp[2]: AAAAA11111: to=<y@b.example>, dsn=2.0.0, relay=b.example[192.0.2.9]:25, "
    "delays=0.1/0/0.2/0.3, delay=0.6, status=sent (250 2.0.0 queued as BBBBB22222)",
    "garbage without a pid marker",
    "Nov 28 10:00:03 mx1 postfix/lmtp[3]: AAAAA11111: to=<z@c.example>, orig_to=<q@c.example>, relay=dovecot, "
    "delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <z@c.example> Saved)",
    "Nov 28 10:00:04 mx1 postfix/qmgr[4]: AAAAA11111: removed",
]


def _rows(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    return {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        for table in ("messages", "deliveries", "rejects")
    }


def _ingest(tmp_path: Path, path: Path, parallel: bool) -> tuple[dict, dict]:
    conn = store.load_store(tmp_path / f"{parallel}.db")
    counts = describe(save_log_file(conn, path, reference=REFERENCE, now=0.0, parallel=parallel))
    counts.pop("parser_peak_rss_mb", None)  # differs by process, by nature
    return counts, _rows(conn)


@pytest.mark.parametrize("name", PLAIN)
def test_child_process_stores_the_same_rows_as_in_process(tmp_path: Path, name: str) -> None:
    here = _ingest(tmp_path, FIXTURES / name, parallel=False)
    child = _ingest(tmp_path, FIXTURES / name, parallel=True)
    assert child == here


def test_odd_delivery_lines_are_parsed_alike_in_the_child(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text("\n".join(ODD) + "\n")
    counts, rows = _ingest(tmp_path, log, parallel=True)
    assert (counts, rows) == _ingest(tmp_path, log, parallel=False)
    assert (counts["lines"], counts["unparsed"], counts["deliveries"]) == (6, 1, 2)
    assert [(r[5], r[23]) for r in rows["deliveries"]] == [("y@b.example", "BBBBB22222"), ("z@c.example", None)]


def test_expand_deliveries_passes_parsed_rows_through_in_order() -> None:
    parsed = (1, "mx1", "Q1", 1.0, "r@a", "a", None, "none", "none", None, None, "smtp", None, 1.0,
              0.0, 0.0, 0.0, 1.0, None, "4.4.1", "deferred", "x", None)  # fmt: skip
    raw = (2, "mx1", "Q2", 2.0, "postfix/bulk/smtp",
           "to=<b@Example.COM>, relay=mx.example.com[192.0.2.7]:25, delay=3, delays=1/2/0/0, dsn=2.0.0, "
           "status=sent (250 ok)")  # fmt: skip
    out = expand_deliveries([parsed, raw], {}, {})
    assert out[0] == parsed
    assert out[1][:6] == (2, "mx1", "Q2", 2.0, "b@Example.COM", "example.com")
    assert out[1][8:12] == ("mx.example.com", "192.0.2.7", 25, "bulk")
    assert out[1][15] == 2.0 and out[1][20] == "sent"


def _indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name").fetchall()


def test_an_empty_store_gets_its_deferred_indexes_back(tmp_path: Path) -> None:
    schema = _indexes(store.load_store(tmp_path / "schema.db"))
    assert {"messages_sender", "deliveries_rcpt"} <= {name for name, _ in schema}
    conn = store.load_store(tmp_path / "logs.db")
    save_log_file(conn, FIXTURES / "synthetic/mailcow-style-5k.log", reference=REFERENCE, now=0.0, parallel=True)
    assert _indexes(conn) == schema
    plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM deliveries WHERE rcpt = 'a' COLLATE NOCASE"))
    assert "deliveries_rcpt" in plan


def test_a_failed_ingest_into_an_empty_store_keeps_every_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailfleet.errors import IngestError
    from mailfleet.postfix import produce

    def broken_flush(self, final: bool = False) -> None:
        raise RuntimeError("disk on fire")

    schema = _indexes(store.load_store(tmp_path / "schema.db"))
    conn = store.load_store(tmp_path / "logs.db")
    monkeypatch.setattr(produce.Producer, "flush", broken_flush)  # the forked child inherits it
    with pytest.raises(IngestError, match="disk on fire"):
        save_log_file(conn, FIXTURES / "synthetic/mailcow-style-5k.log", reference=REFERENCE, now=0.0, parallel=True)
    assert _indexes(conn) == schema


@pytest.mark.parametrize("second_parallel", [False, True], ids=["then-in-process", "then-child"])
def test_resuming_in_the_child_stores_what_one_pass_stores(tmp_path: Path, second_parallel: bool) -> None:
    """Half the log, then the rest appended: the child resumes at the cursor's byte offset,
    carries the still-open messages, counts only the new lines, and keeps every index."""
    lines = (FIXTURES / "synthetic/mailcow-style-5k.log").read_text().splitlines(keepends=True)
    log = tmp_path / "mail.log"
    log.write_text("".join(lines[:2600]))
    conn = store.load_store(tmp_path / "two-steps.db")
    first = save_log_file(conn, log, reference=REFERENCE, now=0.0, parallel=False)
    with log.open("a") as handle:
        handle.write("".join(lines[2600:]))
    second = save_log_file(conn, log, reference=REFERENCE, now=1.0, parallel=second_parallel)
    assert (first.lines, second.lines) == (2600, 2400)
    assert second.note == f"resumed at byte {sum(len(line.encode()) for line in lines[:2600])}"
    once = store.load_store(tmp_path / "once.db")
    save_log_file(once, log, reference=REFERENCE, now=0.0, parallel=False)
    assert _rows(conn) == _rows(once)
    assert _indexes(conn) == _indexes(once)


MALFORMED = [
    "Nov 28 10:00:05 mx1 extra postfix/smtpd[1]: CCCCC33333: client=x.example[192.0.2.2]",
    "Nov 28 1x:00:05 mx1 postfix/qmgr[4]: CCCCC33333: removed",
    "mx1 postfix/qmgr[4]: DDDDD44444: removed",
    "Nov 28 10:00:06 mx1 postfix/qmgr[\u0664]: EEEEE55555: removed",  # a pid in non-ASCII digits is no marker
]


@pytest.mark.parametrize("chunk", [1 << 22, 300])
def test_malformed_queue_id_lines_are_unparsed_in_both_paths_and_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A queue-id marker without a proper envelope is counted by the counting process and
    missing from the scan: the block is looked at again and the line named."""
    from mailfleet.postfix import produce

    monkeypatch.setattr(produce, "CHUNK", chunk)  # 300 bytes: many blocks, malformed lines in later ones
    log = tmp_path / "mail.log"
    log.write_text("\n".join(ODD + MALFORMED + ODD[-1:]) + "\n")
    counts, rows = _ingest(tmp_path, log, parallel=True)
    assert (counts, rows) == _ingest(tmp_path, log, parallel=False)
    assert (counts["lines"], counts["unparsed"], counts["deliveries"]) == (11, 5, 2)
    assert set(counts["unparsed_samples"]) == {ODD[3], *MALFORMED}
    assert counts["events"] + counts["other"] + counts["unparsed"] == counts["lines"]


def test_the_pipe_to_the_parent_holds_several_batches() -> None:
    """Default Linux pipes (64 KB) hold less than one batch of rows; a deeper one lets the
    faster stage run ahead instead of waiting for the other at every batch."""
    import fcntl
    import multiprocessing

    from mailfleet.postfix.parallel import PIPE_BYTES, _deepen

    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    try:
        _deepen(send)
        assert fcntl.fcntl(send.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES >= 1 << 20
    finally:
        receive.close()
        send.close()
