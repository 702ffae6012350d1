"""Key material the way Mailcow makes it: RSA DKIM keys and Dovecot password hashes.

Effectful (randomness, maybe a subprocess). Uses the host's ``cryptography`` when
``/usr/bin/python3`` has it (Debian's python3-cryptography), else the ``openssl`` CLI.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess

try:  # Debian's python3-cryptography; optional
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError:  # pragma: no cover - depends on the host
    serialization = None  # type: ignore[assignment]
    rsa = None  # type: ignore[assignment]


def generate_dkim_key(bits: int) -> str:
    """A new RSA private key, PEM (PKCS#8), like ``openssl genrsa`` in functions.dkim.inc.php."""
    if rsa is not None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"],
                          check=True, capture_output=True, text=True).stdout


def dkim_public_key(pem: str) -> tuple[str, int]:
    """(base64 SubjectPublicKeyInfo DER, key bits) of an RSA private key in PKCS#1 or PKCS#8 PEM.

    Raises ValueError for anything that is not an RSA private key (Mailcow answers
    ``dkim_private_key_invalid``).
    """
    if not pem or "PRIVATE KEY" not in pem or len(pem) > 20000:
        raise ValueError("not a PEM private key")
    if serialization is not None:
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA key")
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode(), key.key_size
    result = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem.encode(),
                            capture_output=True)
    if result.returncode != 0:
        raise ValueError(result.stderr.decode(errors="replace").strip())
    bits = subprocess.run(["openssl", "pkey", "-noout", "-text"], input=pem.encode(), capture_output=True)
    text = bits.stdout.decode(errors="replace")
    if "RSA" not in text and "Private-Key" not in text:
        raise ValueError("not an RSA key")
    size = int(text.split("(", 1)[1].split(" ", 1)[0]) if "(" in text else 0
    return base64.b64encode(result.stdout).decode(), size


def hash_password(password: str) -> str:
    """Dovecot ``{SSHA256}``: base64(sha256(password + salt) + salt). Mailcow defaults to
    BLF-CRYPT, which stdlib cannot make; Dovecot verifies both."""
    salt = os.urandom(8)
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode()
