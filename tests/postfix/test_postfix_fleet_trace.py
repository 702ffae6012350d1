"""Two hosts' logs: a password reset followed from submission on mx1, through the content
filter, over the relay hand-off to relay1, to the remote MX; a bounce followed back.
Also: summary counts, ingest order independence, idempotence, trace output."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from invoke import Program

from mailfleet.cli import build_namespace
from mailfleet.postfix import store
from mailfleet.postfix.ingest import save_log_files
from mailfleet.postfix.render_trace import render_trace_json, render_trace_text
from mailfleet.postfix.summary import load_summary
from mailfleet.postfix.trace import TraceQueryError, load_trace

REFERENCE = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)

MX1 = [
    # 1: a password reset submitted by the app, through the content filter, to relay1
    "Nov 28 06:00:00 mx1 postfix/submission/smtpd[2001]: connect from app.example.net[198.51.100.7]",
    "Nov 28 06:00:01 mx1 postfix/submission/smtpd[2001]: 1A0000000A: client=app.example.net[198.51.100.7], sasl_method=PLAIN, sasl_username=noreply@shop.example",
    "Nov 28 06:00:01 mx1 postfix/cleanup[2002]: 1A0000000A: message-id=<reset-42@shop.example>",
    "Nov 28 06:00:01 mx1 postfix/qmgr[300]: 1A0000000A: from=<noreply@shop.example>, size=4120, nrcpt=1 (queue active)",
    "Nov 28 06:00:02 mx1 postfix/10025/smtpd[2010]: 1B0000000B: client=localhost[127.0.0.1]",
    "Nov 28 06:00:02 mx1 postfix/cleanup[2002]: 1B0000000B: message-id=<reset-42@shop.example>",
    "Nov 28 06:00:02 mx1 postfix/qmgr[300]: 1B0000000B: from=<noreply@shop.example>, size=4800, nrcpt=1 (queue active)",
    "Nov 28 06:00:02 mx1 postfix/smtp[2003]: 1A0000000A: to=<ann@gmail.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.2, delays=0.1/0/0.1/1, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 1B0000000B)",
    "Nov 28 06:00:02 mx1 postfix/qmgr[300]: 1A0000000A: removed",
    "Nov 28 06:00:03 mx1 postfix/smtp[2004]: 1B0000000B: to=<ann@gmail.com>, relay=relay1.lab.example[10.77.0.21]:25, delay=0.4, delays=0.01/0.02/0.2/0.17, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1C0000000C)",
    "Nov 28 06:00:03 mx1 postfix/qmgr[300]: 1B0000000B: removed",
    # 2: a newsletter to a dead address, handed to relay1 on the bulk transport; it bounces there
    "Nov 28 06:10:00 mx1 postfix/submission/smtpd[2005]: 2A0000000A: client=app.example.net[198.51.100.7], sasl_method=PLAIN, sasl_username=newsletter@shop.example",
    "Nov 28 06:10:00 mx1 postfix/cleanup[2002]: 2A0000000A: message-id=<news-7@shop.example>",
    "Nov 28 06:10:00 mx1 postfix/qmgr[300]: 2A0000000A: from=<newsletter@shop.example>, size=9000, nrcpt=1 (queue active)",
    "Nov 28 06:10:09 mx1 postfix/bulk/smtp[2006]: 2A0000000A: to=<gone@web.de>, relay=relay1.lab.example[10.77.0.21]:25, delay=9.1, delays=0.1/8.5/0.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 2C0000000C)",
    "Nov 28 06:10:09 mx1 postfix/qmgr[300]: 2A0000000A: removed",
    # the bounce notice comes back from relay1 and is delivered to the sender's mailbox
    "Nov 28 06:10:12 mx1 postfix/smtpd[2007]: 3E0000000E: client=relay1.lab.example[10.77.0.21]",
    "Nov 28 06:10:12 mx1 postfix/cleanup[2002]: 3E0000000E: message-id=<20261128061011.2D0000000D@relay1.lab.example>",
    "Nov 28 06:10:12 mx1 postfix/qmgr[300]: 3E0000000E: from=<>, size=2300, nrcpt=1 (queue active)",
    "Nov 28 06:10:12 mx1 postfix/lmtp[2008]: 3E0000000E: to=<newsletter@shop.example>, relay=dovecot[172.22.1.250]:24, delay=0.1, delays=0.05/0/0.01/0.04, dsn=2.0.0, status=sent (250 2.0.0 <newsletter@shop.example> abc Saved)",
    "Nov 28 06:10:12 mx1 postfix/qmgr[300]: 3E0000000E: removed",
    # noise and a reject
    "Nov 28 06:20:00 mx1 postfix/postscreen[2009]: CONNECT from [192.0.2.66]:4000 to [10.77.0.11]:25",
    "Nov 28 06:20:01 mx1 postfix/postscreen[2009]: NOQUEUE: reject: RCPT from [192.0.2.66]:4000: 550 5.7.1 Service unavailable; client [192.0.2.66] blocked using zen.spamhaus.org; from=<x@spam.example>, to=<ann@shop.example>, proto=ESMTP, helo=<User>",
]

RELAY1 = [
    "Nov 28 06:00:03 relay1 postfix/smtpd[501]: 1C0000000C: client=mx1.lab.example[10.77.0.11]",
    "Nov 28 06:00:03 relay1 postfix/cleanup[502]: 1C0000000C: message-id=<reset-42@shop.example>",
    "Nov 28 06:00:03 relay1 postfix/qmgr[400]: 1C0000000C: from=<noreply@shop.example>, size=5000, nrcpt=1 (queue active)",
    "Nov 28 06:00:04 relay1 postfix/smtp[503]: 1C0000000C: to=<ann@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.27]:25, delay=1.1, delays=0.01/0/0.5/0.6, dsn=4.7.0, status=deferred (host gmail-smtp-in.l.google.com[142.250.102.27] said: 421 4.7.0 Try again later (in reply to end of DATA command))",
    "Nov 28 06:05:04 relay1 postfix/qmgr[400]: 1C0000000C: from=<noreply@shop.example>, size=5000, nrcpt=1 (queue active)",
    "Nov 28 06:05:05 relay1 postfix/smtp[504]: 1C0000000C: to=<ann@gmail.com>, relay=gmail-smtp-in.l.google.com[142.250.102.27]:25, delay=302, delays=301/0.01/0.4/0.5, dsn=2.0.0, status=sent (250 2.0.0 OK 1764309905 q7si123 - gsmtp)",
    "Nov 28 06:05:05 relay1 postfix/qmgr[400]: 1C0000000C: removed",
    "Nov 28 06:10:09 relay1 postfix/smtpd[505]: 2C0000000C: client=mx1.lab.example[10.77.0.11]",
    "Nov 28 06:10:09 relay1 postfix/cleanup[502]: 2C0000000C: message-id=<news-7@shop.example>",
    "Nov 28 06:10:09 relay1 postfix/qmgr[400]: 2C0000000C: from=<newsletter@shop.example>, size=9100, nrcpt=1 (queue active)",
    "Nov 28 06:10:11 relay1 postfix/smtp[506]: 2C0000000C: to=<gone@web.de>, relay=mx-ha02.web.de[212.227.17.8]:25, delay=2, delays=0.01/0.01/1/1, dsn=5.1.1, status=bounced (host mx-ha02.web.de[212.227.17.8] said: 550 5.1.1 <gone@web.de>: Recipient address rejected: User unknown (in reply to RCPT TO command))",
    "Nov 28 06:10:11 relay1 postfix/cleanup[502]: 2D0000000D: message-id=<20261128061011.2D0000000D@relay1.lab.example>",
    "Nov 28 06:10:11 relay1 postfix/bounce[507]: 2C0000000C: sender non-delivery notification: 2D0000000D",
    "Nov 28 06:10:11 relay1 postfix/qmgr[400]: 2C0000000C: removed",
    "Nov 28 06:10:11 relay1 postfix/qmgr[400]: 2D0000000D: from=<>, size=2300, nrcpt=1 (queue active)",
    "Nov 28 06:10:12 relay1 postfix/smtp[508]: 2D0000000D: to=<newsletter@shop.example>, relay=mx1.lab.example[10.77.0.11]:25, delay=0.3, delays=0.01/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 3E0000000E)",
    "Nov 28 06:10:12 relay1 postfix/qmgr[400]: 2D0000000D: removed",
]


def _logs(tmp_path: Path) -> tuple[Path, Path]:
    mx1 = tmp_path / "mx1.log"
    relay1 = tmp_path / "relay1.log"
    mx1.write_text("\n".join(MX1) + "\n")
    relay1.write_text("\n".join(RELAY1) + "\n")
    return mx1, relay1


def _ingest(conn: sqlite3.Connection, *paths: Path) -> list:
    return save_log_files(conn, list(paths), reference=REFERENCE, now=0.0)


def _chain(trace) -> list[str]:
    return [f"{m.host}/{m.qid}" for m in trace]


@pytest.mark.parametrize("order", ["mx1 first", "relay1 first"])
def test_a_reset_is_followed_through_filter_and_relay_to_the_remote_mx(tmp_path: Path, db, order: str) -> None:
    mx1, relay1 = _logs(tmp_path)
    counts = _ingest(db, *((mx1, relay1) if order == "mx1 first" else (relay1, mx1)))
    assert sum(c.links for c in counts) == 4  # filter, two relay hand-offs, the bounce coming back
    traces = load_trace(db, message_id="<reset-42@shop.example>")
    assert len(traces) == 1
    assert _chain(traces[0]) == ["mx1/1A0000000A", "mx1/1B0000000B", "relay1/1C0000000C"]
    timeline = render_trace_json(traces, {"message_id": "reset-42@shop.example"})["traces"][0]["timeline"]
    deliveries = [(s["host"], s["status"], s["relay"]) for s in timeline if s["event"] == "delivery"]
    assert deliveries == [
        ("mx1", "sent", "127.0.0.1[127.0.0.1]:10024"),
        ("mx1", "sent", "relay1.lab.example[10.77.0.21]:25"),
        ("relay1", "deferred", "gmail-smtp-in.l.google.com[142.250.102.27]:25"),
        ("relay1", "sent", "gmail-smtp-in.l.google.com[142.250.102.27]:25"),
    ]
    last = [s for s in timeline if s["event"] == "delivery"][-1]
    assert last["attempt"] == 2 and last["delays"] == [301.0, 0.01, 0.4, 0.5] and last["dsn"] == "2.0.0"
    assert timeline[0]["event"] == "accepted" and timeline[0]["client"] == "app.example.net[198.51.100.7]"
    assert timeline[-1]["event"] == "removed" and timeline[-1]["host"] == "relay1"


def test_any_key_finds_the_same_trace(tmp_path: Path, db) -> None:
    _ingest(db, *_logs(tmp_path))
    expected = ["mx1/1A0000000A", "mx1/1B0000000B", "relay1/1C0000000C"]
    assert _chain(load_trace(db, queue_id="1C0000000C")[0]) == expected  # from the far end
    assert _chain(load_trace(db, recipient="ANN@gmail.com")[0]) == expected  # case does not matter
    senders = load_trace(db, sender="noreply@shop.example")
    assert [_chain(t) for t in senders] == [expected]
    assert load_trace(db, message_id="nothing@here") == []
    assert load_trace(db, queue_id="1A0000000A", since=REFERENCE.timestamp()) == []


def test_a_bounce_is_linked_to_its_original_and_back_to_the_sender(tmp_path: Path, db) -> None:
    _ingest(db, *_logs(tmp_path))
    (trace,) = load_trace(db, recipient="gone@web.de")
    assert _chain(trace) == ["mx1/2A0000000A", "relay1/2C0000000C", "relay1/2D0000000D", "mx1/3E0000000E"]
    by_name = {f"{m.host}/{m.qid}": m for m in trace}
    assert by_name["relay1/2D0000000D"].bounce_of == by_name["relay1/2C0000000C"].id
    text = render_trace_text([trace])
    assert "bounced to <gone@web.de>" in text
    assert "bounce notification relay1/2D0000000D sent to the sender" in text
    assert "→ mx1/3E0000000E" in text


def test_summary_counts_messages_from_outside_and_final_deliveries(tmp_path: Path, db) -> None:
    _ingest(db, *_logs(tmp_path))
    summary = load_summary(db)
    assert {k: summary[k] for k in ("received", "delivered", "forwarded", "deferred", "bounced", "rejected", "expired")} == {
        "received": 2,  # the reset and the newsletter; not the filter copy, the relay copies or the DSN
        "delivered": 2,  # the reset at gmail, the bounce notice in the sender's mailbox
        "forwarded": 3,  # mx1 → relay1 twice, relay1 → mx1 (the DSN)
        "deferred": 1,
        "bounced": 1,
        "rejected": 1,
        "expired": 0,
    }
    assert summary["deferrals"] == 1
    assert summary["per_day"] == [
        {"day": "2026-11-28", "received": 2, "delivered": 2, "deferred": 1, "bounced": 1, "rejected": 1}
    ]
    bulk = next(row for row in summary["queue_delay"] if row["transport"] == "bulk")
    assert bulk == {"transport": "bulk", "deliveries": 1, "b_p50": 8.5, "b_p95": 8.5, "b_max": 8.5}
    assert summary["top_deferral_reasons"] == [{"reason": "421 4.7.0 Try again later (end of DATA command)", "count": 1}]
    assert [row["relay"] for row in summary["per_relay"]][:2] == ["gmail-smtp-in.l.google.com", "dovecot"]


def test_ingesting_the_same_files_again_changes_nothing(tmp_path: Path, db) -> None:
    mx1, relay1 = _logs(tmp_path)
    _ingest(db, mx1, relay1)
    before = load_summary(db)
    rows = db.execute("SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM deliveries)").fetchone()
    again = _ingest(db, mx1, relay1)
    assert [c.lines for c in again] == [0, 0]
    assert load_summary(db) == before
    assert db.execute("SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM deliveries)").fetchone() == rows


def test_relay_named_only_by_address_links_through_the_inventory_mapping(tmp_path: Path, db) -> None:
    mx1 = tmp_path / "mx1.log"
    relay1 = tmp_path / "relay1.log"
    mx1.write_text("\n".join(line.replace("relay1.lab.example[10.77.0.21]", "unknown[10.77.0.21]") for line in MX1) + "\n")
    relay1.write_text("\n".join(RELAY1) + "\n")
    with db:
        store.save_host_addresses(db, [("10.77.0.21", "relay1", "inventory address")])
    _ingest(db, mx1, relay1)
    assert _chain(load_trace(db, message_id="reset-42@shop.example")[0])[-1] == "relay1/1C0000000C"


def test_trace_needs_exactly_one_key(db) -> None:
    with pytest.raises(TraceQueryError, match="exactly one"):
        load_trace(db)
    with pytest.raises(TraceQueryError, match="got --queue-id, --sender"):
        load_trace(db, sender="a@b", queue_id="X")


def _run(argv: list[str], capsys) -> str:
    program = Program(namespace=build_namespace(), name="mailfleet", binary="mailfleet")
    program.run(["mailfleet", *argv], exit=False)
    return capsys.readouterr().out


def test_command_line_ingest_summary_trace(tmp_path: Path, capsys) -> None:
    import json
    import os

    mx1, relay1 = _logs(tmp_path)
    for path in (mx1, relay1):
        os.utime(path, (REFERENCE.timestamp(), REFERENCE.timestamp()))
    db_path = str(tmp_path / "cli.db")
    out = _run(["logs.ingest", f"{mx1},{relay1}", "--db", db_path, "--json"], capsys)
    sources = json.loads(out)["sources"]
    assert [s["lines"] for s in sources] == [len(MX1), len(RELAY1)]
    summary = json.loads(_run(["logs.summary", "--db", db_path, "--json"], capsys))
    assert (summary["received"], summary["delivered"], summary["forwarded"]) == (2, 2, 3)
    trace = json.loads(_run(["trace", "--db", db_path, "--queue-id", "1C0000000C", "--json"], capsys))
    assert trace["traces"][0]["hosts"] == ["mx1", "relay1"]
    text = _run(["trace", "--db", db_path, "--message-id", "reset-42@shop.example"], capsys)
    assert "accepted from app.example.net[198.51.100.7] as noreply@shop.example" in text
    assert "deferred to <ann@gmail.com> (attempt 1)" in text


def test_command_line_errors_say_what_to_do(tmp_path: Path, capsys) -> None:
    from invoke import Exit

    program = Program(namespace=build_namespace(), name="mailfleet", binary="mailfleet")
    with pytest.raises((SystemExit, Exit)):
        program.run(["mailfleet", "logs.summary", "--db", str(tmp_path / "missing.db")], exit=True)
    err = capsys.readouterr().err
    assert "does not exist" in err and "logs.ingest" in err
    with pytest.raises((SystemExit, Exit)):
        program.run(["mailfleet", "logs.ingest", str(tmp_path / "nope*.log"), "--db", str(tmp_path / "x.db")], exit=True)
    assert "matches no file" in capsys.readouterr().err


def test_trace_text_never_passes_terminal_escapes_through(tmp_path: Path, db) -> None:
    log = tmp_path / "mx1.log"
    log.write_text(
        "Nov 28 06:00:01 mx1 postfix/smtpd[1]: 9A0000000A: client=evil\x1b[2J.example[192.0.2.9]\n"
        "Nov 28 06:00:02 mx1 postfix/smtp[2]: 9A0000000A: to=<a@b.example>, relay=x[192.0.2.1]:25, delay=1, "
        "delays=0/0/0.5/0.5, dsn=5.0.0, status=bounced (host x said: 550 \x1b]0;owned\x07 no)\n"
    )
    _ingest(db, log)
    text = render_trace_text(load_trace(db, queue_id="9A0000000A"))
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text


def test_help_is_shown_not_eaten_as_an_argument(capsys) -> None:
    assert "Usage: mailfleet logs.ingest FILES --db FILE" in _run(["logs.ingest", "--help"], capsys)
    for task in ("logs.summary", "logs.pull", "trace"):
        assert "Docstring:" in _run([task, "--help"], capsys)


def test_queue_delay_series_per_hour_and_transport(tmp_path: Path, db) -> None:
    from mailfleet.postfix.summary import load_queue_delay_series

    _ingest(db, *_logs(tmp_path))
    series = load_queue_delay_series(db)
    assert {(row["bucket"], row["transport"]) for row in series} == {
        ("2026-11-28T06:00:00Z", "smtp"), ("2026-11-28T06:00:00Z", "bulk"), ("2026-11-28T06:00:00Z", "lmtp"),
    }
    bulk = next(row for row in series if row["transport"] == "bulk")
    assert (bulk["deliveries"], bulk["b_max"]) == (1, 8.5)
