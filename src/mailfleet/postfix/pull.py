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
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Protocol

from mailfleet.errors import RemoteError
from mailfleet.postfix import store
from mailfleet.postfix.ingest import save_time_ordered
from mailfleet.postfix.model import IngestCounts
from mailfleet.postfix.parse_line import Envelope, SyslogClock, parse_compose_line, parse_rfc3339

SERVICE = "postfix-mailcow"
READ_TIMEOUT = 120.0


class LineSource(Protocol):
    """Runs a command on the host and yields its output lines as they arrive; raises
    ``RemoteError`` (after the last line) when the command fails."""

    def lines(self, command: str) -> Iterator[str]: ...


class SshLineSource:
    """Streams a command's stdout over a ``fabric.Connection``'s SSH channel.

    Fabric's ``run`` keeps the whole output in memory (twice); a first pull of a busy host
    can be gigabytes, so lines are read from the channel one by one instead.
    """

    def __init__(self, connection: Any, host: str, timeout: float = READ_TIMEOUT) -> None:
        self.connection = connection
        self.host = host
        self.timeout = timeout

    def lines(self, command: str) -> Iterator[str]:
        self.connection.open()
        try:
            stdin, stdout, stderr = self.connection.client.exec_command(command, timeout=self.timeout)
            stdin.close()
            for raw in stdout:
                yield raw.rstrip("\r\n") if isinstance(raw, str) else raw.decode("utf-8", "replace").rstrip("\r\n")
            status = stdout.channel.recv_exit_status()
            error = stderr.read().decode("utf-8", "replace") if status != 0 else ""
        except (socket.timeout, TimeoutError):
            raise RemoteError(
                f"{self.host}: `{command}` sent nothing for {self.timeout:.0f} s; the host or Docker is stuck. "
                "Nothing was ingested; try again, or check `docker compose ps` on the host."
            ) from None
        if status != 0:
            raise RemoteError(
                f"{self.host}: `{command}` exited with {status}: {error.strip()[-500:] or 'no error output'}. "
                f"Check that Mailcow is installed there and that the {SERVICE} service exists; nothing was ingested."
            )


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


def parse_compose_lines(
    lines: Iterable[str], host: str, clock: SyslogClock, rejected: list[str]
) -> Iterator[Envelope]:
    """``docker compose logs`` lines → envelopes tagged with ``host``. Docker-stamped lines
    that are not Postfix (supervisord, postconf warnings) come out with an empty tag, so they
    count as ``other`` and advance the cursor; lines without a Docker stamp go to ``rejected``."""
    for line in lines:
        if not line.strip():
            continue
        envelope = parse_compose_line(line, clock)
        if envelope is None:
            stamped = _docker_stamp(line)
            if stamped is None:
                rejected.append(line[:200])
            else:  # not Postfix (supervisord, postconf...), but it moves the cursor on: tag ""
                yield stamped[0], host, "", stamped[1]
            continue
        yield envelope[0], host, envelope[2], envelope[3]


def _docker_stamp(line: str) -> tuple[float, str] | None:
    bar = line.find("| ")
    if bar == -1:
        return None
    inner = line[bar + 2 :].lstrip()
    space = inner.find(" ")
    try:
        return parse_rfc3339(inner[:space] if space != -1 else inner), inner[space + 1 :] if space != -1 else ""
    except ValueError:
        return None


def parse_compose_output(text: str, host: str, clock: SyslogClock) -> tuple[list[Envelope], int, list[str]]:
    """The same over a whole output: envelopes, count of rejected lines, a few samples."""
    rejected: list[str] = []
    envelopes = list(parse_compose_lines(text.splitlines(), host, clock, rejected))
    return envelopes, len(rejected), rejected[:5]


def save_pulled_logs(
    conn: sqlite3.Connection,
    source: LineSource,
    *,
    host: str,
    install_dir: str,
    now: float,
    since: float | None = None,
) -> IngestCounts:
    """Pull from the host's cursor (or ``since`` on first contact) and ingest, as one commit:
    a failure anywhere (SSH, the remote command, SQLite) stores nothing and keeps the cursor."""
    key = f"pull:{host}"
    cursor = store.load_source(conn, key)
    start = cursor["last_ts"] if cursor and cursor["last_ts"] is not None else since
    command = render_pull_command(install_dir, start)
    clock = SyslogClock(datetime.fromtimestamp(now, tz=timezone.utc))
    rejected: list[str] = []
    envelopes = parse_compose_lines(source.lines(command), host, clock, rejected)
    counts = save_time_ordered(
        conn, key, "pull", envelopes, host=host, path=f"{host}:{SERVICE}", now=now, bad=lambda: len(rejected)
    )
    if rejected:
        counts = replace(counts, unparsed_samples=tuple(rejected[:5]))
    return counts
