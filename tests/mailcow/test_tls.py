"""Pinned TLS: trust the host's own certificate and its MAILCOW_HOSTNAME, nothing else.

A real HTTPS server on 127.0.0.1 (free port, stopped in the fixture) presents a self-signed
certificate like Mailcow's snake-oil one; the client reaches it as ``https://127.0.0.1:PORT``
exactly as it does through the SSH tunnel.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailfleet.errors import MailcowApiError
from mailfleet.mailcow.client import MailcowClient
from mailfleet.mailcow.tls import build_ssl_context, pinned_session

NAME = "mx1.lab.example"


def make_cert(name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=36500))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


class _Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"version": "2026-07a", "sni_key": self.headers.get("X-API-Key") == "k"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    cert_pem, key_pem = make_cert(NAME)
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_text(cert_pem)
    (folder / "key.pem").write_text(key_pem)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], cert_pem
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_the_hosts_own_certificate_and_name_are_accepted(server: tuple[int, str]) -> None:
    port, cert_pem = server
    client = MailcowClient(f"https://127.0.0.1:{port}", "k", label="mx1", session=pinned_session(cert_pem, NAME))
    assert client.get_version() == "2026-07a"


def test_a_wrong_hostname_is_refused(server: tuple[int, str]) -> None:
    port, cert_pem = server
    client = MailcowClient(f"https://127.0.0.1:{port}", "k", label="mx1",
                           session=pinned_session(cert_pem, "mx2.lab.example"))
    with pytest.raises(MailcowApiError, match="TLS verification failed"):
        client.get_version()


def test_another_certificate_is_refused(server: tuple[int, str]) -> None:
    port, _ = server
    other_pem, _ = make_cert(NAME)  # same name, different key: an impostor
    client = MailcowClient(f"https://127.0.0.1:{port}", "k", label="mx1", session=pinned_session(other_pem, NAME))
    with pytest.raises(MailcowApiError, match="TLS verification failed"):
        client.get_version()


def test_plain_http_is_refused() -> None:
    cert_pem, _ = make_cert(NAME)
    client = MailcowClient("http://127.0.0.1:9", "k", label="mx1", session=pinned_session(cert_pem, NAME))
    with pytest.raises(MailcowApiError, match="plain HTTP"):
        client.get_version()


def test_missing_certificate_says_what_to_do() -> None:
    with pytest.raises(MailcowApiError, match="generate_config.sh"):
        build_ssl_context("")
