from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.inventory import load_valid_inventory
from mailfleet.inventory.model import Fleet

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def example_fleet() -> Fleet:
    inv = load_valid_inventory(REPO / "inventory" / "example.yaml")
    assert inv.fleet is not None
    return inv.fleet

