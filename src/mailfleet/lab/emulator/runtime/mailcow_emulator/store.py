"""The emulator's persistent state: JSON files in the volumes, guarded by one file lock.

Effectful. Writes are atomic (write to a temp file, rename) so a killed API server never
leaves half a database behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .logic import new_state
from .paths import ProjectPaths


def load_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def save_json(path: Path, data: Any, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(paths: ProjectPaths) -> Iterator[None]:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_state(paths: ProjectPaths) -> tuple[dict[str, Any], dict[str, Any]]:
    db, redis = new_state()
    db.update(load_json(paths.db_file, {}))
    redis.update(load_json(paths.redis_file, {}))
    return db, redis


def save_state(paths: ProjectPaths, db: dict[str, Any], redis: dict[str, Any]) -> None:
    save_json(paths.db_file, db)
    save_json(paths.redis_file, redis)


def load_faults(path: Path) -> dict[str, Any]:
    """Faults written by ``lab.fault``; a missing or unreadable file means no fault."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
