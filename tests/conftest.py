"""Suite-wide guards: no test reads the user's SSH config or reaches the network by accident."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Tests import their capability's support modules (uniquely named, e.g. lab_helpers) directly;
# with --import-mode=importlib pytest does not put test folders on sys.path, so we do.
for _folder in sorted(Path(__file__).resolve().parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith((".", "_", "fixtures")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))


@pytest.fixture(autouse=True)
def _no_user_ssh_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point HOME at an empty folder so nothing reads ~/.ssh/config, ~/.ssh/known_hosts or keys."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("MAILFLEET_INVENTORY", raising=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="lab tests need root (network namespaces); run as root, as CI does")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)
