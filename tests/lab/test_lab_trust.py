"""Lab hosts trust the lab CA in their own /etc, and the machine's /etc/ssl is never changed.

A private two-host lab (names mfca-*, a free subnet of its own), removed at the end."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_helpers import private_lab, run_on

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
SUBNETS = ("10.84.0.0/24", "10.85.0.0/24", "10.86.0.0/24")
MACHINE_SSL = Path("/etc/ssl")
OFFER = "/var/lib/docker/mailcow-emulator/lab-ca"


def _digest(folder: Path) -> str:
    """Names, link targets and contents of everything under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path).encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def trust_lab() -> Iterator[tuple[Path, Path, str]]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    machine_before = _digest(MACHINE_SSL)
    with private_lab("trust", "mfca", SUBNETS) as paths:
        yield paths.inventory, paths.state_dir, machine_before


def test_the_ca_key_is_private_and_the_machine_ssl_folder_is_untouched(trust_lab: tuple[Path, Path, str]) -> None:
    _, state_dir, machine_before = trust_lab
    key = state_dir / "ca" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    ca_pem = (state_dir / "ca" / "ca.pem").read_text()
    assert ca_pem.strip() not in Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    assert _digest(MACHINE_SSL) == machine_before


@pytest.mark.parametrize("host", ["mx1", "relay1"])
def test_each_host_trusts_the_lab_ca_in_its_own_etc(trust_lab: tuple[Path, Path, str], host: str) -> None:
    inventory, state_dir, _ = trust_lab
    ca_pem = (state_dir / "ca" / "ca.pem").read_text()
    # The offered CA verifies against the host's bundle and its CApath (the <hash>.N file).
    out = run_on(inventory, host, f"openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt {OFFER}/ca.pem && "
                                  f"openssl verify -no-CAfile -CApath /etc/ssl/certs {OFFER}/ca.pem && "
                                  f"stat -c %a {OFFER}/ca.key && cat {OFFER}/ca.pem")
    assert out.count(": OK") == 2, out
    assert "\n600\n" in out
    assert ca_pem.strip() in out
    # The trust is the host's alone: the machine's /etc/ssl is still as it was before lab.up.
    assert _digest(MACHINE_SSL) == trust_lab[2]
