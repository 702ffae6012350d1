"""dns.check against a real authoritative server: Knot on loopback serving our BIND output.

The zone Knot loads is exactly what `mailfleet dns.records --format bind --soa NS` prints; the
check passes on it, and fails naming the record once one record is changed in the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from knot_server import HAVE_KNOT, Knot, serve_zones

MAILFLEET = str(Path(sys.executable).parent / "mailfleet")
ZONE = "example.com"

pytestmark = pytest.mark.skipif(not HAVE_KNOT, reason="knotd/knotc are not installed (apt-get install knot)")


def mailfleet(*args: str, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILFLEET, *args, "--inventory", str(inventory)], capture_output=True, text=True,
                          timeout=120, cwd=inventory.parent)


@pytest.fixture
def knot(tmp_path: Path, keyed_inventory: Path) -> Iterator[Knot]:
    zone_text = mailfleet("dns.records", "--domain", ZONE, "--format", "bind", "--soa", "ns1.example.com",
                          inventory=keyed_inventory)
    assert zone_text.returncode == 0, zone_text.stderr
    with serve_zones(tmp_path / "knot", {ZONE: zone_text.stdout}) as server:
        yield server


def test_the_published_bind_output_passes_then_a_changed_record_fails_by_name(knot: Knot,
                                                                              keyed_inventory: Path) -> None:
    ok = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, inventory=keyed_inventory)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 drift" in ok.stdout
    assert "✓ MX" in ok.stdout and "✓ TXT" in ok.stdout

    knot.replace(ZONE, "@", "TXT", '"v=spf1 ip4:192.0.2.99 ~all"')
    bad = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, inventory=keyed_inventory)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "drift in: example.com. TXT (spf)" in bad.stdout
    assert "wrong SPF" in bad.stdout and "198.51.100.21" in bad.stdout and "~all" in bad.stdout
    assert "1 drift" in bad.stdout


def test_a_stale_dkim_key_and_a_missing_record_are_explained(knot: Knot, keyed_inventory: Path) -> None:
    from mailfleet.dkim.keys import generate_private_key_pem
    from mailfleet.dkim.render_key import render_public_key_b64

    other = render_public_key_b64(generate_private_key_pem(1024))
    knot.replace(ZONE, "s2026._domainkey", "TXT", f'"v=DKIM1; k=rsa; p={other}"')
    knot.control("zone-begin", ZONE)
    knot.control("zone-unset", ZONE, "autoconfig", "CNAME")
    knot.control("zone-commit", ZONE)
    result = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, "--json",
                       inventory=keyed_inventory)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    drift = {(r["name"], r["type"]): r for r in report["records"] if r["status"] in ("drift", "missing")}
    assert set(drift) == {("s2026._domainkey.example.com", "TXT"), ("autoconfig.example.com", "CNAME")}
    assert "stale DKIM key" in drift[("s2026._domainkey.example.com", "TXT")]["explanation"]
    assert drift[("autoconfig.example.com", "CNAME")]["status"] == "missing"


def test_too_many_spf_lookups_through_includes_are_counted_and_explained(knot: Knot, keyed_inventory: Path) -> None:
    ours = next(r for r in json.loads(mailfleet("dns.records", "--domain", ZONE, "--format", "json",
                                                 inventory=keyed_inventory).stdout)["records"] if r["kind"] == "spf")
    knot.control("zone-begin", ZONE)
    knot.control("zone-set", ZONE, "_spf1", "3600", "TXT", '"v=spf1 a mx a:x.example.com include:_spf2.example.com -all"')
    knot.control("zone-set", ZONE, "_spf2", "3600", "TXT", '"v=spf1 a mx a mx a mx a -all"')
    knot.control("zone-commit", ZONE)
    knot.replace(ZONE, "@", "TXT", '"' + ours["value"].replace(" -all", " include:_spf1.example.com -all") + '"')
    result = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, "--json", inventory=keyed_inventory)
    assert result.returncode == 1
    (spf,) = [r for r in json.loads(result.stdout)["records"] if r["type"] == "TXT" and r["name"] == ZONE
              and r["expected"].startswith("v=spf1")]
    # 1 (include _spf1) + 4 in _spf1 (a, mx, a:, include _spf2) + 7 in _spf2
    assert spf["status"] == "drift" and "needs 12 DNS lookups" in spf["explanation"]


def test_check_all_covers_every_domain_and_names_the_one_that_drifts(tmp_path: Path, keyed_inventory: Path) -> None:
    from knot_server import serve_zones
    from mailfleet.inventory import load_valid_inventory

    fleet = load_valid_inventory(keyed_inventory).fleet
    zones = {d.ascii: mailfleet("dns.records", "--domain", d.ascii, "--format", "bind", "--soa", "ns1.example.com",
                                inventory=keyed_inventory).stdout for d in fleet.domains.values()}
    with serve_zones(tmp_path / "all", zones) as server:
        ok = mailfleet("dns.check", "--all", "--nameserver", server.server, "--json", inventory=keyed_inventory)
        assert ok.returncode == 0, ok.stdout[-2000:]
        report = json.loads(ok.stdout)
        assert report["ok"] and len(report["domains"]) == 12
        server.replace("xn--bcher-kva.example", "_dmarc", "TXT", '"v=DMARC1; p=none"')
        bad = mailfleet("dns.check", "--all", "--nameserver", server.server, "--json", inventory=keyed_inventory)
    assert bad.returncode == 1
    drifting = [d["domain"] for d in json.loads(bad.stdout)["domains"] if not d["ok"]]
    assert drifting == ["xn--bcher-kva.example"]
