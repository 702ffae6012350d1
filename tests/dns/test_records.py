"""The record set a domain needs, and its renderings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.dkim.keys import generate_private_key_pem
from mailfleet.dkim.render_key import render_public_key_b64
from mailfleet.dns.records import DkimPublication, plan_records
from mailfleet.dns.render_bind import render_bind, render_txt_strings
from mailfleet.dns.render_octodns import render_octodns
from mailfleet.dns.render_table import render_json, render_table
from mailfleet.dns.rules_spf import count_direct_lookups, parse_spf
from mailfleet.inventory import load_valid_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fleet():
    inv = load_valid_inventory(REPO / "inventory" / "example.yaml")
    assert inv.fleet is not None
    return inv.fleet


@pytest.fixture(scope="module")
def public_key() -> str:
    return render_public_key_b64(generate_private_key_pem(2048))


def by(records, kind):
    return [r for r in records.records if r.kind == kind]


def test_mx_points_at_the_inbound_hosts_in_preference_order(fleet) -> None:
    records = plan_records(fleet, fleet.domains["example.org"])
    assert [r.value for r in by(records, "mx")] == ["10 mx2.mail.example.com.", "20 mx1.mail.example.com."]
    assert all(r.name == "example.org" and r.why for r in by(records, "mx"))


def test_spf_lists_relays_and_inbound_hosts_and_fails_the_rest(fleet) -> None:
    (spf,) = by(plan_records(fleet, fleet.domains["example.com"]), "spf")
    terms = parse_spf(spf.value)
    assert spf.value.endswith(" -all")
    addresses = {t.argument for t in terms if t.name in ("ip4", "ip6")}
    assert addresses == {"198.51.100.21", "198.51.100.31", "203.0.113.11", "203.0.113.12",
                         "2001:db8:10::11", "2001:db8:10::12"}
    assert "198.51.100.22" not in spf.value  # relay2 does not send for example.com
    assert count_direct_lookups(terms) == 0 and "0/10 DNS lookups" in spf.why


def test_dkim_uses_our_key_and_is_pending_without_one(fleet, public_key) -> None:
    domain = fleet.domains["example.net"]
    pending = by(plan_records(fleet, domain), "dkim")
    assert len(pending) == 1 and pending[0].pending and "add-domain" in pending[0].why
    (record,) = by(plan_records(fleet, domain, [DkimPublication("s2026", public_key)]), "dkim")
    assert record.name == "s2026._domainkey.example.net"
    assert record.value == f"v=DKIM1; k=rsa; p={public_key}" and not record.pending


def test_rotation_publishes_both_selectors(fleet, public_key) -> None:
    other = render_public_key_b64(generate_private_key_pem(1024))
    records = plan_records(fleet, fleet.domains["example.net"],
                           [DkimPublication("s2026", public_key), DkimPublication("s2027", other, "next")])
    names = [r.name for r in by(records, "dkim")]
    assert names == ["s2026._domainkey.example.net", "s2027._domainkey.example.net"]
    assert "before signing switches" in by(records, "dkim")[1].why


def test_dmarc_follows_the_inventory_and_external_reports_need_authorisation(fleet) -> None:
    records = plan_records(fleet, fleet.domains["shop.example"])
    (dmarc,) = by(records, "dmarc")
    assert dmarc.name == "_dmarc.shop.example"
    assert dmarc.value == "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com"
    (auth,) = by(records, "dmarc-auth")
    assert auth.name == "shop.example._report._dmarc.example.com" and auth.value == "v=DMARC1"
    assert auth.relative_to("shop.example") is None  # it lives in the report domain's zone
    # The report domain's own set authorises every fleet domain that reports into it.
    home = by(plan_records(fleet, fleet.domains["example.com"]), "dmarc-auth")
    assert "shop.example._report._dmarc.example.com" in {r.name for r in home}
    assert "example.com._report._dmarc.example.com" not in {r.name for r in home}


def test_mta_sts_only_where_enabled_with_an_id_that_follows_the_policy(fleet) -> None:
    assert not by(plan_records(fleet, fleet.domains["example.net"]), "mta-sts")
    enforce = by(plan_records(fleet, fleet.domains["example.com"]), "mta-sts")
    testing = by(plan_records(fleet, fleet.domains["shop.example"]), "mta-sts")
    assert [r.rtype for r in enforce] == ["TXT", "CNAME"]
    assert enforce[1].value == "mx1.mail.example.com."
    assert enforce[0].value.startswith("v=STSv1; id=") and enforce[0].value != testing[0].value
    again = by(plan_records(fleet, fleet.domains["example.com"]), "mta-sts")
    assert again[0].value == enforce[0].value  # deterministic


def test_client_records_tlsa_and_ptr_advice(fleet) -> None:
    records = plan_records(fleet, fleet.domains["example.org"], tlsa={"mx2": "3 1 1 " + "ab" * 32})
    client = {(r.name, r.rtype): r.value for r in by(records, "client")}
    assert client[("autodiscover.example.org", "CNAME")] == "mx2.mail.example.com."  # the first inbound host
    assert client[("_imaps._tcp.example.org", "SRV")] == "0 1 993 mx2.mail.example.com."
    assert client[("_caldavs._tcp.example.org", "TXT")] == "path=/SOGo/dav/"
    (tlsa,) = by(records, "tlsa")
    assert tlsa.name == "_25._tcp.mx2.mail.example.com" and "zone of mx2.mail.example.com" in tlsa.why
    ptrs = {r.name: r.value for r in by(records, "ptr")}
    assert ptrs["22.100.51.198.in-addr.arpa"] == "relay2.mail.example.com."
    assert all(r.level == "advice" for r in by(records, "ptr"))


def test_every_record_has_a_reason(fleet, public_key) -> None:
    for domain in fleet.domains.values():
        records = plan_records(fleet, domain, [DkimPublication(domain.dkim.selector, public_key)])
        assert records.records and all(r.why and r.ttl > 0 for r in records.records)


def test_txt_is_split_into_255_byte_strings_and_escaped() -> None:
    text = "v=DKIM1; k=rsa; p=" + "A" * 600
    rendered = render_txt_strings(text)
    chunks = rendered.split('" "')
    assert len(chunks) == 3 and len(chunks[0].lstrip('"')) == 255
    assert render_txt_strings('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


def test_bind_output_keeps_foreign_names_and_pending_records_as_comments(fleet) -> None:
    text = render_bind(plan_records(fleet, fleet.domains["shop.example"]), soa_ns="ns1.example.net")
    lines = text.splitlines()
    assert "$ORIGIN shop.example." in lines
    assert any(line.startswith("@\t3600\tIN\tSOA\tns1.example.net. hostmaster.shop.example.") for line in lines)
    assert "; shop.example._report._dmarc.example.com.\t3600\tIN\tTXT\t\"v=DMARC1\"" in lines
    assert any(line.startswith("; s2026._domainkey\t") for line in lines)  # pending DKIM
    assert not any(line.startswith("22.100") for line in lines)


def test_octodns_escapes_semicolons_and_uses_structured_values(fleet, public_key) -> None:
    from ruamel.yaml import YAML

    records = plan_records(fleet, fleet.domains["example.com"], [DkimPublication("s2026", public_key)])
    text = render_octodns(records)
    doc = YAML(typ="safe").load(text.split("\n---\n", 1)[1])
    assert list(doc) == sorted(doc)  # octoDNS enforces key order
    apex = doc[""]
    mx = next(e for e in apex if e["type"] == "MX")
    assert {"exchange": "mx1.mail.example.com.", "preference": 10} in mx["values"]
    assert doc["_dmarc"]["value"].startswith("v=DMARC1\\; p=reject\\;")
    assert doc["_imaps._tcp"]["value"] == {"port": 993, "priority": 0, "target": "mx1.mail.example.com.", "weight": 1}
    assert "in-addr.arpa" not in "".join(doc)  # PTR advice is not part of the zone


def test_json_and_table_carry_every_record(fleet, public_key) -> None:
    records = plan_records(fleet, fleet.domains["example.com"], [DkimPublication("s2026", public_key)])
    data = render_json(records)
    assert len(data["records"]) == len(records.records)
    assert {"name", "type", "value", "ttl", "why", "level", "in_zone"} <= set(data["records"][0])
    table = render_table(records)
    assert "REQUIRED" in table and "ADVICE" in table and table.count("why: ") == len(records.records)


def test_octodns_itself_loads_the_octodns_output(fleet, public_key, tmp_path) -> None:
    """octoDNS's own YamlProvider reads and validates what `--format octodns` prints."""
    yaml_provider = pytest.importorskip("octodns.provider.yaml", reason="octodns is a test dependency")
    from octodns.zone import Zone

    records = plan_records(fleet, fleet.domains["example.com"], [DkimPublication("s2026", public_key)])
    (tmp_path / "example.com.yaml").write_text(render_octodns(records))
    zone = Zone("example.com.", [])
    yaml_provider.YamlProvider("mailfleet", str(tmp_path), escaped_semicolons=True).populate(zone)
    loaded = {(r.name, r._type) for r in zone.records}
    expected = {(r.relative_to("example.com").replace("@", ""), r.rtype) for r in records.in_zone() if not r.pending}
    assert loaded == expected
    dkim = next(r for r in zone.records if r.name == "s2026._domainkey")
    assert dkim.values[0].replace("\\;", ";") == f"v=DKIM1; k=rsa; p={public_key}"
