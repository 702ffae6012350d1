"""Read what hosts print during an upgrade: versions, backup folders, queue shapes. Pure."""

from __future__ import annotations

import json
import re

_APP_VERSION = re.compile(r"""\$MAILCOW_GIT_VERSION\s*=\s*["']([^"']*)["']""")
_BACKUP_FOLDER = re.compile(r"^mailcow-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")


def parse_app_info_version(text: str) -> str | None:
    """The version in ``data/web/inc/app_info.inc.php`` (what the API reports), or None."""
    match = _APP_VERSION.search(text or "")
    return match.group(1) if match and match.group(1) else None


def parse_backup_listing(text: str) -> list[str]:
    """The ``mailcow-YYYY-MM-DD-HH-MM-SS`` folders in an ``ls -1`` of the backup location, sorted."""
    return sorted(line.strip() for line in text.splitlines() if _BACKUP_FOLDER.match(line.strip()))


def parse_queue_counts(text: str) -> dict[str, int]:
    """Messages per queue from ``postqueue -j`` (one JSON object per line); other lines are skipped
    (Postfix prints "Mail queue is empty" on some versions)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        name = str(entry.get("queue_name", "unknown"))
        counts[name] = counts.get(name, 0) + 1
    return counts
