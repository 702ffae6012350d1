"""Lab fixtures shared by every lab test (deploy, add-domain, upgrade, priority, ...).

``lab_fleet`` (session): the shared lab of six hosts (``var/lab``, ``inventory/lab.yaml``),
reused when it runs, started otherwise. A session that started it stops it at the end, unless
another test session still uses it (each holds a shared lock on ``var/.lab-users.lock``) or
``MAILFLEET_LAB_KEEP=1`` is set. It yields the lab inventory's path.

Tests that break hosts or tear a lab down use ``isolated_lab`` instead: a separate small lab
with its own names (``mflt``), subnet (10.79.0.0/24) and folder, so they never disturb the
shared lab another session is testing against.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")


@pytest.fixture(scope="session")
def lab_fleet() -> Iterator[Path]:
    _require_root()
    from mailfleet.lab.lifecycle import lab_up, lab_down
    from mailfleet.lab.state import LabPaths

    paths = LabPaths(state_dir=REPO / "var" / "lab", inventory=REPO / "inventory" / "lab.yaml",
                     example=REPO / "inventory" / "example.yaml")
    users = REPO / "var" / ".lab-users.lock"
    users.parent.mkdir(parents=True, exist_ok=True)
    handle = open(users, "a")
    fcntl.flock(handle, fcntl.LOCK_SH)
    started = False
    try:
        result = lab_up(paths, 6)
        started = bool(result.started) and not result.kept
        yield paths.inventory
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        try:
            if started and os.environ.get("MAILFLEET_LAB_KEEP") != "1":
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print("\nlab: another test session still uses the lab; leaving it up")
                else:
                    lab_down(paths)
        finally:
            handle.close()


class IsolatedLab:
    """A private lab for destructive tests; ``up``/``down`` call the library directly."""

    def __init__(self, root: Path, hosts: int) -> None:
        from mailfleet.lab.model import LabSpace
        from mailfleet.lab.state import LabPaths

        self.root = root
        self.count = hosts
        self.space = LabSpace(prefix="mflt", subnet="10.79.0.0/24")
        self.paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                              example=REPO / "inventory" / "example.yaml")

    def up(self):
        from mailfleet.lab.lifecycle import lab_up
        return lab_up(self.paths, self.count, self.space, say=lambda _: None)

    def down(self) -> bool:
        from mailfleet.lab.lifecycle import lab_down
        return lab_down(self.paths, self.space, say=lambda _: None)


@pytest.fixture(scope="module")
def isolated_lab() -> Iterator[IsolatedLab]:
    """A two-host lab (mx1, relay1) of this test module's own; removed at the end whatever happens.

    Its folder is under the repository's var/ (not /tmp): each host mounts its own /tmp, and a
    host's files must stay reachable from inside it."""
    _require_root()
    root = REPO / "var" / f"lab-test-{os.getpid()}"
    lab = IsolatedLab(root, 2)
    lab.down()  # leftovers of an interrupted earlier run, found by the test lab's names
    try:
        yield lab
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)
