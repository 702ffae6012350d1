"""dkim.rotate: publish a new selector, switch once DNS serves it, retire the old one later."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailfleet.dkim.keys import load_key
from mailfleet.dkim.plan_rotation import next_selector
from mailfleet.dkim.publications import load_publications
from mailfleet.dkim.rotate import rotate_dkim
from mailfleet.domains.add import add_domain
from mailfleet.errors import MailfleetError
from mailfleet.inventory import load_valid_inventory

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)


def test_a_rotation_walks_through_its_phases(inventory_path, fake_fleet) -> None:
    add_domain(load_valid_inventory(inventory_path), "example.org", opener=fake_fleet.opener)
    published: dict[str, str] = {}

    def visible(name: str, value: str) -> bool:
        return published.get(name) == value

    def rotate(now: datetime, **kwargs):
        return rotate_dkim(load_valid_inventory(inventory_path), "example.org", now, visible,
                           opener=fake_fleet.opener, **kwargs)

    old = fake_fleet.apis["mx2"].dkim_public("example.org")
    start = rotate(T0)
    assert start.step.kind == "start" and start.step.new_selector == "s202611"
    name, value = start.record
    assert name == "s202611._domainkey.example.org"
    inv = load_valid_inventory(inventory_path)
    assert [(p.selector, p.state) for p in load_publications(inv.secrets_dir, inv.fleet.domain("example.org"))] == \
        [("s2026", "active"), ("s202611", "next")]

    waiting = rotate(T0 + timedelta(hours=1))
    assert waiting.step.kind == "wait_dns" and fake_fleet.apis["mx2"].dkim_public("example.org") == old

    fake_fleet.apis["relay2"].down = True
    published[name] = value
    failed = rotate(T0 + timedelta(hours=2))
    assert failed.step.kind == "switch" and set(failed.host_errors) == {"relay2"}
    assert load_valid_inventory(inventory_path).fleet.domain("example.org").dkim.selector == "s2026"  # not moved

    fake_fleet.apis["relay2"].down = False
    switched = rotate(T0 + timedelta(hours=3))
    assert switched.step.kind == "switch" and not switched.host_errors
    new = load_key(inv.secrets_dir, "example.org", "s202611").public_b64
    for host in ("mx1", "mx2", "relay2"):
        assert fake_fleet.apis[host].dkim_public("example.org") == new
        assert fake_fleet.apis[host].redis["DKIM_SELECTORS"]["example.org"] == "s202611"
    inv = load_valid_inventory(inventory_path)
    domain = inv.fleet.domain("example.org")
    assert domain.dkim.selector == "s202611"
    assert [(p.selector, p.state) for p in load_publications(inv.secrets_dir, domain)] == \
        [("s202611", "active"), ("s2026", "previous")]
    assert add_domain(inv, "example.org", opener=fake_fleet.opener).report.changes == 0  # consistent with add-domain

    assert rotate(T0 + timedelta(days=3)).step.kind == "wait_retire"
    retired = rotate(T0 + timedelta(days=8))
    assert retired.step.kind == "retire"
    inv = load_valid_inventory(inventory_path)
    assert [p.selector for p in load_publications(inv.secrets_dir, inv.fleet.domain("example.org"))] == ["s202611"]


def test_next_selector_avoids_the_current_one() -> None:
    assert next_selector("s2026", T0) == "s202611"
    assert next_selector("s202611", T0) == "s202611b"


def test_rotating_an_unknown_domain_is_a_clear_error(inventory_path, fake_fleet) -> None:
    with pytest.raises(MailfleetError, match="not in"):
        rotate_dkim(load_valid_inventory(inventory_path), "nope.example", T0, lambda n, v: False,
                    opener=fake_fleet.opener)
