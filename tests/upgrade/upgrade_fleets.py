"""Helpers to reshape the example fleet for upgrade tests."""

from __future__ import annotations

import dataclasses

from mailfleet.inventory.model import Fleet
from mailfleet.inventory.parse_window import parse_window
from mailfleet.upgrade.plan import CheckResult


def with_windows(fleet: Fleet, windows: dict[str, str | None], default: str | None = "keep") -> Fleet:
    """The fleet with some hosts' windows replaced (None removes a host's own window)."""
    hosts = dict(fleet.hosts)
    for name, text in windows.items():
        hosts[name] = dataclasses.replace(hosts[name], maintenance_window=parse_window(text) if text else None)
    settings = fleet.settings
    if default != "keep":
        settings = dataclasses.replace(settings, maintenance_window=parse_window(default) if default else None)
    return dataclasses.replace(fleet, hosts=hosts, settings=settings)


def all_need(fleet: Fleet, current: str = "2026-07a") -> dict[str, CheckResult]:
    return {name: CheckResult(name, 0, current) for name in fleet.hosts}
