"""Resolve secret references (``env:NAME``, ``file:PATH``) at the edge, never logging values.

Values are read only when a task needs them. A ``file:`` secret must not be readable by group or
others: a key in a world-readable file is a key anyone on the controller can read.
"""

from __future__ import annotations

import os
import secrets as _random
import stat
from pathlib import Path

from mailfleet.errors import SecretError
from mailfleet.inventory.model import SecretRef
from mailfleet.inventory.rules_names import parse_secret_ref


def resolve_secret(ref: SecretRef | str, base_dir: Path) -> str:
    if isinstance(ref, str):
        ref = parse_secret_ref(ref)
    if ref.scheme == "env":
        value = os.environ.get(ref.name)
        if not value:
            raise SecretError(f"secret {ref} is not set: export {ref.name}=... before running mailfleet")
        return value
    path = secret_path(ref, base_dir)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretError(f"secret {ref} not found: {path} does not exist; create it with mode 0600") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"secret file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SecretError(f"secret file {path} is empty")
    return value


def secret_path(ref: SecretRef, base_dir: Path) -> Path:
    path = Path(ref.name)
    return path if path.is_absolute() else (base_dir / path)


def save_secret(path: Path, value: str) -> None:
    """Write a secret file with mode 0600, creating its folder with mode 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


def generate_token(length: int = 32) -> str:
    """A random token using only the characters Mailcow keeps in API keys (a-z A-Z 0-9 -)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(_random.choice(alphabet) for _ in range(length))
