"""DKIM private keys on the controller: generate, store (mode 0600), load.

A key lives at ``<secrets_dir>/dkim/<domain-ascii>.<selector>.pem``. The file is the source of
truth: every signing host gets this key through ``add/dkim_import``; Mailcow never generates
its own for a domain mailfleet manages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailfleet.dkim.render_key import DkimKeyError, key_bits, render_public_key_b64
from mailfleet.errors import MailfleetError, SecretError
from mailfleet.secrets import save_secret


@dataclass(frozen=True)
class DkimKey:
    domain: str  # IDNA ASCII form
    selector: str
    pem: str
    path: Path

    @cached_property  # loading a private key checks it, ~50 ms; do it once per key
    def public_b64(self) -> str:
        return render_public_key_b64(self.pem)

    @property
    def bits(self) -> int:
        return key_bits(self.pem)


def key_path(secrets_dir: Path, domain_ascii: str, selector: str) -> Path:
    return Path(secrets_dir) / "dkim" / f"{domain_ascii}.{selector}.pem"


def generate_private_key_pem(bits: int = 2048) -> str:
    """A fresh RSA key as PKCS#8 PEM (the form Mailcow's import reads without complaint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_key(secrets_dir: Path, domain_ascii: str, selector: str) -> DkimKey | None:
    """The stored key, or None when there is none yet. A damaged or world-readable file is an error."""
    path = key_path(secrets_dir, domain_ascii, selector)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise SecretError(f"DKIM key {path} is readable by others (mode {mode:04o}); run chmod 600 {path}")
    pem = path.read_text(encoding="ascii").strip() + "\n"
    try:
        render_public_key_b64(pem)
    except DkimKeyError as exc:
        raise MailfleetError(
            f"DKIM key {path} is damaged: {exc}. Restore it from backup; if it was never published, "
            f"delete it and run add-domain again to generate a new one") from None
    return DkimKey(domain_ascii, selector, pem, path)


def new_key(secrets_dir: Path, domain_ascii: str, selector: str, bits: int) -> DkimKey:
    """Generate a key in memory; nothing is written until ``save_key``."""
    return DkimKey(domain_ascii, selector, generate_private_key_pem(bits), key_path(secrets_dir, domain_ascii, selector))


def save_key(key: DkimKey) -> None:
    """Write the key with mode 0600 (its folder 0700); never overwrites a different existing key."""
    existing = load_key(key.path.parent.parent, key.domain, key.selector)
    if existing is not None:
        if existing.public_b64 != key.public_b64:
            raise MailfleetError(f"{key.path} already holds a different key; refusing to overwrite it")
        return
    save_secret(key.path, key.pem.strip())
