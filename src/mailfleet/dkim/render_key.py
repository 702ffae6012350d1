"""What a DKIM private key looks like to DNS and to Mailcow. Pure: PEM text in, strings out.

Mailcow's ``get/dkim`` answers with ``pubkey`` (base64 of the SubjectPublicKeyInfo DER) and
``dkim_txt`` (``v=DKIM1;k=rsa;t=s;s=email;p=...``); the DNS record we publish carries the same
``p=`` value, so comparing keys is comparing that base64 text.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class DkimKeyError(ValueError):
    """The PEM text is not an RSA private key Mailcow could sign with."""


def parse_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise DkimKeyError(f"not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"a {type(key).__name__} key; Mailcow signs with RSA keys only")
    return key


def render_public_key_b64(pem: str) -> str:
    """The ``p=`` value: base64 of the public key's SubjectPublicKeyInfo DER."""
    key = parse_private_key(pem)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def key_bits(pem: str) -> int:
    return parse_private_key(pem).key_size


def render_dkim_txt(public_b64: str) -> str:
    """The TXT value for ``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1)."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def parse_dkim_tags(text: str) -> dict[str, str]:
    """Split a DKIM key record (``v=DKIM1; k=rsa; p=...``) into tags; whitespace inside values
    is removed because DNS answers may carry it where the record was split into strings."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def short_fingerprint(public_b64: str) -> str:
    """A short, stable name for a public key in messages (sha256 of the base64 text, 12 hex)."""
    return "sha256:" + hashlib.sha256("".join(public_b64.split()).encode("ascii")).hexdigest()[:12]
