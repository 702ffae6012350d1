"""The upgrade journal on disk: append-only JSON lines, one fsync per entry.

Every step of a rollout is written *before* it starts and again when it ends, and each write
is flushed to the disk before the step goes on. So if the controller dies (power, OOM, a closed
laptop), the last line says which host was in which step, and ``upgrade --resume`` knows where
to continue; ``upgrade`` refuses to start another rollout over an unfinished one.

Default place: next to the inventory, ``<inventory stem>.upgrade-journal.jsonl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mailfleet.errors import MailfleetError
from mailfleet.upgrade.parse_journal import JournalError, RunState, current_run, parse_lines, replay

Clock = Callable[[], datetime]


def default_journal_path(inventory_path: Path) -> Path:
    return inventory_path.resolve().parent / f"{inventory_path.stem}.upgrade-journal.jsonl"


def load_runs(path: Path) -> list[RunState]:
    """Every run recorded in the journal at ``path`` (none if the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        return replay(parse_lines(text.splitlines(keepends=True), str(path)))
    except (JournalError, KeyError, ValueError, TypeError) as exc:
        raise MailfleetError(f"cannot read the upgrade journal {path}: {exc}") from None


def load_unfinished_run(path: Path) -> RunState | None:
    return current_run(load_runs(path))


@contextlib.contextmanager
def journal_lock(path: Path) -> Iterator[None]:
    """Only one ``mailfleet upgrade`` per journal at a time: two controllers racing over the same
    fleet would each believe it is the only one taking hosts down."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise MailfleetError(f"another `mailfleet upgrade` (pid {holder}) is running with the journal {path}; "
                                 "wait for it to finish, or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def new_run_id(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Journal:
    """Appends entries for one run; every ``write`` is on disk when it returns."""

    def __init__(self, path: Path, run: str, clock: Clock) -> None:
        self.path = path
        self.run = run
        self.clock = clock

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        entry = {"kind": kind, "run": self.run, "at": self.clock().astimezone(timezone.utc).isoformat(), **fields}
        line = json.dumps(entry, sort_keys=False, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's name must survive a power cut too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return entry

    def step(self, host: str, step: str, state: str, **fields: Any) -> None:
        self.write("step", host=host, step=step, state=state, **fields)

    def host(self, host: str, state: str, **fields: Any) -> None:
        self.write("host", host=host, state=state, **fields)

    def run_state(self, state: str, **fields: Any) -> None:
        self.write("run", state=state, **fields)
