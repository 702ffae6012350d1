"""DKIM key rotation state, kept next to the keys: ``<secrets_dir>/dkim/<domain>.rotation.json``.

Mailcow holds one signing key per domain, so a rotation is three steps in time:
1. ``published``: a new key under a new selector is generated and published alongside the
   old one; hosts still sign with the old key.
2. ``switched``: once DNS shows the new record, every signing host imports the new key and the
   inventory's selector moves to it; the old record stays published so mail signed before the
   switch still verifies.
3. retired: after the grace period the state is removed and the old record leaves the set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from mailfleet.errors import MailfleetError
from mailfleet.inventory.load import write_atomically


@dataclass(frozen=True)
class RotationState:
    domain: str
    old_selector: str
    new_selector: str
    phase: str  # "published" or "switched"
    started_at: str  # ISO 8601 UTC
    switched_at: str | None = None

    def switched_time(self) -> datetime | None:
        return datetime.fromisoformat(self.switched_at) if self.switched_at else None


def rotation_path(secrets_dir: Path, domain_ascii: str) -> Path:
    return Path(secrets_dir) / "dkim" / f"{domain_ascii}.rotation.json"


def load_rotation(secrets_dir: Path, domain_ascii: str) -> RotationState | None:
    path = rotation_path(secrets_dir, domain_ascii)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RotationState(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise MailfleetError(f"rotation state {path} is damaged ({exc}); fix or remove it and rerun dkim.rotate") from None


def save_rotation(secrets_dir: Path, state: RotationState) -> None:
    path = rotation_path(secrets_dir, state.domain)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(path, json.dumps(asdict(state), indent=2) + "\n", mode=0o600)


def remove_rotation(secrets_dir: Path, domain_ascii: str) -> None:
    rotation_path(secrets_dir, domain_ascii).unlink(missing_ok=True)
