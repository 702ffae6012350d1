"""add-domain and domains.sync against in-process Mailcow APIs (the emulator's logic)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailfleet.dkim.keys import generate_private_key_pem, key_path, load_key
from mailfleet.domains.add import DomainConflictError, add_domain
from mailfleet.domains.plan_entry import DomainInputError
from mailfleet.domains.sync import sync_domains
from mailfleet.inventory import load_valid_inventory


def errors(report) -> dict[str, str | None]:
    return {name: r.error for name, r in report.results.items() if not r.ok}


def run(path: Path, fake_fleet, name: str, **kwargs):
    return add_domain(load_valid_inventory(path), name, opener=fake_fleet.opener, **kwargs)


def test_a_new_domain_is_written_keyed_and_pushed_and_a_rerun_changes_nothing(inventory_path, fake_fleet) -> None:
    before = inventory_path.read_text()
    result = run(inventory_path, fake_fleet, "new.example", inbound=["mx2", "mx1"])
    assert not result.report.failed and not result.report.conflicts
    text = inventory_path.read_text()
    assert text.startswith(before.rstrip("\n"))  # every comment and line of the user's file kept
    assert "  new.example:\n    inbound: {mx2: 10, mx1: 20}\n    relay: relay1\n" in text
    fleet = load_valid_inventory(inventory_path).fleet
    domain = fleet.domain("new.example")
    assert domain.inbound_hosts == ("mx2", "mx1") and domain.relay == "relay1"
    assert [m.local_part for m in domain.mailboxes] == ["postmaster"] and "abuse" in domain.aliases

    secrets = inventory_path.parent / "secrets"
    pem = key_path(secrets, "new.example", "s2026")
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    ours = load_key(secrets, "new.example", "s2026").public_b64
    apis = fake_fleet.apis
    for host in ("mx1", "mx2"):
        assert "new.example" in apis[host].domain_names()
        assert "postmaster@new.example" in apis[host].db["mailboxes"]
        assert any(a["address"] == "abuse@new.example" for a in apis[host].db["aliases"].values())
        relay_id = apis[host].db["domains"]["new.example"]["relayhost"]
        assert apis[host].db["relayhosts"][relay_id]["hostname"] == "[203.0.113.21]:25"
    for host in ("mx1", "mx2", "relay1"):  # every signing host holds the identical key: ours
        assert apis[host].dkim_public("new.example") == ours
        assert apis[host].redis["DKIM_SELECTORS"]["new.example"] == "s2026"
    assert apis["relay2"].dkim_public("new.example") is None and "new.example" not in apis["relay1"].domain_names()
    # add/domain never let Mailcow generate a key: the only DKIM writes are our imports
    assert not [w for api in apis.values() for w in api.writes if w[1] == "dkim"]
    mailbox_password = secrets / "mailboxes" / "postmaster@new.example.password"
    assert stat.S_IMODE(mailbox_password.stat().st_mode) == 0o600

    writes = fake_fleet.total_writes()
    again = run(inventory_path, fake_fleet, "new.example")
    assert again.report.changes == 0 and fake_fleet.total_writes() == writes
    assert not again.new_in_inventory and inventory_path.read_text() == text


def test_an_inventory_domain_is_pushed_as_written_and_relays_share_one_relayhost(inventory_path, fake_fleet) -> None:
    for name in ("example.com", "example.net"):
        result = run(inventory_path, fake_fleet, name)
        assert not result.report.failed, errors(result.report)
    mx1 = fake_fleet.apis["mx1"]
    assert {"example.com", "example.net"} <= mx1.domain_names()
    assert len(mx1.db["relayhosts"]) == 1  # both domains route through tx1: one object
    (relayhost,) = mx1.db["relayhosts"].values()
    assert relayhost["hostname"] == "[203.0.113.31]:25"  # the transactional relay, like deploy wires it
    assert mx1.db["domains"]["example.net"]["relayhost"] == str(relayhost["id"])
    assert {"postmaster@example.com", "dmarc-reports@example.com", "tls-reports@example.com"} <= set(mx1.db["mailboxes"])
    assert fake_fleet.apis["tx1"].dkim_public("example.com") == fake_fleet.apis["mx2"].dkim_public("example.com")
    assert run(inventory_path, fake_fleet, "example.com").report.changes == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad_name..example"}, "is not a valid domain name"),
    ({"name": "ok.example", "inbound": ["mx9"]}, "there is no host 'mx9'"),
    ({"name": "ok.example", "relay": "mx1"}, "lacks the outbound-relay role"),
    ({"name": "ok.example", "inbound": ["relay1"]}, "lacks the inbound role"),
])
def test_bad_input_is_refused_and_nothing_changes(inventory_path, fake_fleet, kwargs, message) -> None:
    before = inventory_path.read_text()
    name = kwargs.pop("name")
    with pytest.raises(DomainInputError, match=message) as error:
        run(inventory_path, fake_fleet, name, **kwargs)
    assert "the inventory was not changed" in str(error.value)
    assert inventory_path.read_text() == before
    assert not (inventory_path.parent / "secrets").exists()
    assert fake_fleet.opened == [] and fake_fleet.total_writes() == 0


def test_a_domain_a_host_holds_with_a_different_key_is_refused(inventory_path, fake_fleet) -> None:
    from mailfleet.lab.emulator.runtime.mailcow_emulator import logic

    mx2 = fake_fleet.apis["mx2"]
    logic.add_domain(mx2.db, mx2.redis, {"domain": "taken.example"}, mx2.deps)  # Mailcow generated its own key
    theirs = mx2.dkim_public("taken.example")
    before = inventory_path.read_text()
    with pytest.raises(DomainConflictError, match="mx2 already holds a different DKIM key for taken.example"):
        run(inventory_path, fake_fleet, "taken.example")
    assert inventory_path.read_text() == before
    assert not key_path(inventory_path.parent / "secrets", "taken.example", "s2026").exists()
    assert fake_fleet.total_writes() == 0 and mx2.dkim_public("taken.example") == theirs


def test_check_plans_and_changes_nothing(inventory_path, fake_fleet) -> None:
    before = inventory_path.read_text()
    result = run(inventory_path, fake_fleet, "plan.example", check=True)
    assert result.report.planned > 0 and result.report.changes == 0
    assert any("import DKIM key" in s for s in result.report.results["relay1"].planned)
    assert inventory_path.read_text() == before and fake_fleet.total_writes() == 0
    assert not (inventory_path.parent / "secrets").exists()


def test_a_half_way_failure_is_reported_per_host_and_a_rerun_completes_it(inventory_path, fake_fleet) -> None:
    fake_fleet.apis["mx2"].fail_after_writes = 2
    fake_fleet.apis["relay1"].down = True
    first = run(inventory_path, fake_fleet, "half.example")
    assert set(first.report.failed) == {"mx2", "relay1"}
    mx2 = first.report.results["mx2"]
    assert len(mx2.done) == 2 and "stopped at" in mx2.error and "HTTP 500" in mx2.error
    assert "connection refused" in first.report.results["relay1"].error
    assert first.report.results["mx1"].ok and len(first.report.results["mx1"].done) >= 5
    assert load_valid_inventory(inventory_path).fleet.domain("half.example") is not None  # recorded

    fake_fleet.apis["mx2"].fail_after_writes = None
    fake_fleet.apis["relay1"].down = False
    second = run(inventory_path, fake_fleet, "half.example")
    assert not second.report.failed
    assert second.report.results["mx1"].done == []  # nothing left to do there
    assert second.report.results["mx2"].done and second.report.results["relay1"].done
    assert run(inventory_path, fake_fleet, "half.example").report.changes == 0
    ours = fake_fleet.apis["mx1"].dkim_public("half.example")
    assert fake_fleet.apis["mx2"].dkim_public("half.example") == ours == fake_fleet.apis["relay1"].dkim_public("half.example")


def test_mta_sts_is_pushed_once_updated_when_the_policy_changes_and_a_warning_where_unsupported(
        inventory_path, fake_fleet) -> None:
    fake_fleet.apis["mx2"].mta_sts_supported = False
    result = run(inventory_path, fake_fleet, "shop.example")
    policy = fake_fleet.apis["mx1"].db["mta_sts"]["shop.example"]
    assert (policy["mode"], policy["mx"]) == ("testing", "mx1.mail.example.com,mx2.mail.example.com")
    assert any("no MTA-STS API" in w for w in result.report.results["mx2"].warnings)
    assert not result.report.failed
    assert run(inventory_path, fake_fleet, "shop.example").report.results["mx1"].done == []

    text = inventory_path.read_text()
    inventory_path.write_text(text.replace("    mta_sts: testing\n", "    mta_sts: enforce\n"))
    changed = run(inventory_path, fake_fleet, "shop.example")
    assert any("MTA-STS policy mode enforce" in s for s in changed.report.results["mx1"].done)
    assert fake_fleet.apis["mx1"].db["mta_sts"]["shop.example"]["mode"] == "enforce"  # add refused, edit replaced


def test_sync_fixes_drift_replaces_foreign_keys_and_changes_nothing_the_second_time(inventory_path, fake_fleet) -> None:
    from mailfleet.lab.emulator.runtime.mailcow_emulator import logic

    first = run(inventory_path, fake_fleet, "example.net")
    assert not first.report.failed, errors(first.report)
    mx1 = fake_fleet.apis["mx1"]
    logic.import_dkim(mx1.db, mx1.redis, {"domain": "example.net", "dkim_selector": "old",
                                          "private_key_file": generate_private_key_pem(1024),
                                          "overwrite_existing": 1}, mx1.deps)
    logic.delete_mailbox(mx1.db, mx1.redis, ["postmaster@example.net"], mx1.deps)
    inv = load_valid_inventory(inventory_path)
    writes = fake_fleet.total_writes()
    planned = sync_domains(inv, check=True, opener=fake_fleet.opener)
    steps = planned.report.results["mx1"].planned
    assert any("replace DKIM key old" in s for s in steps) and any("postmaster@example.net" in s for s in steps)
    assert fake_fleet.total_writes() == writes  # --check wrote nothing
    assert not key_path(inv.secrets_dir, "example.com", "s2026").exists()

    result = sync_domains(inv, opener=fake_fleet.opener)
    assert not result.report.failed and not result.skipped, errors(result.report)
    ours = load_key(inv.secrets_dir, "example.net", "s2026").public_b64
    assert mx1.dkim_public("example.net") == ours and "postmaster@example.net" in mx1.db["mailboxes"]
    assert len(fake_fleet.apis["mx1"].domain_names()) == 11  # every domain mx1 serves
    assert sync_domains(inv, opener=fake_fleet.opener).report.changes == 0


def test_sync_leaves_a_domain_alone_when_hosts_have_a_key_and_we_have_none(inventory_path, fake_fleet) -> None:
    from mailfleet.lab.emulator.runtime.mailcow_emulator import logic

    relay2 = fake_fleet.apis["relay2"]
    logic.import_dkim(relay2.db, relay2.redis, {"domain": "news.example", "dkim_selector": "s2026",
                                                "private_key_file": generate_private_key_pem(1024)}, relay2.deps)
    inv = load_valid_inventory(inventory_path)
    result = sync_domains(inv, opener=fake_fleet.opener)
    assert "news.example" in result.skipped
    assert not key_path(inv.secrets_dir, "news.example", "s2026").exists()
    assert "news.example" not in fake_fleet.apis["mx2"].domain_names()
    assert "example.com" in fake_fleet.apis["mx2"].domain_names()


def test_sync_reports_domains_the_inventory_does_not_list(inventory_path, fake_fleet) -> None:
    from mailfleet.lab.emulator.runtime.mailcow_emulator import logic

    mx1 = fake_fleet.apis["mx1"]
    logic.add_domain(mx1.db, mx1.redis, {"domain": "legacy.example", "key_size": 0}, mx1.deps)
    result = sync_domains(load_valid_inventory(inventory_path), check=True, opener=fake_fleet.opener)
    assert any(n.startswith("mx1: also holds legacy.example") for n in result.report.notes)
    assert "legacy.example" in mx1.domain_names()  # left alone


def test_key_size_is_written_for_a_new_domain_and_refused_when_it_contradicts(inventory_path, fake_fleet) -> None:
    result = run(inventory_path, fake_fleet, "big.example", key_size=3072, check=True)
    assert result.entry["dkim"] == {"selector": "s2026", "key_size": 3072}
    with pytest.raises(DomainInputError, match="dkim.rotate"):
        run(inventory_path, fake_fleet, "billing.example", key_size=2048)
    with pytest.raises(DomainInputError, match="1024, 2048, 3072, 4096"):
        run(inventory_path, fake_fleet, "odd.example", key_size=1000)


def test_sync_generates_no_key_while_a_signing_host_cannot_be_read(inventory_path, fake_fleet) -> None:
    fake_fleet.apis["relay2"].down = True
    inv = load_valid_inventory(inventory_path)
    result = sync_domains(inv, opener=fake_fleet.opener)
    assert "relay2" in result.report.failed
    assert "could not be read" in result.skipped["news.example"]  # relay2 signs news.example
    assert not key_path(inv.secrets_dir, "news.example", "s2026").exists()
    assert key_path(inv.secrets_dir, "example.com", "s2026").exists()  # relay1/tx1/mx1/mx2 answered
