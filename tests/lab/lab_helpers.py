"""Small helpers for lab tests: run a command on a lab host with its pinned key, stop a daemon
by its pid file, bring up a private lab, make a throw-away CA and server certificate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailfleet.inventory import load_valid_inventory

REPO = Path(__file__).resolve().parents[2]


def run_on(inventory: Path, host: str, command: str, timeout: int = 20) -> str:
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(inventory)
    assert inv.fleet is not None
    conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir, timeout=5)
    try:
        result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        assert result.ok, f"{host}: {command!r} failed: {result.stderr}"
        return result.stdout
    finally:
        conn.close()


def stop_by_pid_file(pid_file: Path, *, wait_s: float = 5.0) -> None:
    """Stop a daemon a test started (SIGTERM to the PID in its pid file) and wait until it is gone."""
    import os
    import time

    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@contextmanager
def private_lab(name: str, prefix: str, subnets: tuple[str, ...], hosts: int = 2) -> Iterator[Any]:
    """A small lab of a test's own under var/lab-<name>-<pid>, on the first free subnet of
    ``subnets`` (another session's lab may hold one); skipped when none is free, always taken down."""
    import os
    import shutil

    import pytest

    from mailfleet.lab.lifecycle import lab_down, lab_up
    from mailfleet.lab.model import LabSpace
    from mailfleet.lab.state import LabPaths
    from mailfleet.lab.system import LabError

    root = REPO / "var" / f"lab-{name}-{os.getpid()}"
    paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                     example=REPO / "inventory" / "example.yaml")
    space = None
    try:
        for subnet in subnets:
            try:
                space = LabSpace(prefix=prefix, subnet=subnet)
                lab_up(paths, hosts, space, say=lambda _: None)
                break
            except LabError as exc:
                if "subnet" not in str(exc) and "clash" not in str(exc):
                    raise
                space = None
        if space is None:
            pytest.skip(f"none of {', '.join(subnets)} is free for a private lab")
        yield paths
    finally:
        if space is not None:
            lab_down(paths, space, say=lambda _: None)
        shutil.rmtree(root, ignore_errors=True)


def make_server_certificates(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """A throw-away CA (``mailfleet.lab.ca.build_ca``, as the lab's own) and a server certificate
    for ``address`` signed by it: ``(ca.pem, cert.pem, key.pem)`` in ``folder``, key mode 0600."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from mailfleet.lab.ca import build_ca

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_pem, ca_key_pem = build_ca("mailfleet test CA", now)
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_text(ca_pem)
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths
