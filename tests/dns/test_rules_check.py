"""Judging published DNS against the expected set, without any DNS server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.dkim.keys import generate_private_key_pem
from mailfleet.dkim.render_key import render_public_key_b64
from mailfleet.dns.check import parse_nameserver
from mailfleet.dns.records import DkimPublication, plan_records
from mailfleet.dns.rules_check import Published, plan_check
from mailfleet.dns.rules_spf import SpfSyntaxError, count_direct_lookups, parse_spf
from mailfleet.errors import MailfleetError
from mailfleet.inventory import load_valid_inventory

REPO = Path(__file__).resolve().parents[2]
KEY = render_public_key_b64(generate_private_key_pem(1024))


@pytest.fixture(scope="module")
def record_set():
    inv = load_valid_inventory(REPO / "inventory" / "example.yaml")
    assert inv.fleet is not None
    return plan_records(inv.fleet, inv.fleet.domains["example.net"], [DkimPublication("s2026", KEY)])


def published_as_expected(record_set) -> dict[tuple[str, str], Published]:
    out: dict[tuple[str, str], list[str]] = {}
    for r in record_set.records:
        out.setdefault((r.name, r.rtype), []).append(r.value)
    return {k: Published(tuple(v)) for k, v in out.items()}


def verdicts_by_kind(verdicts, kind):
    return [v for v in verdicts if v.record.kind == kind]


def test_everything_published_is_ok(record_set) -> None:
    verdicts = plan_check(record_set, published_as_expected(record_set))
    assert [v for v in verdicts if v.status != "ok"] == []


def test_extra_txt_at_the_apex_is_fine_but_two_spf_records_are_not(record_set) -> None:
    published = published_as_expected(record_set)
    spf = published[("example.net", "TXT")].values[0]
    published[("example.net", "TXT")] = Published((spf, "google-site-verification=abc"))
    assert verdicts_by_kind(plan_check(record_set, published), "spf")[0].status == "ok"
    published[("example.net", "TXT")] = Published((spf, "v=spf1 -all"))
    (verdict,) = verdicts_by_kind(plan_check(record_set, published), "spf")
    assert verdict.status == "drift" and "permerror" in verdict.explanation


def test_too_many_spf_lookups_are_explained(record_set) -> None:
    published = published_as_expected(record_set)
    spf = published[("example.net", "TXT")].values[0]
    extended = spf.replace(" -all", " include:_spf.big.example a mx -all")
    published[("example.net", "TXT")] = Published((extended,))
    (verdict,) = verdicts_by_kind(plan_check(record_set, published, {"_spf.big.example": 9}), "spf")
    assert verdict.status == "drift" and "needs 12 DNS lookups" in verdict.explanation


def test_a_stale_dkim_key_is_named(record_set) -> None:
    published = published_as_expected(record_set)
    other = render_public_key_b64(generate_private_key_pem(1024))
    published[("s2026._domainkey.example.net", "TXT")] = Published((f"v=DKIM1; k=rsa; p={other}",))
    (verdict,) = verdicts_by_kind(plan_check(record_set, published), "dkim")
    assert verdict.status == "drift" and "stale DKIM key at s2026._domainkey.example.net" in verdict.explanation


def test_missing_records_and_extra_mx_are_drift_but_ptr_advice_only_warns(record_set) -> None:
    published = published_as_expected(record_set)
    published[("_dmarc.example.net", "TXT")] = Published(nxdomain=True)
    published[("example.net", "MX")] = Published(published[("example.net", "MX")].values + ("5 old.example.net.",))
    ptr = next(r for r in record_set.records if r.kind == "ptr")
    published[(ptr.name, "PTR")] = Published(("somewhere.else.example.",))
    verdicts = plan_check(record_set, published)
    dmarc = verdicts_by_kind(verdicts, "dmarc")[0]
    assert dmarc.status == "missing" and "does not exist" in dmarc.explanation
    assert any(v.status == "drift" and "old.example.net" in v.explanation for v in verdicts_by_kind(verdicts, "mx"))
    ptr_verdict = next(v for v in verdicts if v.record is ptr)
    assert ptr_verdict.status == "warn" and not ptr_verdict.is_drift


def test_dmarc_tag_differences_are_listed(record_set) -> None:
    published = published_as_expected(record_set)
    published[("_dmarc.example.net", "TXT")] = Published(("v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com",))
    (verdict,) = verdicts_by_kind(plan_check(record_set, published), "dmarc")
    assert verdict.status == "drift" and "p=none instead of p=quarantine" in verdict.explanation


def test_spf_parsing_and_counting() -> None:
    terms = parse_spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:DB8::1 a mx/24 include:x.example exists:%{i}.y.example "
                      "redirect=z.example ~all")
    assert count_direct_lookups(terms) == 5
    assert str(terms[1]) == "ip6:2001:db8::1"
    with pytest.raises(SpfSyntaxError):
        parse_spf("v=spf1 ip4:999.1.1.1 -all")
    with pytest.raises(SpfSyntaxError):
        parse_spf("spf1 -all")


def test_nameserver_forms() -> None:
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:53") == ("::1", 53)
    assert parse_nameserver("::1") == ("::1", 53)
    with pytest.raises(MailfleetError, match="port"):
        parse_nameserver("127.0.0.1:99999")
