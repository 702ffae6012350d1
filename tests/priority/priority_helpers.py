"""Helpers for the priority tests: variants of the example fleet."""

from __future__ import annotations

import dataclasses

from mailfleet.inventory.model import Fleet


def with_bulk_transport(fleet: Fleet, **changes) -> Fleet:
    settings = dataclasses.replace(fleet.settings,
                                   bulk_transport=dataclasses.replace(fleet.settings.bulk_transport, **changes))
    return dataclasses.replace(fleet, settings=settings)


def with_domain(fleet: Fleet, name: str, **changes) -> Fleet:
    domains = dict(fleet.domains)
    domains[name] = dataclasses.replace(domains[name], **changes)
    return dataclasses.replace(fleet, domains=domains)
