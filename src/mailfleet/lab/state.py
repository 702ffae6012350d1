"""The lab's record of itself: ``<state>/state.json``, and where the lab keeps its files.

``lab.down`` works from this record (and from the lab's names) without ``inventory/lab.yaml``.
A lock file beside the state folder keeps two ``lab.*`` commands (two test sessions, say) from
building or tearing down the same lab at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import mailfleet
from mailfleet.inventory.load import write_atomically
from mailfleet.lab.model import HostRecord, LabSpace, LabState
from mailfleet.lab.system import LabError


@dataclass(frozen=True)
class LabPaths:
    """Where one lab keeps its state, its inventory and its secrets."""

    state_dir: Path
    inventory: Path
    example: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.state_dir.parent / f".{self.state_dir.name}.lock"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    @property
    def secrets_dir(self) -> Path:
        """``secrets/lab`` next to the inventory: what ``fleet.secrets_dir`` points at."""
        return self.inventory.parent / "secrets" / "lab"

    @property
    def client_key(self) -> Path:
        return self.secrets_dir / "id_ed25519"

    @property
    def mailbox_password(self) -> Path:
        return self.secrets_dir / "labuser.imap-password"

    @property
    def mailcow_repository(self) -> Path:
        return self.state_dir / "mailcow-dockerized.git"


def find_repository_root(start: Path | None = None) -> Path:
    """The mailfleet checkout: the current folder (or a parent) holding inventory/example.yaml,
    else the checkout this package was installed from (an editable install)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "inventory" / "example.yaml").exists() and (folder / "src" / "mailfleet").is_dir():
            return folder
    package_root = Path(mailfleet.__file__).resolve().parents[2]
    if (package_root / "inventory" / "example.yaml").exists():
        return package_root
    raise LabError(
        f"{here} is not inside a mailfleet checkout (no inventory/example.yaml found); run the lab "
        "from the repository, or pass --dir and --inventory"
    )


def default_paths(state_dir: str | None = None, inventory: str | None = None) -> LabPaths:
    root = find_repository_root() if not (state_dir and inventory) else None
    state = Path(state_dir).resolve() if state_dir else root / "var" / "lab"  # type: ignore[operator]
    inv = Path(inventory).resolve() if inventory else root / "inventory" / "lab.yaml"  # type: ignore[operator]
    example_root = root or find_repository_root_or_none()
    example = (example_root / "inventory" / "example.yaml") if example_root else inv.parent / "example.yaml"
    return LabPaths(state_dir=state, inventory=inv, example=example)


def find_repository_root_or_none() -> Path | None:
    try:
        return find_repository_root()
    except LabError:
        return None


@contextlib.contextmanager
def lab_lock(paths: LabPaths) -> Iterator[None]:
    """Hold the lab's lock; a second command waits for the first (bounded) instead of racing it."""
    paths.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file, "a") as handle:
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"another lab command has held {paths.lock_file} for 5 minutes; "
                                   "wait for it to finish") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_state(paths: LabPaths) -> LabState | None:
    try:
        raw = json.loads(paths.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"the lab's state file {paths.state_file} is unreadable ({exc}); "
                       "run `mailfleet lab.down` to remove the lab by its names") from None
    return LabState(
        prefix=raw["prefix"], subnet=raw["subnet"], bridge=raw["bridge"], inventory=raw["inventory"],
        hosts=tuple(HostRecord(**{**h, "roles": tuple(h["roles"])}) for h in raw.get("hosts", [])),
        complete=bool(raw.get("complete")),
        iptables_rules=tuple(tuple(r) for r in raw.get("iptables_rules", [])),
        created_run_netns_mount=bool(raw.get("created_run_netns_mount")),
        install_dir=raw.get("install_dir", "/opt/mailcow-dockerized"),
        mailcow_tags=tuple(raw.get("mailcow_tags", [])),
        faults={k: tuple(v) for k, v in raw.get("faults", {}).items()},
    )


def save_state(paths: LabPaths, state: LabState) -> None:
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(paths.state_file, json.dumps(asdict(state), indent=2) + "\n", 0o644)


def space_of(state: LabState) -> LabSpace:
    return LabSpace(prefix=state.prefix, subnet=state.subnet)
