"""SSH connections with pinned host keys, and first contact (``trust-host``).

Fabric's ``Connection`` installs paramiko's ``AutoAddPolicy``, which accepts any key: a
man-in-the-middle would get our API keys. Every connection made here replaces it with
``RejectPolicy`` and knows exactly one key per host, the one pinned in the inventory.
``~/.ssh/config`` is never read (``SSHConfig()`` given explicitly), so a user's personal SSH
settings cannot redirect a production deploy.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import BadHostKeyException, SSHException

from mailfleet.errors import HostKeyError, RemoteError
from mailfleet.inventory.model import Fleet, Host
from mailfleet.secrets import secret_path

CONNECT_TIMEOUT = 10


def fingerprint(key_line: str) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a ``TYPE BASE64`` public key."""
    blob = base64.b64decode(key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def known_hosts_entry(host: Host) -> str:
    return host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"


def _pin(client: paramiko.SSHClient, host: Host) -> None:
    if not host.host_key:
        raise HostKeyError(
            f"{host.name}: no host key is pinned in the inventory, so mailfleet will not connect "
            f"(it cannot tell {host.address} from an impostor). Run `mailfleet trust-host --host {host.name}`, "
            "compare the fingerprint with the host's console, and confirm."
        )
    key_type, blob = host.host_key.split()[:2]
    key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    client.get_host_keys().add(known_hosts_entry(host), key_type, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())


def connect(host: Host, fleet: Fleet, base_dir: Path, *, timeout: int = CONNECT_TIMEOUT) -> Connection:
    """A Fabric connection to ``host`` that only accepts its pinned key. Opens lazily."""
    connect_kwargs: dict[str, object] = {"banner_timeout": timeout, "auth_timeout": timeout}
    if fleet.settings.ssh_identity is not None:
        connect_kwargs.update(key_filename=str(secret_path(fleet.settings.ssh_identity, base_dir)),
                              look_for_keys=False, allow_agent=False)
    config = Config(ssh_config=paramiko.SSHConfig(), overrides={"run": {"hide": True, "warn": True}})
    conn = Connection(host.address, user=host.ssh_user, port=host.ssh_port, config=config,
                      connect_timeout=timeout, connect_kwargs=connect_kwargs)
    _pin(conn.client, host)
    return conn


def open_connection(host: Host, fleet: Fleet, base_dir: Path, *, timeout: int = CONNECT_TIMEOUT) -> Connection:
    """Connect now and translate failures into errors that say what to do."""
    conn = connect(host, fleet, base_dir, timeout=timeout)
    try:
        conn.open()
    except BadHostKeyException as exc:
        raise HostKeyError(
            f"{host.name}: HOST KEY CHANGED. {host.address} presented {fingerprint(key_line(exc.key))} but the "
            f"inventory pins {fingerprint(host.host_key or '')}. Someone may be intercepting the connection, or the "
            f"host was reinstalled. Nothing was sent. Verify on the host's console, then run "
            f"`mailfleet trust-host --host {host.name}` to pin the new key."
        ) from None
    except SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyError(
                f"{host.name}: {host.address} presented a key of another type than the one pinned; "
                f"run `mailfleet trust-host --host {host.name}` to see it"
            ) from None
        raise RemoteError(f"{host.name}: SSH to {host.ssh_user}@{host.address}:{host.ssh_port} failed: {exc}") from None
    except (socket.timeout, TimeoutError):
        raise RemoteError(
            f"{host.name}: no answer from {host.address}:{host.ssh_port} within {timeout} s; "
            "check that the host is up and reachable"
        ) from None
    except OSError as exc:
        raise RemoteError(f"{host.name}: cannot reach {host.address}:{host.ssh_port}: {exc}") from None
    return conn


def fetch_host_key(address: str, port: int = 22, *, timeout: int = CONNECT_TIMEOUT) -> str:
    """The host key a server presents, without logging in (first contact for ``trust-host``)."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise RemoteError(f"cannot reach {address}:{port}: {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return key_line(transport.get_remote_server_key())
    except SSHException as exc:
        raise RemoteError(f"{address}:{port} did not complete an SSH handshake: {exc}") from None
    finally:
        transport.close()
