"""The lab CA (no root, no lab): created once with a private key, trusted by a host's own layers
only, offered to the host's emulated acme-mailcow; the machine's certificate folder is only read."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509

from mailfleet.lab.ca import build_ca, merge_bundle, save_host_trust, save_lab_ca
from mailfleet.lab.system import LabError

NOW = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.timezone.utc)
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is needed")


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_build_ca_is_a_ca_valid_from_now() -> None:
    cert_pem, key_pem = build_ca("mailfleet lab CA (t)", NOW)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.issuer == cert.subject
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    cert.verify_directly_issued_by(cert)  # self-signed with its own key
    assert "PRIVATE KEY" in key_pem


def test_save_lab_ca_creates_once_with_a_private_key(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = save_lab_ca(ca_dir, "mailfleet lab CA (t)", NOW)
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    again = save_lab_ca(ca_dir, "mailfleet lab CA (t)", NOW)
    assert again == first  # loaded, not regenerated
    assert len(first.subject_hash) == 8 and int(first.subject_hash, 16) >= 0


def test_a_broken_ca_is_refused_with_what_to_do(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    save_lab_ca(ca_dir, "x", NOW)
    (ca_dir / "ca.pem").write_text("garbage")
    with pytest.raises(LabError, match="remove that folder"):
        save_lab_ca(ca_dir, "x", NOW)


def test_merge_bundle_appends_once() -> None:
    merged = merge_bundle("A\n", "CA\n")
    assert merged == "A\nCA\n"
    assert merge_bundle(merged, "CA\n") == merged
    assert merge_bundle("A", "CA\n") == "A\nCA\n"


def test_host_trust_lands_in_the_host_layers_only(tmp_path: Path) -> None:
    ca = save_lab_ca(tmp_path / "ca", "mailfleet lab CA (t)", NOW)
    machine = tmp_path / "machine-certs"
    machine.mkdir()
    (machine / "ca-certificates.crt").write_text("-----BEGIN CERTIFICATE-----\nMACHINE\n-----END CERTIFICATE-----\n")
    (machine / f"{ca.subject_hash}.0").write_text("someone else's CA with the same hash")
    before = _tree_digest(machine)
    etc_upper, docker = tmp_path / "host" / "etc" / "upper", tmp_path / "host" / "lib-docker"

    save_host_trust(ca, etc_upper, docker, machine)

    bundle = (etc_upper / "ssl/certs/ca-certificates.crt").read_text()
    assert bundle.startswith("-----BEGIN CERTIFICATE-----\nMACHINE") and bundle.endswith(ca.cert_pem)
    assert not (etc_upper / f"ssl/certs/{ca.subject_hash}.0").exists()  # would shadow the machine's .0
    assert (etc_upper / f"ssl/certs/{ca.subject_hash}.1").read_text() == ca.cert_pem
    offer = docker / "mailcow-emulator/lab-ca"
    assert (offer / "ca.pem").read_text() == ca.cert_pem and (offer / "ca.key").read_text() == ca.key_pem
    assert stat.S_IMODE((offer / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(offer.stat().st_mode) == 0o700
    assert _tree_digest(machine) == before

    host_files = _tree_digest(tmp_path / "host")
    save_host_trust(ca, etc_upper, docker, machine)  # a second run changes nothing
    assert _tree_digest(tmp_path / "host") == host_files
    assert bundle.count(ca.cert_pem.strip()) == 1


def test_a_missing_machine_bundle_names_the_package(tmp_path: Path) -> None:
    ca = save_lab_ca(tmp_path / "ca", "x", NOW)
    with pytest.raises(LabError, match="ca-certificates"):
        save_host_trust(ca, tmp_path / "etc", tmp_path / "docker", tmp_path / "nowhere")
