"""What mailfleet pushed where Mailcow offers no way to read it back (I/O).

Mailcow's MTA-STS API has add and edit but no GET, and ``get/domain`` does not include the
policy (shared/reference/mailcow.md §1.4). To stay idempotent we remember, per host, the policy
id we last pushed for each domain: ``<secrets_dir>/state/<host>.mta-sts.json``. Losing the file
costs one extra (harmless) push.
"""

from __future__ import annotations

import json
from pathlib import Path

from mailfleet.inventory.load import write_atomically


def _path(state_dir: Path, host: str) -> Path:
    return Path(state_dir) / f"{host}.mta-sts.json"


def load_pushed_mta_sts(state_dir: Path, host: str) -> dict[str, str]:
    try:
        data = json.loads(_path(state_dir, host).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_pushed_mta_sts(state_dir: Path, host: str, domain: str, policy_id: str) -> None:
    data = load_pushed_mta_sts(state_dir, host)
    data[domain] = policy_id
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(_path(state_dir, host), json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)
