"""``logs.pull``: fetch the ``postfix-mailcow`` container's log from a host over SSH, from the
host's time cursor on, and ingest it as that host.

On the host this runs, in the Mailcow install directory::

    docker compose logs --no-color --timestamps [--since <cursor>] postfix-mailcow

whose lines look like ``postfix-mailcow-1  | 2026-11-28T06:00:01.123456789Z <syslog line>``.
Docker's own UTC timestamp is authoritative (the inner syslog stamp has no year and is in
the container's zone). ``--since`` is inclusive, so lines at exactly the cursor time are
compared by hash and counted once (``ingest.save_time_ordered``).

Logs are tagged with the inventory's host name, not the container id the syslog line
carries, so a fleet's hosts stay apart and hand-offs between them can be linked.
"""

from __future__ import annotations

import shlex
import sqlite3
from datetime import datetime, timezone
from typing import Any, Protocol

from mailfleet.errors import RemoteError
from mailfleet.postfix import store
from mailfleet.postfix.ingest import save_time_ordered
from mailfleet.postfix.model import IngestCounts
from mailfleet.postfix.parse_line import Envelope, SyslogClock, parse_compose_line

SERVICE = "postfix-mailcow"


class Runner(Protocol):
    """What we need of a ``fabric.Connection``."""

    def run(self, command: str, **kwargs: Any) -> Any: ...


def render_since(ts: float) -> str:
    """The cursor as Docker's ``--since`` wants it: RFC 3339 UTC with microseconds."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_pull_command(install_dir: str, since: float | None, service: str = SERVICE) -> str:
    """The shell command run on the host; every variable part is quoted."""
    words = ["docker", "compose", "logs", "--no-color", "--timestamps"]
    if since is not None:
        words += ["--since", render_since(since)]
    words.append(service)
    return f"cd {shlex.quote(install_dir)} && {shlex.join(words)}"


def parse_compose_output(text: str, host: str, clock: SyslogClock) -> tuple[list[Envelope], int, list[str]]:
    """``docker compose logs`` output → envelopes tagged with ``host``, the count of lines
    that were not Postfix-shaped (supervisord, non-Postfix programs), and a few samples."""
    envelopes: list[Envelope] = []
    bad = 0
    samples: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        envelope = parse_compose_line(line, clock)
        if envelope is None:
            bad += 1
            if len(samples) < 5:
                samples.append(line[:200])
            continue
        envelopes.append((envelope[0], host, envelope[2], envelope[3]))
    return envelopes, bad, samples


def fetch_compose_logs(connection: Runner, install_dir: str, since: float | None, host: str) -> str:
    """Run the pull command on the host; a failure says what failed and what to check."""
    command = render_pull_command(install_dir, since)
    result = connection.run(command, hide=True, warn=True, in_stream=False)
    if getattr(result, "exited", 0) != 0:
        stderr = (getattr(result, "stderr", "") or "").strip()[-500:]
        raise RemoteError(
            f"{host}: `{command}` exited with {result.exited}: {stderr or 'no error output'}. "
            f"Check that Mailcow is installed in {install_dir} and that the {SERVICE} service exists; "
            "nothing was ingested."
        )
    return str(result.stdout)


def save_pulled_logs(
    conn: sqlite3.Connection,
    connection: Runner,
    *,
    host: str,
    install_dir: str,
    now: float,
    since: float | None = None,
) -> IngestCounts:
    """Pull from the host's cursor (or ``since`` on first contact) and ingest, as one commit."""
    key = f"pull:{host}"
    cursor = store.load_source(conn, key)
    start = cursor["last_ts"] if cursor and cursor["last_ts"] is not None else since
    text = fetch_compose_logs(connection, install_dir, start, host)
    clock = SyslogClock(datetime.fromtimestamp(now, tz=timezone.utc))
    envelopes, bad, samples = parse_compose_output(text, host, clock)
    counts = save_time_ordered(conn, key, "pull", envelopes, host=host, path=f"{host}:{SERVICE}", now=now, bad=bad)
    if samples:
        from dataclasses import replace

        counts = replace(counts, unparsed_samples=tuple(samples))
    return counts
