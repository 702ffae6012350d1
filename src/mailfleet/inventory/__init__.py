"""The inventory: one YAML file describing the fleet's settings, hosts and domains."""

from mailfleet.inventory.load import (
    Inventory,
    load_inventory,
    load_valid_inventory,
    save_inventory,
    write_atomically,
)
from mailfleet.inventory.model import Domain, Fleet, Host

__all__ = ["Domain", "Fleet", "Host", "Inventory", "load_inventory", "load_valid_inventory", "save_inventory",
           "write_atomically"]
