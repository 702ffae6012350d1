"""``logs.pull``: the command sent to the host, parsing ``docker compose logs`` output, and
the time cursor (``--since`` is inclusive: lines at the cursor second are counted once)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailfleet.errors import RemoteError
from mailfleet.postfix import store
from mailfleet.postfix.parse_line import SyslogClock
from mailfleet.postfix.pull import parse_compose_output, render_pull_command, render_since, save_pulled_logs
from mailfleet.postfix.summary import load_summary

NOW = datetime(2026, 11, 28, 7, tzinfo=timezone.utc).timestamp()


def compose(stamp: str, line: str) -> str:
    return f"postfix-mailcow-1  | {stamp} Nov 28 07:00:00 a3426da50090 {line}"


BATCH_1 = [
    compose("2026-11-28T06:00:01.000000000Z", "postfix/smtpd[1]: 5A0000000A: client=c.example[192.0.2.1]"),
    compose("2026-11-28T06:00:01.000000000Z", "postfix/qmgr[2]: 5A0000000A: from=<a@example.org>, size=10, nrcpt=1 (queue active)"),
    "postfix-mailcow-1  | 2026-11-28T06:00:01.000000000Z 2026-11-28 06:00:01,234 INFO spawned: 'postfix' with pid 7",
]
BATCH_2 = BATCH_1 + [
    compose("2026-11-28T06:00:02.000000000Z", "postfix/lmtp[3]: 5A0000000A: to=<b@example.net>, relay=dovecot[172.22.1.250]:24, delay=1, delays=0.5/0.1/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Saved)"),
    compose("2026-11-28T06:00:02.000000000Z", "postfix/qmgr[2]: 5A0000000A: removed"),
]


@dataclass
class FakeSource:
    """Stands in for ``SshLineSource``: records commands, answers from a script, fails like it."""

    answers: list[list[str] | RemoteError]
    commands: list[str] = field(default_factory=list)

    def lines(self, command: str):
        self.commands.append(command)
        answer = self.answers.pop(0)
        if isinstance(answer, RemoteError):
            yield "postfix-mailcow-1  | 2026-11-28T06:00:01.000000000Z Nov 28 07:00:00 h postfix/qmgr[2]: 5A0000000A: removed"
            raise answer
        yield from answer


def test_command_quotes_everything_variable() -> None:
    command = render_pull_command("/opt/mailcow dockerized; rm -rf /", None)
    assert command == "cd '/opt/mailcow dockerized; rm -rf /' && docker compose logs --no-color --timestamps postfix-mailcow"
    since = render_pull_command("/opt/mailcow-dockerized", datetime(2026, 11, 28, 6, 0, 1, 500000, tzinfo=timezone.utc).timestamp())
    assert shlex.split(since)[-3:] == ["--since", "2026-11-28T06:00:01.500000Z", "postfix-mailcow"]
    assert render_since(0) == "1970-01-01T00:00:00.000000Z"


def test_compose_output_is_tagged_with_the_inventory_host() -> None:
    text = "\n".join([*BATCH_1, "garbage without a docker stamp"]) + "\n\n"
    envelopes, bad, samples = parse_compose_output(text, "mx1", SyslogClock(datetime(2026, 11, 28, tzinfo=timezone.utc)))
    assert bad == 1 and samples == ["garbage without a docker stamp"]
    second = datetime(2026, 11, 28, 6, 0, 1, tzinfo=timezone.utc).timestamp()
    assert [(e[0], e[1], e[2]) for e in envelopes] == [
        (second, "mx1", "postfix/smtpd"),
        (second, "mx1", "postfix/qmgr"),
        (second, "mx1", ""),  # supervisord: not Postfix, but it moves the cursor
    ]


def test_second_pull_continues_from_the_cursor_and_counts_nothing_twice(tmp_path: Path) -> None:
    conn = store.load_store(tmp_path / "logs.db")
    connection = FakeSource([list(BATCH_1), list(BATCH_2)])
    first = save_pulled_logs(conn, connection, host="mx1", install_dir="/opt/mailcow-dockerized", now=NOW)
    assert (first.events, first.unparsed, first.other) == (2, 0, 1)
    assert "--since" not in connection.commands[0]
    second = save_pulled_logs(conn, connection, host="mx1", install_dir="/opt/mailcow-dockerized", now=NOW)
    assert "--since 2026-11-28T06:00:01.000000Z" in connection.commands[1]
    assert (second.skipped, second.events) == (3, 2)  # the three lines at the cursor second were seen
    summary = load_summary(conn)
    assert (summary["received"], summary["delivered"], summary["hosts"]) == (1, 1, ["mx1"])
    assert conn.execute("SELECT COUNT(*), MIN(removed_ts IS NOT NULL) FROM messages").fetchone() == (1, 1)


def test_a_failed_remote_command_stores_nothing_and_says_what_to_check(tmp_path: Path) -> None:
    conn = store.load_store(tmp_path / "logs.db")
    connection = FakeSource([RemoteError("mx1: exited with 1: no such service: postfix-mailcow")])
    with pytest.raises(RemoteError, match="no such service"):
        save_pulled_logs(conn, connection, host="mx1", install_dir="/opt/mailcow-dockerized", now=NOW)
    assert conn.execute("SELECT COUNT(*) FROM sources").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)  # the line before the failure too
