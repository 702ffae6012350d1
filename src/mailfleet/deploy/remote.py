"""One host as deploy sees it: run a script, reach the Mailcow API. Effectful.

``SshRemote`` runs each script as ONE exec (``sh -s``, the script on stdin) on the host's already open, host-key-verified
connection (a raw paramiko channel: no pty, no Invoke runner threads, so a round trip costs
what SSH costs), and opens the API tunnel at most once per deploy. Tests replace it with a
fake that records every script.
"""

from __future__ import annotations

import contextlib
import select
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fabric import Connection

from mailfleet.errors import RemoteError
from mailfleet.inventory.model import Fleet, Host

if TYPE_CHECKING:  # the API client (and requests) is imported only when a host needs it
    from mailfleet.mailcow.client import MailcowClient
    from mailfleet.mailcow.tunnel import ApiEndpoint


@dataclass(frozen=True)
class RemoteResult:
    exit_code: int
    stdout: str
    stderr: str


class Remote(Protocol):
    name: str

    def run(self, script: str, *, timeout: int) -> RemoteResult: ...

    def api(self) -> MailcowClient: ...

    def close(self) -> None: ...


class SshRemote:
    def __init__(self, conn: Connection, host: Host, fleet: Fleet, api_key: str) -> None:
        self.conn = conn
        self.host = host
        self.fleet = fleet
        self.api_key = api_key
        self.name = host.name
        self._api_stack: contextlib.ExitStack | None = None
        self._api: MailcowClient | None = None
        self._endpoint: ApiEndpoint | None = None

    def prime_api(self, endpoint: ApiEndpoint) -> None:
        """Use a certificate and hostname already read with the facts (saves a round trip)."""
        self._endpoint = endpoint

    def run(self, script: str, *, timeout: int) -> RemoteResult:
        transport = self.conn.transport if self.conn.is_connected else None
        if transport is None or not transport.is_active():
            raise RemoteError(f"{self.name}: the SSH connection is closed")
        channel = transport.open_session(timeout=15)
        try:
            # The script goes over stdin, never on the command line: it may carry mailcow.conf
            # (passwords, the API key), and a command line is visible to every user in `ps`.
            channel.exec_command("sh -s")
            # One brace group: sh parses all of it before running any of it, and its commands
            # read /dev/null, so no command can swallow the rest of the script from stdin.
            channel.sendall(("{\n" + script + "\n} </dev/null\n").encode())
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while True:
                while channel.recv_ready():
                    out += channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RemoteError(f"{self.name}: a command did not finish within {timeout} s; "
                                      "it was stopped (the session was closed)")
                select.select([channel], [], [], min(remaining, 1.0))
            # Drain anything that arrived with the exit status.
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            return RemoteResult(channel.recv_exit_status(), out.decode("utf-8", "replace"),
                                err.decode("utf-8", "replace"))
        finally:
            channel.close()

    def api(self) -> MailcowClient:
        """The host's API client over the tunnel, opened on first use and kept for this deploy."""
        if self._api is None:
            from mailfleet.mailcow.tunnel import open_api_over

            stack = contextlib.ExitStack()
            try:
                self._api = stack.enter_context(open_api_over(self.conn, self.host, self.fleet, self.api_key,
                                                              self._endpoint))
            except BaseException:
                stack.close()
                raise
            self._api_stack = stack
        return self._api

    def reset_api(self) -> None:
        """Forget the API client (its certificate may have changed after a new installation)."""
        if self._api_stack is not None:
            self._api_stack.close()
        self._api_stack, self._api, self._endpoint = None, None, None

    def close(self) -> None:
        self.reset_api()
