"""TLS for the tunnelled API: trust exactly the host's own Mailcow certificate, check its name.

Through the SSH tunnel the API is ``https://127.0.0.1:PORT``, so a normal CA check cannot work
(the name is wrong, and a fresh Mailcow has a snake-oil certificate). ``verify=False`` would
accept anything. Instead we fetch ``data/assets/ssl/cert.pem`` over the already-authenticated
SSH connection, trust that certificate alone (partial chain: a Let's Encrypt leaf works too),
and check the name against ``MAILCOW_HOSTNAME`` with SNI set to it.
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from mailfleet.errors import MailcowApiError


def build_ssl_context(cert_pem: str) -> ssl.SSLContext:
    """A client context that trusts only the certificates in ``cert_pem``."""
    if "BEGIN CERTIFICATE" not in cert_pem:
        raise MailcowApiError("the host's Mailcow certificate (data/assets/ssl/cert.pem) is missing or not PEM; "
                              "run `mailfleet deploy` for this host first (generate_config.sh creates it)")
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cadata=cert_pem)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class PinnedCertAdapter(HTTPAdapter):
    """An adapter that verifies the server against one certificate and one expected name."""

    def __init__(self, cert_pem: str, server_hostname: str, **kwargs: Any) -> None:
        self._context = build_ssl_context(cert_pem)
        self._server_hostname = server_hostname
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs.update(ssl_context=self._context, server_hostname=self._server_hostname,
                           assert_hostname=self._server_hostname)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # Our context does the verification; requests must not swap in certifi's bundle.
        super().cert_verify(conn, url, True, cert)
        conn.ca_certs = None
        conn.ca_cert_dir = None


def pinned_session(cert_pem: str, server_hostname: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or REQUESTS_CA_BUNDLE from the environment
    session.mount("https://", PinnedCertAdapter(cert_pem, server_hostname))
    session.mount("http://", _RefuseAdapter())
    return session


class _RefuseAdapter(HTTPAdapter):
    def send(self, request: Any, **kwargs: Any) -> Any:
        raise MailcowApiError("refusing to send the Mailcow API key over plain HTTP")
