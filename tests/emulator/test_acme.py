"""The emulated acme-mailcow: with a lab CA offered it installs a CA-signed certificate and the
API server presents it; without one (or with SKIP_LETS_ENCRYPT=y) the snake-oil one stays."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from emulator_support import clone, compose_down, configure_api, docker, free_port, generate_config

from mailfleet.lab.ca import LabCa, save_host_trust, save_lab_ca
from mailfleet.mailcow.tls import build_ssl_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="postfix check of the rendered config needs root")
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture()
def stack(emulated_repo: Path, tmp_path: Path, shim_env: dict[str, str]):
    checkout = clone(emulated_repo, tmp_path / "mailcow-dockerized", None, shim_env)
    assert generate_config(checkout, shim_env).returncode == 0
    configure_api(checkout, free_port())
    yield checkout
    compose_down(checkout, shim_env)


def _offer_ca(tmp_path: Path, shim_env: dict[str, str]) -> LabCa:
    ca = save_lab_ca(tmp_path / "lab-ca-state", "mailfleet lab CA (test)", NOW)
    save_host_trust(ca, tmp_path / "etc-upper", Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"]))
    return ca


def _cert(checkout: Path) -> str:
    return (checkout / "data/assets/ssl/cert.pem").read_text()


def _api_port(checkout: Path) -> int:
    conf = dict(line.split("=", 1) for line in (checkout / "mailcow.conf").read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    return int(conf["HTTPS_PORT"])


def _presented(port: int, context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="mail.lab.test") as tls:
            return tls.getpeercert(binary_form=True) or b""


def test_without_a_lab_ca_the_snake_oil_certificate_stays(stack: Path, shim_env: dict[str, str]) -> None:
    snake_oil = _cert(stack)
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    assert _cert(stack) == snake_oil
    assert "no lab CA offered" in docker(stack, shim_env, "compose", "logs", "acme-mailcow").stdout


def test_skip_lets_encrypt_keeps_the_snake_oil_certificate(stack: Path, shim_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    _offer_ca(tmp_path, shim_env)
    conf = stack / "mailcow.conf"
    conf.write_text(conf.read_text().replace("SKIP_LETS_ENCRYPT=n", "SKIP_LETS_ENCRYPT=y"))
    snake_oil = _cert(stack)
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    assert _cert(stack) == snake_oil


def test_with_a_lab_ca_the_api_presents_a_ca_signed_certificate(stack: Path, shim_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    ca = _offer_ca(tmp_path, shim_env)
    snake_oil = _cert(stack)
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    issued = _cert(stack)
    assert issued != snake_oil
    leaf = x509.load_pem_x509_certificate(issued.encode())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem.encode()))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "mail.lab.test" in names
    key_mode = (stack / "data/assets/ssl/key.pem").stat().st_mode & 0o777
    assert key_mode == 0o600

    # The API server was restarted for the new certificate: a client trusting only the CA verifies it,
    # and so does mailfleet's API client, which pins the host's cert.pem.
    port = _api_port(stack)
    by_ca = ssl.create_default_context(cafile=str(tmp_path / "lab-ca-state" / "ca.pem"))
    presented = _presented(port, by_ca)
    assert presented == leaf.public_bytes(ssl_encoding())
    assert _presented(port, build_ssl_context(issued)) == presented
    with pytest.raises(ssl.SSLCertVerificationError):
        _presented(port, build_ssl_context(snake_oil))  # a pin taken before acme no longer matches

    # acme-mailcow's renewal check: a good certificate is kept by another `up -d` and by a restart.
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    assert docker(stack, shim_env, "compose", "restart", "acme-mailcow").returncode == 0
    assert _cert(stack) == issued
    assert "nothing to renew" in docker(stack, shim_env, "compose", "logs", "acme-mailcow").stdout


def test_a_certificate_without_the_hostname_is_reissued(stack: Path, shim_env: dict[str, str], tmp_path: Path) -> None:
    _offer_ca(tmp_path, shim_env)
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    first = _cert(stack)
    conf = stack / "mailcow.conf"
    conf.write_text(conf.read_text().replace("\nADDITIONAL_SAN=\n", "\nADDITIONAL_SAN=imap.lab.test,smtp.*\n"))
    assert docker(stack, shim_env, "compose", "restart", "acme-mailcow").returncode == 0
    second = x509.load_pem_x509_certificate(_cert(stack).encode())
    assert _cert(stack) != first
    names = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["mail.lab.test", "imap.lab.test"]
    # acme-mailcow keeps its domain key across issues: a TLSA 3 1 1 record stays valid.
    assert second.public_key() == x509.load_pem_x509_certificate(first.encode()).public_key()


def ssl_encoding():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER
