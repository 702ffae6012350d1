"""Shared fixtures for the upgrade tests: the example fleet and helpers to reshape it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.inventory import load_valid_inventory
from mailfleet.inventory.model import Fleet

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example.yaml"


@pytest.fixture()
def fleet() -> Fleet:
    inv = load_valid_inventory(EXAMPLE)
    assert inv.fleet is not None
    return inv.fleet
