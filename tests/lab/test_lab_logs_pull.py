"""``logs.pull`` against a lab host: real Postfix logs, read over SSH (pinned key) through the
Mailcow emulator's ``docker compose logs``, then ``trace`` by message-id.

A message is submitted on mx1 with sendmail to an unresolvable domain: Postfix picks it up,
defers it (no DNS in the lab), and the test deletes it with postsuper, so the trace shows
pickup, the deferred attempt and the removal, and the queue is left as it was.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import pytest

from lab_helpers import run_on

pytestmark = pytest.mark.lab

MAILFLEET = Path(sys.executable).parent / "mailfleet"


def _wait_for(inventory: Path, host: str, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run_on(inventory, host, "tail -n 400 /var/log/postfix.log")
        lines = [line for line in out.splitlines() if needle in line]
        if lines:
            return lines[-1]
        time.sleep(0.5)
    raise AssertionError(f"{host}: no log line with {needle!r} within {timeout} s")


def _mailfleet(*args: str) -> str:
    import subprocess

    result = subprocess.run([str(MAILFLEET), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_pull_twice_and_trace_a_message_from_a_lab_host(lab_fleet: Path, tmp_path: Path) -> None:
    message_id = f"lab-trace-{uuid.uuid4().hex[:12]}@mx1.test"
    run_on(
        lab_fleet, "mx1",
        f"printf 'From: app@mx1.test\\nTo: nobody@example.invalid\\nMessage-Id: <{message_id}>\\nSubject: t\\n\\nhi\\n'"
        " | /usr/sbin/sendmail -f app@mx1.test -t",
    )  # fmt: skip
    qid = _wait_for(lab_fleet, "mx1", message_id).split(": ")[1]
    _wait_for(lab_fleet, "mx1", f"{qid}: to=<nobody@example.invalid>")
    run_on(lab_fleet, "mx1", f"postsuper -d {qid}")
    _wait_for(lab_fleet, "mx1", f"{qid}: removed", timeout=10)

    db = tmp_path / "logs.db"
    first = json.loads(_mailfleet("logs.pull", "--host", "mx1", "--db", str(db), "--inventory", str(lab_fleet), "--json"))
    assert first["sources"][0]["events"] >= 4
    second = json.loads(_mailfleet("logs.pull", "--host", "mx1", "--db", str(db), "--inventory", str(lab_fleet), "--json"))
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM messages WHERE message_id = ?", (message_id,)).fetchone()[0]
        hosts = {row[0] for row in conn.execute("SELECT DISTINCT host FROM messages")}
    assert rows == 1, "the second pull must not store the message again"
    assert hosts == {"mx1"}  # tagged with the inventory name, not the syslog/container host
    assert second["sources"][0]["skipped"] >= 1 or second["sources"][0]["lines"] < first["sources"][0]["lines"]

    trace = json.loads(_mailfleet("trace", "--db", str(db), "--message-id", message_id, "--json"))
    (only,) = trace["traces"]
    events = [(step["event"], step.get("status")) for step in only["timeline"]]
    assert events[0] == ("accepted", None) and only["messages"][0]["origin"] == "pickup"
    assert ("delivery", "deferred") in events
    assert events[-1] == ("removed", None)
    assert only["messages"][0]["qid"] == qid
