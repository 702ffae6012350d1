"""Mailcow's business semantics on the emulator's state, without HTTP."""

from __future__ import annotations

import base64
from itertools import count

import pytest
from mailcow_emulator import logic
from mailcow_emulator.secrets_host import dkim_public_key

_counter = count()


def fake_key(bits: int) -> str:
    return f"-----BEGIN PRIVATE KEY-----\nFAKE{bits}-{next(_counter)}\n-----END PRIVATE KEY-----\n"


def fake_public(pem: str) -> tuple[str, int]:
    if "FAKE" not in pem and "BEGIN" not in pem:
        raise ValueError("bad")
    if "FAKE" not in pem:
        return dkim_public_key(pem)
    body = pem.split("FAKE", 1)[1].split("\n", 1)[0]
    return base64.b64encode(body.encode()).decode(), int(body.split("-", 1)[0])


@pytest.fixture()
def deps() -> logic.Deps:
    return logic.Deps(hostname="mail.lab.test", now=lambda: "2026-11-29 00:00:00", generate_dkim=fake_key,
                      dkim_public=fake_public, hash_password=lambda p: "{PLAIN}" + p)


@pytest.fixture()
def state() -> tuple[dict, dict]:
    return logic.new_state()


def msgs(entries: list[dict]) -> list[tuple[str, object]]:
    return [(e["type"], e["msg"]) for e in entries]


def test_add_domain_generates_dkim_and_returns_rl_dkim_domain_entries(state, deps) -> None:
    db, redis = state
    out = logic.add_domain(db, redis, {"domain": "Example.org", "rl_value": "10", "rl_frame": "m"}, deps)
    assert msgs(out) == [("success", ["rl_saved", "example.org"]), ("success", ["dkim_added", "example.org"]),
                         ("success", ["domain_added", "example.org"])]
    assert redis["DKIM_SELECTORS"]["example.org"] == "dkim"
    assert "dkim.example.org" in redis["DKIM_PRIV_KEYS"]


def test_add_domain_keeps_an_existing_dkim_key(state, deps) -> None:
    db, redis = state
    logic.import_dkim(db, redis, {"domain": "example.org", "dkim_selector": "s2026",
                                  "private_key_file": fake_key(2048)}, deps)
    before = dict(redis["DKIM_PRIV_KEYS"])
    out = logic.add_domain(db, redis, {"domain": "example.org"}, deps)
    assert ("success", ["domain_add_dkim_available", "example.org"]) in msgs(out)
    assert redis["DKIM_PRIV_KEYS"] == before


def test_add_domain_with_key_size_zero_makes_no_key(state, deps) -> None:
    db, redis = state
    out = logic.add_domain(db, redis, {"domain": "example.org", "key_size": 0}, deps)
    assert msgs(out) == [("success", ["domain_added", "example.org"])]
    assert redis["DKIM_PUB_KEYS"] == {}


@pytest.mark.parametrize(("attr", "msg"), [
    ({"domain": "mail.lab.test"}, ["domain_cannot_match_hostname", "mail.lab.test"]),
    ({"domain": "not a domain"}, ["domain_invalid", "not a domain"]),
    ({"domain": "a.org", "defquota": 5000, "maxquota": 4000, "quota": 10240}, "mailbox_defquota_exceeds_mailbox_maxquota"),
    ({"domain": "a.org", "maxquota": 20000, "quota": 10240}, "mailbox_quota_exceeds_domain_quota"),
])
def test_add_domain_business_errors_are_danger_entries(state, deps, attr, msg) -> None:
    db, redis = state
    assert msgs(logic.add_domain(db, redis, attr, deps)) == [("danger", msg)]
    assert db["domains"] == {}


def test_add_domain_twice_is_domain_exists(state, deps) -> None:
    db, redis = state
    logic.add_domain(db, redis, {"domain": "example.org"}, deps)
    assert msgs(logic.add_domain(db, redis, {"domain": "example.org"}, deps)) == [("danger", ["domain_exists", "example.org"])]


def test_get_domain_empty_is_object_and_flags_are_strings(state, deps) -> None:
    db, redis = state
    assert logic.get_domain(db, redis, "all", {}, deps) == {}
    assert logic.get_domain(db, redis, "nope.org", {}, deps) == {}
    logic.add_domain(db, redis, {"domain": "example.org", "active": True, "tags": ["a"]}, deps)
    rows = logic.get_domain(db, redis, "all", {}, deps)
    assert rows[0]["active"] == "1" and rows[0]["relayhost"] == "0"
    assert rows[0]["def_quota_for_mbox"] == 3072 * 1024 * 1024
    assert logic.get_domain(db, redis, "all", {"tags": "b"}, deps) == {}


def test_edit_domain_adds_tags_and_sets_relayhost(state, deps) -> None:
    db, redis = state
    logic.add_domain(db, redis, {"domain": "example.org", "tags": ["a"]}, deps)
    logic.add_relayhost(db, redis, {"hostname": "[10.77.0.13]:25"}, deps)
    out = logic.edit_domain(db, redis, {"items": ["example.org"], "attr": {"tags": ["b"], "relayhost": "1"}}, deps)
    assert msgs(out) == [("success", ["domain_modified", "example.org"])]
    assert db["domains"]["example.org"]["tags"] == ["a", "b"]
    assert logic.get_relayhost(db, redis, "all", deps)[0]["used_by_domains"] == "example.org"


def test_dkim_import_needs_overwrite_when_a_key_exists(state, deps) -> None:
    db, redis = state
    first = fake_key(2048)
    assert msgs(logic.import_dkim(db, redis, {"domain": "blind.org", "dkim_selector": "s1", "private_key_file": first}, deps)) == [
        ("success", ["dkim_added", "blind.org"])]
    second = {"domain": "blind.org", "dkim_selector": "s2", "private_key_file": fake_key(2048)}
    assert msgs(logic.import_dkim(db, redis, second, deps)) == [("danger", ["dkim_domain_or_sel_exists", "blind.org"])]
    assert msgs(logic.import_dkim(db, redis, {**second, "overwrite_existing": 1}, deps)) == [("success", ["dkim_added", "blind.org"])]
    assert redis["DKIM_SELECTORS"]["blind.org"] == "s2" and "s1.blind.org" not in redis["DKIM_PRIV_KEYS"]


def test_dkim_import_logs_no_private_key(state, deps) -> None:
    db, redis = state
    out = logic.import_dkim(db, redis, {"domain": "x.org", "dkim_selector": "s", "private_key_file": fake_key(1024)}, deps)
    assert "FAKE" not in repr(out[0]["log"])


def test_add_dkim_needs_the_domain_and_no_existing_key(state, deps) -> None:
    db, redis = state
    assert msgs(logic.add_dkim(db, redis, {"domains": "ghost.org"}, deps)) == [("danger", "access_denied")]
    logic.add_domain(db, redis, {"domain": "example.org", "key_size": 0}, deps)
    assert msgs(logic.add_dkim(db, redis, {"domains": "example.org", "key_size": 1024}, deps)) == [("success", ["dkim_added", "example.org"])]
    assert msgs(logic.add_dkim(db, redis, {"domains": "example.org"}, deps)) == [("danger", ["dkim_domain_or_sel_invalid", "example.org"])]


def test_get_dkim_shape_and_privkey_hidden_by_default(state, deps) -> None:
    db, redis = state
    assert logic.get_dkim(db, redis, "none.org", deps) == {}
    logic.import_dkim(db, redis, {"domain": "x.org", "dkim_selector": "sel", "private_key_file": fake_key(2048)}, deps)
    got = logic.get_dkim(db, redis, "x.org", deps)
    assert set(got) == {"pubkey", "length", "dkim_txt", "dkim_selector", "privkey"}
    assert got["dkim_txt"] == f"v=DKIM1;k=rsa;t=s;s=email;p={got['pubkey']}"
    assert got["length"] == "2048" and got["privkey"] == "" and got["dkim_selector"] == "sel"


def test_delete_domain_refuses_non_empty_and_drops_dkim(state, deps) -> None:
    db, redis = state
    logic.add_domain(db, redis, {"domain": "example.org"}, deps)
    logic.add_mailbox(db, redis, {"local_part": "u", "domain": "example.org", "password": "pw", "password2": "pw"}, deps)
    assert msgs(logic.delete_domain(db, redis, ["example.org"], deps)) == [("danger", ["domain_not_empty", "example.org"])]
    logic.delete_mailbox(db, redis, ["u@example.org"], deps)
    assert msgs(logic.delete_domain(db, redis, ["example.org"], deps)) == [("success", ["domain_removed", "example.org"])]
    assert redis["DKIM_PUB_KEYS"] == {}


def test_mailbox_rules(state, deps) -> None:
    db, redis = state
    base = {"local_part": "u", "domain": "example.org", "password": "pw", "password2": "pw"}
    assert msgs(logic.add_mailbox(db, redis, base, deps)) == [("danger", ["domain_not_found", "example.org"])]
    logic.add_domain(db, redis, {"domain": "example.org", "mailboxes": 1}, deps)
    assert msgs(logic.add_mailbox(db, redis, {**base, "password2": "x"}, deps)) == [("danger", "password_mismatch")]
    assert msgs(logic.add_mailbox(db, redis, base, deps)) == [("success", ["mailbox_added", "u@example.org"])]
    assert db["mailboxes"]["u@example.org"]["password_hash"] == "{PLAIN}pw"
    assert msgs(logic.add_mailbox(db, redis, base, deps))[0][1] == ["object_exists", "u@example.org"]
    assert msgs(logic.add_mailbox(db, redis, {**base, "local_part": "v"}, deps))[0][1][0] == "max_mailbox_exceeded"
    assert "password" not in repr(logic.get_mailbox(db, redis, "all", "", deps))


def test_relayhost_add_returns_no_id_and_alias_ids_are_numeric(state, deps) -> None:
    db, redis = state
    out = logic.add_relayhost(db, redis, {"hostname": "[relay.lab.test]:587", "username": "u", "password": "p"}, deps)
    assert msgs(out) == [("success", ["relayhost_added", ""])]
    assert logic.get_relayhost(db, redis, "all", deps)[0]["id"] == 1
    logic.add_domain(db, redis, {"domain": "example.org"}, deps)
    logic.add_alias(db, redis, {"address": "info@example.org", "goto": "a@b.org"}, deps)
    assert logic.get_alias(db, redis, "all", deps)[0]["id"] == 1


def test_transport_brackets_ips_and_refuses_duplicates(state, deps) -> None:
    db, redis = state
    logic.add_transport(db, redis, {"destination": "example.org", "nexthop": "10.77.0.12:25"}, deps)
    assert logic.get_transport(db, redis, "all", deps)[0]["nexthop"] == "[10.77.0.12]:25"
    again = logic.add_transport(db, redis, {"destination": "example.org", "nexthop": "10.77.0.13:25"}, deps)
    assert msgs(again) == [("danger", ["transport_dest_exists", "example.org"])]


def test_unknown_write_route_is_none() -> None:
    db, redis = logic.new_state()
    assert logic.run_write("add", "frobnicator", db, redis, {}, None) is None  # type: ignore[arg-type]


def test_mta_sts_add_refuses_a_second_policy_and_edit_regenerates_the_id(state, deps) -> None:
    db, redis = state
    body = {"domain": "example.org", "version": "STSv1", "mode": "enforce", "mx": "mx1.example.org,*.example.net",
            "max_age": 86400, "active": 1}
    assert msgs(logic.add_mta_sts(db, redis, body, deps)) == [("danger", "access_denied")]
    logic.add_domain(db, redis, {"domain": "example.org", "key_size": 0}, deps)
    assert msgs(logic.add_mta_sts(db, redis, {**body, "mode": "strict"}, deps))[0][1][0] == "mta_sts_mode_invalid"
    assert msgs(logic.add_mta_sts(db, redis, {**body, "max_age": 0}, deps))[0][1][0] == "mta_sts_max_age_invalid"
    assert msgs(logic.add_mta_sts(db, redis, body, deps)) == [("success", ["mta_sts_added", "example.org"])]
    assert db["mta_sts"]["example.org"]["id"] == "20261129000000"
    assert msgs(logic.add_mta_sts(db, redis, body, deps))[0][0] == "danger"
    edited = logic.edit_mta_sts(db, redis, {"items": ["example.org"], "attr": {"mode": "testing"}}, deps)
    assert msgs(edited) == [("success", ["mta_sts_edited", "example.org"])]
    assert db["mta_sts"]["example.org"]["mode"] == "testing"
    assert logic.get_domain(db, redis, "example.org", {}, deps).get("mta_sts") is None  # not shown, like Mailcow
