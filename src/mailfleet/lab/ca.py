"""The lab's certificate authority: what Let's Encrypt is to a real fleet, for lab hosts only.

``lab.up`` creates it once (``<state>/ca/ca.key``, mode 0600, and ``ca.pem``), makes every lab
host trust it and offers it to the host's Mailcow emulator, whose emulated ``acme-mailcow``
issues the host's certificate with it. So TLS between lab hosts verifies for real, with each
host's own trust store, and nothing on the machine itself trusts the lab CA.

Where it lands in a host (written into the host's own layers, never into the machine's /etc):

* ``/etc/ssl/certs/ca-certificates.crt``: the machine's bundle plus the lab CA (the host's /etc
  is an overlay, so this is the host's copy);
* ``/etc/ssl/certs/<subject hash>.<n>``: the CA on its own, for OpenSSL's CApath lookup;
* ``/var/lib/docker/mailcow-emulator/lab-ca/{ca.pem,ca.key}``: the offer to the emulator's
  acme-mailcow (the key too: the host plays the ACME server's part).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailfleet.lab.system import LabError

CA_VALID_DAYS = 3650
MACHINE_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUNDLE_IN_HOST = Path("ssl/certs/ca-certificates.crt")  # relative to the host's /etc
OFFER_IN_DOCKER_ROOT = Path("mailcow-emulator/lab-ca")  # relative to the host's /var/lib/docker


@dataclass(frozen=True)
class LabCa:
    cert_pem: str
    key_pem: str
    subject_hash: str


def build_ca(common_name: str, now: dt.datetime) -> tuple[str, str]:
    """A new CA key and self-signed CA certificate, PEM. ``now`` is injected (tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailfleet lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def fetch_subject_hash(cert_pem: str) -> str:
    """OpenSSL's subject hash (the ``<hash>.0`` file name of a CApath directory)."""
    done = subprocess.run(["openssl", "x509", "-noout", "-subject_hash"], input=cert_pem, capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise LabError(f"openssl cannot read the lab CA certificate ({done.stderr.strip()}); "
                       "remove the lab's ca/ folder and run `mailfleet lab.up` again")
    return done.stdout.strip()


def save_lab_ca(ca_dir: Path, common_name: str, now: dt.datetime) -> LabCa:
    """Create the CA once (key 0600 in a 0700 folder); later calls load it."""
    cert_path, key_path = ca_dir / "ca.pem", ca_dir / "ca.key"
    if not (cert_path.is_file() and key_path.is_file()):
        ca_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(ca_dir, 0o700)
        cert_pem, key_pem = build_ca(common_name, now)
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert_pem, 0o644)
    cert_pem, key_pem = cert_path.read_text(), key_path.read_text()
    try:
        x509.load_pem_x509_certificate(cert_pem.encode())
        serialization.load_pem_private_key(key_pem.encode(), None)
    except ValueError as exc:
        raise LabError(f"the lab CA in {ca_dir} is unreadable ({exc}); remove that folder and run "
                       "`mailfleet lab.up` again (hosts then get a new CA when rebuilt)") from None
    return LabCa(cert_pem, key_pem, fetch_subject_hash(cert_pem))


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def merge_bundle(machine_bundle: str, ca_pem: str) -> str:
    """The machine's bundle with the lab CA appended once."""
    if ca_pem.strip() in machine_bundle:
        return machine_bundle
    return machine_bundle + ("" if machine_bundle.endswith("\n") or not machine_bundle else "\n") + ca_pem


def save_host_trust(ca: LabCa, etc_upper: Path, docker_dir: Path, machine_certs: Path = MACHINE_BUNDLE.parent) -> None:
    """Make one host trust the lab CA and offer it to the host's emulated acme-mailcow.

    ``etc_upper`` is the upper layer of the host's /etc overlay and ``docker_dir`` the folder
    bound over its /var/lib/docker: files written there exist only inside that host; the
    machine's own ``machine_certs`` is only read."""
    bundle_source = machine_certs / "ca-certificates.crt"
    try:
        machine_bundle = bundle_source.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"cannot read the machine's CA bundle {bundle_source} ({exc}); "
                       "install ca-certificates (apt-get install ca-certificates)") from None
    certs = etc_upper / BUNDLE_IN_HOST.parent
    certs.mkdir(parents=True, exist_ok=True)
    bundle = etc_upper / BUNDLE_IN_HOST
    current = bundle.read_text(encoding="utf-8") if bundle.is_file() else machine_bundle
    merged = merge_bundle(current, ca.cert_pem)
    if merged != current or not bundle.is_file():
        _write(bundle, merged, 0o644)
    index = 0  # the first <hash>.<n> free on the machine and in the host, or already ours
    while True:
        name = f"{ca.subject_hash}.{index}"
        own = certs / name
        if own.is_file() and own.read_text(encoding="utf-8", errors="replace") == ca.cert_pem:
            break
        if not (machine_certs / name).exists() and not own.exists():
            _write(own, ca.cert_pem, 0o644)
            break
        index += 1
    offer = docker_dir / OFFER_IN_DOCKER_ROOT
    offer.mkdir(parents=True, exist_ok=True)
    os.chmod(offer, 0o700)
    for file_name, text, mode in (("ca.pem", ca.cert_pem, 0o644), ("ca.key", ca.key_pem, 0o600)):
        path = offer / file_name
        if not path.is_file() or path.read_text() != text:
            _write(path, text, mode)
