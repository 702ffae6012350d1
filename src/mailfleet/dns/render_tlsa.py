"""TLSA ``3 1 1`` values (DANE-EE, SubjectPublicKeyInfo, SHA-256) from a certificate or key. Pure.

``3 1 1`` pins the key, not the certificate, so it survives renewals that keep the key
(acme-mailcow reuses its key; shared/reference/mailcow.md §5.2).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def render_tlsa_311(pem: bytes) -> str:
    """From a PEM certificate, public key or private key; raises ValueError when it is none."""
    public = None
    if b"CERTIFICATE" in pem:
        public = x509.load_pem_x509_certificate(pem).public_key()
    elif b"PRIVATE KEY" in pem:
        public = serialization.load_pem_private_key(pem, password=None).public_key()
    elif b"PUBLIC KEY" in pem:
        public = serialization.load_pem_public_key(pem)
    if public is None:
        raise ValueError("not a PEM certificate or key")
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"3 1 1 {hashlib.sha256(der).hexdigest()}"
