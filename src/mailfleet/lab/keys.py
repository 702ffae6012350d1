"""The lab's secrets: its SSH client key, one Mailcow API key per Mailcow host, the IMAP password
of the lab mailbox user. Generated once, kept in ``secrets/lab/`` (mode 0600), reused by a
repaired lab so a running test never sees its keys change under it."""

from __future__ import annotations

from pathlib import Path

from mailfleet.lab.model import LabHost
from mailfleet.lab.state import LabPaths
from mailfleet.lab.system import run
from mailfleet.secrets import generate_token, save_secret


def save_client_key(paths: LabPaths) -> str:
    """Generate the controller's ed25519 key for the lab once; return its public key line."""
    key = paths.client_key
    pub = key.with_name(key.name + ".pub")
    if not key.exists() or not pub.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mailfleet-lab-controller", "-f", str(key)])
    key.chmod(0o600)
    return " ".join(pub.read_text().split()[:2])


def _saved_token(path: Path) -> str:
    if path.exists() and path.read_text().strip():
        path.chmod(0o600)
        return path.read_text().strip()
    token = generate_token(32)
    save_secret(path, token)
    return token


def save_api_keys(paths: LabPaths, hosts: list[LabHost]) -> None:
    for host in hosts:
        if "inbound" in host.roles or "outbound-relay" in host.roles:
            _saved_token(paths.secrets_dir / f"{host.name}.api-key")


def save_mailbox_password(paths: LabPaths) -> str:
    return _saved_token(paths.mailbox_password)
