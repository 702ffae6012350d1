"""Ask a host's mail ports from the controller, the way a client would. Effectful (sockets).

SMTP must greet with ``220``. IMAPS must complete TLS with *the host's own certificate* (read
over the pinned SSH connection, so there is no trust-on-first-use and no name check against a
hostname that may not resolve here) and greet with ``* OK``.
"""

from __future__ import annotations

import socket
import ssl

TIMEOUT = 10.0


def fetch_smtp_banner_problem(address: str, port: int = 25, timeout: float = TIMEOUT) -> str | None:
    """None when the SMTP server greets with 220; else what was seen."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            banner = sock.makefile("rb").readline(512).decode("utf-8", "replace").strip()
            try:
                sock.sendall(b"QUIT\r\n")
            except OSError:
                pass
    except OSError as exc:
        return f"SMTP {address}:{port} does not answer: {exc}"
    if not banner.startswith("220"):
        return f"SMTP {address}:{port} greeted with {banner[:80]!r}, not 220"
    return None


def fetch_imaps_problem(address: str, port: int, cert_pem: str, timeout: float = TIMEOUT) -> str | None:
    """None when IMAPS answers ``* OK`` over TLS with the certificate ``cert_pem``."""
    if "BEGIN CERTIFICATE" not in cert_pem:
        return "no Mailcow certificate (data/assets/ssl/cert.pem) on the host to compare IMAPS against"
    expected = ssl.PEM_cert_to_DER_cert(cert_pem[cert_pem.index("-----BEGIN CERTIFICATE-----"):]
                                        .split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # verified below by comparing with the pinned certificate
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            with context.wrap_socket(raw) as tls:
                presented = tls.getpeercert(binary_form=True)
                greeting = tls.makefile("rb").readline(512).decode("utf-8", "replace").strip()
    except (OSError, ssl.SSLError) as exc:
        return f"IMAPS {address}:{port} does not answer: {exc}"
    if presented != expected:
        return f"IMAPS {address}:{port} presents another certificate than the host's data/assets/ssl/cert.pem"
    if not greeting.startswith("* OK"):
        return f"IMAPS {address}:{port} greeted with {greeting[:80]!r}, not '* OK'"
    return None
