"""Shared fixtures for the DNS tests: a copy of the example inventory with DKIM keys of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailfleet.dkim.keys import new_key, save_key
from mailfleet.inventory import load_valid_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def keyed_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """inventory/example.yaml in a temp folder, with a 1024-bit DKIM key for every domain
    (small keys keep the test fast; the size does not change what is checked)."""
    folder = tmp_path_factory.mktemp("inventory")
    path = folder / "fleet.yaml"
    shutil.copy(REPO / "inventory" / "example.yaml", path)
    inv = load_valid_inventory(path)
    assert inv.fleet is not None
    for domain in inv.fleet.domains.values():
        save_key(new_key(inv.secrets_dir, domain.ascii, domain.dkim.selector, 1024))
    return path
