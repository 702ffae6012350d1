"""Every fixture file parsed with its counts written down; incremental ingest that survives
rotation and never counts a line twice; the schema and its migrations."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailfleet.errors import IngestError
from mailfleet.postfix import store
from mailfleet.postfix.ingest import describe, save_log_file
from mailfleet.postfix.summary import load_summary

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postfix"
REFERENCE = datetime(2025, 11, 28, tzinfo=timezone.utc)
TOTALS = ("received", "delivered", "forwarded", "deferred", "bounced", "rejected", "expired")

# file → (ingest counts, summary totals). Written down by reading the files: e.g. the 5k
# Mailcow log's 390/493/13/5/147 are exactly what pflogsumm 1.1.5 reports for it.
EXPECTED = {
    "synthetic/mailcow-style-5k.log": (
        dict(lines=5000, unparsed=0, other=2790, events=2210, messages=400, deliveries=511, rejects=147),
        dict(received=390, delivered=493, forwarded=0, deferred=13, bounced=5, rejected=147, expired=0),
    ),
    "synthetic/mailcow-style-5k-rfc3339.log": (
        dict(lines=5000, unparsed=0, other=2790, events=2210, messages=400, deliveries=511, rejects=147),
        dict(received=390, delivered=493, forwarded=0, deferred=13, bounced=5, rejected=147, expired=0),
    ),
    "synthetic/mailcow-style-docker-json-1k.log": (
        dict(lines=1000, unparsed=0, other=550, events=450, messages=83, deliveries=104, rejects=28),
        dict(received=79, delivered=99, forwarded=0, deferred=3, bounced=2, rejected=28, expired=0),
    ),
    "synthetic/mailcow-api-postfix-logs-example.json": (
        dict(lines=50, unparsed=0, other=36, events=14, messages=3, deliveries=1, rejects=5),
        dict(received=3, delivered=1, forwarded=0, deferred=0, bounced=0, rejected=5, expired=0),
    ),
    "kumina-postfix_exporter/log_lines_from_tests.log": (
        dict(lines=51, unparsed=0, other=10, events=41, messages=40, deliveries=4, rejects=0),
        dict(received=2, delivered=2, forwarded=0, deferred=1, bounced=1, rejected=0, expired=2),
    ),
    "hsn723-postfix_exporter/log_lines_from_tests.log": (
        dict(lines=66, unparsed=0, other=20, events=46, messages=40, deliveries=6, rejects=4),
        dict(received=2, delivered=2, forwarded=0, deferred=1, bounced=1, rejected=4, expired=2),
    ),
    # 13 lines are comments or malformed on purpose ("Jan 1 00:00:00", "postfix/postscreen[12345",
    # "postscreen[abcde]"); "Jan 1" without padding is accepted
    "sergeymakinen-postfix_exporter/mail.log": (
        dict(lines=66, unparsed=13, other=37, events=16, messages=1, deliveries=7, rejects=8),
        dict(received=0, delivered=3, forwarded=0, deferred=1, bounced=2, rejected=8, expired=1),
    ),
    "youyo-postfix-log-parser/test.log": (
        dict(lines=22, unparsed=0, other=6, events=16, messages=3, deliveries=4, rejects=0),
        dict(received=3, delivered=4, forwarded=0, deferred=0, bounced=0, rejected=0, expired=0),
    ),
    "youyo-postfix-log-parser/test-iso8601.log": (
        dict(lines=22, unparsed=0, other=6, events=16, messages=3, deliveries=4, rejects=0),
        dict(received=3, delivered=4, forwarded=0, deferred=0, bounced=0, rejected=0, expired=0),
    ),
}


def _fresh(tmp_path: Path, name: str = "logs.db") -> sqlite3.Connection:
    return store.load_store(tmp_path / name)


def test_every_postfix_fixture_file_is_covered() -> None:
    files = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.suffix in (".log", ".json")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "child-process"])
def test_fixture_counts(tmp_path: Path, name: str, parallel: bool) -> None:
    conn = _fresh(tmp_path)
    host = "mx1" if name.endswith(".json") else None  # the API JSON names no host
    counts = describe(save_log_file(conn, FIXTURES / name, host=host, reference=REFERENCE, now=0.0, parallel=parallel))
    expected_counts, expected_totals = EXPECTED[name]
    assert {k: counts[k] for k in expected_counts} == expected_counts
    summary = load_summary(conn)
    assert {k: summary[k] for k in TOTALS} == expected_totals


def test_plain_and_rfc3339_twins_store_the_same_rows(tmp_path: Path) -> None:
    plain, rfc = _fresh(tmp_path, "a.db"), _fresh(tmp_path, "b.db")
    save_log_file(plain, FIXTURES / "synthetic/mailcow-style-5k.log", reference=REFERENCE, now=0.0)
    save_log_file(rfc, FIXTURES / "synthetic/mailcow-style-5k-rfc3339.log", reference=REFERENCE, now=0.0)
    query = "SELECT qid, rcpt, relay, status, dsn, a, b, c, d FROM deliveries ORDER BY id"
    assert plain.execute(query).fetchall() == rfc.execute(query).fetchall()


def test_the_api_json_needs_a_host_and_is_counted_once(tmp_path: Path) -> None:
    conn = _fresh(tmp_path)
    path = FIXTURES / "synthetic/mailcow-api-postfix-logs-example.json"
    with pytest.raises(IngestError, match="--host"):
        save_log_file(conn, path, reference=REFERENCE, now=0.0)
    first = save_log_file(conn, path, host="mx1", reference=REFERENCE, now=0.0)
    second = save_log_file(conn, path, host="mx1", reference=REFERENCE, now=0.0)
    assert first.events == 14 and second.events == 0 and second.skipped == 50


def _lines(count: int, start: int = 0, host: str = "mx1") -> list[str]:
    """A message per four lines, each with its own queue id."""
    out = []
    for n in range(start, start + count):
        qid = f"{n:010X}"
        minute, second = divmod(n, 60)
        stamp = f"Nov 28 0{minute // 60}:{minute % 60:02d}:{second:02d}"
        out += [
            f"{stamp} {host} postfix/smtpd[1]: {qid}: client=c{n}.example[192.0.2.{n % 250 + 1}]",
            f"{stamp} {host} postfix/qmgr[2]: {qid}: from=<s{n}@example.org>, size=100, nrcpt=1 (queue active)",
            f"{stamp} {host} postfix/lmtp[3]: {qid}: to=<r{n}@example.net>, relay=dovecot[172.22.1.250]:24, delay=0.1, delays=0.05/0.01/0.02/0.02, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
            f"{stamp} {host} postfix/qmgr[2]: {qid}: removed",
        ]
    return out


def _write(path: Path, lines: list[str], mode: str = "w") -> None:
    with path.open(mode) as handle:
        handle.write("".join(line + "\n" for line in lines))


def _received(conn: sqlite3.Connection) -> int:
    return load_summary(conn)["received"]


def test_appended_lines_are_read_from_the_cursor(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, _lines(10))
    assert save_log_file(conn, log, reference=REFERENCE, now=0.0).lines == 40
    _write(log, _lines(5, start=10), "a")
    again = save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert again.lines == 20 and again.note.startswith("resumed at byte")
    assert _received(conn) == 15


def test_a_line_still_being_written_waits_for_the_next_run(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    lines = _lines(2)
    log.write_text("\n".join(lines) + "\n" + lines[0][:30])  # no newline yet: postfix is mid-write
    assert save_log_file(conn, log, reference=REFERENCE, now=0.0).lines == 8
    log.write_text("\n".join(lines) + "\n" + "\n".join(_lines(1, start=2)) + "\n")
    assert save_log_file(conn, log, reference=REFERENCE, now=0.0).lines == 4
    assert _received(conn) == 3


def test_rotation_rename_and_compress_never_counts_a_line_twice(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, _lines(10))
    save_log_file(conn, log, reference=REFERENCE, now=0.0)
    _write(log, _lines(3, start=10), "a")  # written after our run, before rotation
    os.rename(log, tmp_path / "mail.log.1")  # logrotate
    _write(log, _lines(4, start=13))
    first = save_log_file(conn, tmp_path / "mail.log.1", reference=REFERENCE, now=0.0)
    second = save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert (first.lines, second.lines) == (12, 16)
    assert _received(conn) == 17
    # next rotation compresses mail.log.1; reading it again (or the new names) adds nothing
    with (tmp_path / "mail.log.1").open("rb") as src, gzip.open(tmp_path / "mail.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "mail.log.1").unlink()
    os.rename(log, tmp_path / "mail.log.1")
    for path in (tmp_path / "mail.log.2.gz", tmp_path / "mail.log.1"):
        assert save_log_file(conn, path, reference=REFERENCE, now=0.0).lines == 0
    assert _received(conn) == 17


def test_copytruncate_starts_the_new_content_from_zero(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, _lines(10))
    save_log_file(conn, log, reference=REFERENCE, now=0.0)
    _write(log, _lines(2, start=50))  # truncated in place and rewritten: a new first line
    assert save_log_file(conn, log, reference=REFERENCE, now=0.0).lines == 8
    assert _received(conn) == 12


def test_a_message_spanning_two_ingests_stays_one_message(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    lines = _lines(1)
    _write(log, lines[:2])
    save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert conn.execute("SELECT COUNT(*), MAX(removed_ts IS NULL) FROM messages").fetchone() == (1, 1)
    _write(log, lines[2:], "a")
    save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert conn.execute("SELECT COUNT(*), MAX(removed_ts IS NULL) FROM messages").fetchone() == (1, 0)
    assert conn.execute("SELECT COUNT(DISTINCT message_id) FROM deliveries").fetchone() == (1,)


def test_a_queue_id_reused_after_removal_is_a_new_message(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    first = _lines(1)
    second = [line.replace("c0.example", "other.example").replace("Nov 28 00:00:00", "Nov 28 05:00:00") for line in first]
    _write(log, first + second)
    save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert conn.execute("SELECT COUNT(*) FROM messages WHERE qid = '0000000000'").fetchone() == (2,)


def test_unreadable_input_is_refused_and_nothing_half_stored(tmp_path: Path) -> None:
    conn = _fresh(tmp_path)
    with pytest.raises(IngestError, match="not a file"):
        save_log_file(conn, tmp_path / "missing.log", reference=REFERENCE, now=0.0)
    broken = tmp_path / "broken.log.gz"
    good = gzip.compress(("\n".join(_lines(50)) + "\n").encode())
    broken.write_bytes(good[: len(good) // 2])
    with pytest.raises(IngestError, match="nothing from it was stored"):
        save_log_file(conn, broken, reference=REFERENCE, now=0.0)
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM sources").fetchone() == (0,)


def test_garbage_lines_are_counted_never_fatal(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, ["\x00\x01 binary junk", "2019-04-03 19:16:29,234 INFO spawned: 'postfix'", *_lines(1), "Jan"])
    counts = save_log_file(conn, log, reference=REFERENCE, now=0.0)
    assert (counts.lines, counts.unparsed, counts.events) == (7, 3, 4)
    assert counts.unparsed_samples[0].startswith("\x00")


def test_store_is_wal_versioned_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    conn = _fresh(tmp_path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA user_version").fetchone() == (store.SCHEMA_VERSION,)
    conn.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(IngestError, match="newer than this mailfleet knows"):
        store.load_store(tmp_path / "logs.db")
    (tmp_path / "junk.db").write_text("this is not sqlite, it is a text file " * 100)
    with pytest.raises(IngestError, match="not a usable SQLite database"):
        store.load_store(tmp_path / "junk.db")


def test_fast_chunk_path_and_per_line_path_store_the_same_rows(tmp_path: Path) -> None:
    """The fused chunk scanner must agree with the reference per-line parser, row for row."""
    from mailfleet.postfix.ingest import LineFeeder
    from mailfleet.postfix.parse_line import SyslogClock, parse_any_line

    path = FIXTURES / "synthetic/mailcow-style-5k.log"
    fast = _fresh(tmp_path, "fast.db")
    save_log_file(fast, path, reference=REFERENCE, now=0.0)
    slow = _fresh(tmp_path, "slow.db")
    clock = SyslogClock(REFERENCE)
    feeder = LineFeeder(slow, None)
    feeder.feed_envelopes(e for e in (parse_any_line(line, clock) for line in path.read_text().splitlines()) if e)
    with slow:
        feeder.finish("per-line")
    for table in ("messages", "deliveries", "rejects"):
        query = f"SELECT * FROM {table} ORDER BY id"
        assert fast.execute(query).fetchall() == slow.execute(query).fetchall(), table


def test_a_file_without_newlines_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    conn, junk = _fresh(tmp_path), tmp_path / "junk.log"
    junk.write_bytes(b"x" * (9 << 20) + b"\n" + ("\n".join(_lines(1)) + "\n").encode())
    counts = save_log_file(conn, junk, reference=REFERENCE, now=0.0, parallel=False)
    assert counts.events == 4 and counts.unparsed >= 1


def test_year_less_lines_take_their_year_from_the_files_mtime_across_new_year(tmp_path: Path) -> None:
    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, [
        "Dec 31 23:59:58 mx1 postfix/smtpd[1]: 7A0000000A: client=c.example[192.0.2.1]",
        "Jan  1 00:00:02 mx1 postfix/qmgr[2]: 7A0000000A: removed",
    ])
    new_year = datetime(2027, 1, 1, 0, 5, tzinfo=timezone.utc).timestamp()
    os.utime(log, (new_year, new_year))
    save_log_file(conn, log, now=0.0)  # no reference given: the mtime is the reference
    first, removed = conn.execute("SELECT first_ts, removed_ts FROM messages").fetchone()
    assert datetime.fromtimestamp(first, tz=timezone.utc) == datetime(2026, 12, 31, 23, 59, 58, tzinfo=timezone.utc)
    assert removed - first == 4


def test_docker_json_lines_take_dockers_time_and_the_host_override(tmp_path: Path) -> None:
    path = FIXTURES / "synthetic/mailcow-style-docker-json-1k.log"
    plain = _fresh(tmp_path, "plain.db")
    save_log_file(plain, path, reference=REFERENCE, now=0.0)
    assert plain.execute("SELECT DISTINCT host FROM messages").fetchall() == [("a3426da50090",)]
    tagged = _fresh(tmp_path, "tagged.db")
    save_log_file(tagged, path, host="mx1", reference=REFERENCE, now=0.0)
    assert tagged.execute("SELECT DISTINCT host FROM messages").fetchall() == [("mx1",)]
    first = tagged.execute("SELECT MIN(first_ts) FROM messages").fetchone()[0]
    assert datetime.fromtimestamp(first, tz=timezone.utc).year == 2025  # Docker's "time", not the mtime year


def test_a_new_store_uses_large_pages(tmp_path: Path) -> None:
    conn = _fresh(tmp_path)
    assert conn.execute("PRAGMA page_size").fetchone() == (store.PAGE_SIZE,)


def test_a_busy_store_is_reported_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "BUSY_TIMEOUT", 0.2)
    holder = _fresh(tmp_path)
    holder.execute("BEGIN IMMEDIATE")  # another ingest is writing
    conn = store.load_store(tmp_path / "logs.db")
    log = tmp_path / "mail.log"
    _write(log, _lines(1))
    with pytest.raises(IngestError, match="busy.*another logs.ingest"):
        save_log_file(conn, log, reference=REFERENCE, now=0.0)
    holder.execute("ROLLBACK")
    assert save_log_file(conn, log, reference=REFERENCE, now=0.0).events == 4


def test_a_failing_parser_child_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailfleet.postfix import produce

    conn, log = _fresh(tmp_path), tmp_path / "mail.log"
    _write(log, _lines(3000))  # several batches: some rows reach the parent before the failure
    original = produce.Producer.flush
    calls = {"n": 0}

    def flaky_flush(self, final: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        original(self, final)

    monkeypatch.setattr(produce.Producer, "flush", flaky_flush)  # the forked child inherits it
    monkeypatch.setattr(produce, "FLUSH_ROWS", 500)
    with pytest.raises(IngestError, match="disk on fire.*nothing from it was stored"):
        save_log_file(conn, log, reference=REFERENCE, now=0.0, parallel=True)
    assert conn.execute("SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM sources)").fetchone() == (0, 0)
