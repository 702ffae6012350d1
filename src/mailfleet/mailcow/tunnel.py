"""Reach a host's Mailcow API through SSH: a local port forwarded to the host's loopback.

The API never has to face the internet: nginx-mailcow answers on the host's 127.0.0.1, and we
reach it through a paramiko ``direct-tcpip`` channel on the SSH connection whose host key is
pinned. TLS on top is verified against the host's own certificate (see ``tls``).
"""

from __future__ import annotations

import contextlib
import select
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import paramiko
from fabric import Connection

from mailfleet.errors import MailcowApiError, RemoteError
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Fleet, Host
from mailfleet.mailcow.client import MailcowClient
from mailfleet.mailcow.tls import pinned_session
from mailfleet.secrets import resolve_secret

_MARK = "----mailfleet-cert-end----"


@dataclass(frozen=True)
class ApiEndpoint:
    """What we learn from the host before talking to its API."""

    cert_pem: str
    mailcow_hostname: str


def fetch_api_endpoint(conn: Connection, host: Host, fleet: Fleet) -> ApiEndpoint:
    """Read the Mailcow certificate and ``MAILCOW_HOSTNAME`` in one SSH round trip."""
    install_dir = fleet.settings.mailcow.install_dir
    cert = shlex.quote(f"{install_dir}/data/assets/ssl/cert.pem")
    conf = shlex.quote(f"{install_dir}/mailcow.conf")
    command = (f"cat {cert} 2>/dev/null; echo {_MARK}; "
               f"sed -n 's/^MAILCOW_HOSTNAME=//p' {conf} 2>/dev/null | tail -n 1")
    result = conn.run(command, hide=True, warn=True, timeout=30, in_stream=False)
    cert_pem, _, rest = result.stdout.partition(_MARK)
    mailcow_hostname = rest.strip().strip("\"'") or host.hostname
    if "BEGIN CERTIFICATE" not in cert_pem:
        raise MailcowApiError(f"{host.name}: no Mailcow certificate at {install_dir}/data/assets/ssl/cert.pem; "
                              f"deploy the host first (`mailfleet deploy --host {host.name}`)")
    return ApiEndpoint(cert_pem=cert_pem.strip() + "\n", mailcow_hostname=mailcow_hostname)


class LocalForward:
    """Listen on 127.0.0.1:<free port>; each client gets a direct-tcpip channel to ``remote``.

    Fabric's ``forward_local`` needs a fixed local port; picking a free one avoids races between
    parallel hosts. Threads are daemonic and stop when ``close`` is called.
    """

    def __init__(self, transport: paramiko.Transport, remote: tuple[str, int], *, timeout: float = 15.0) -> None:
        self.transport = transport
        self.remote = remote
        self.timeout = timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.5)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: list[tuple[socket.socket, paramiko.Channel]] = []
        self._accepter = threading.Thread(target=self._accept_loop, name=f"fwd-{self.port}", daemon=True)
        self._accepter.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            if self._stop.is_set():
                client.close()
                return
            thread = threading.Thread(target=self._pump, args=(client, peer), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _pump(self, client: socket.socket, peer: tuple[str, int]) -> None:
        try:
            channel = self.transport.open_channel("direct-tcpip", self.remote, peer, timeout=self.timeout)
        except (paramiko.SSHException, OSError):
            client.close()
            return
        self._open.append((client, channel))
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, channel], [], [], 0.5)
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except OSError:
            pass
        finally:
            channel.close()
            client.close()

    def close(self) -> None:
        """Stop at once: wake every thread by shutting its sockets, then join them briefly."""
        self._stop.set()
        for client, channel in list(self._open):
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            channel.close()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepter.join(timeout=1)
        for thread in self._threads:
            thread.join(timeout=1)


@contextlib.contextmanager
def open_api_over(conn: Connection, host: Host, fleet: Fleet, api_key: str,
                  endpoint: ApiEndpoint | None = None) -> Iterator[MailcowClient]:
    """A client for ``host``'s API over an already open, host-key-verified connection.

    ``endpoint`` (certificate and MAILCOW_HOSTNAME) may come from facts already gathered over
    the same connection; otherwise it is read now (one more round trip)."""
    endpoint = endpoint or fetch_api_endpoint(conn, host, fleet)
    transport = conn.transport
    if transport is None or not transport.is_active():
        raise RemoteError(f"{host.name}: the SSH connection closed before the API tunnel could be opened")
    forward = LocalForward(transport, ("127.0.0.1", fleet.settings.api_port))
    session = pinned_session(endpoint.cert_pem, endpoint.mailcow_hostname)
    client = MailcowClient(f"https://127.0.0.1:{forward.port}", api_key, label=host.name, session=session)
    try:
        yield client
    finally:
        client.close()
        forward.close()


@contextlib.contextmanager
def open_api(host: Host | str, inventory: Inventory, *, conn: Connection | None = None) -> Iterator[MailcowClient]:
    """``with open_api("mx1", inv) as api: api.get_domains()`` - SSH, tunnel, pinned TLS, API key.

    Pass ``conn`` to reuse an open connection (it is left open); otherwise one is opened and closed.
    """
    from mailfleet.ssh import open_connection  # late: keeps ``mailfleet.mailcow`` light to import

    fleet = inventory.fleet
    if fleet is None:
        raise MailcowApiError(f"{inventory.path}: the inventory is invalid; run `mailfleet inventory.check`")
    if isinstance(host, str):
        if host not in fleet.hosts:
            raise MailcowApiError(f"no host {host!r} in {inventory.path}; hosts are {', '.join(fleet.hosts)}")
        host = fleet.hosts[host]
    if host.api_key is None:
        raise MailcowApiError(f"{host.name}: no api_key in the inventory, so mailfleet cannot use its Mailcow API; "
                              f"add `api_key: file:secrets/{host.name}.api-key` to the host")
    api_key = resolve_secret(host.api_key, inventory.base_dir)
    own = conn is None
    connection = conn or open_connection(host, fleet, inventory.base_dir)
    try:
        with open_api_over(connection, host, fleet, api_key) as client:
            yield client
    finally:
        if own:
            connection.close()
