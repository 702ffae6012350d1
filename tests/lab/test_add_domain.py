"""add-domain on a lab fleet: the twelve example domains, twice; the second run changes nothing.

The test builds a six-host lab of its own (names mfad-*, a free 10.9x.0.0/24), deploys Mailcow
(the lab's emulator) with `mailfleet deploy --all`, then runs the real command line: SSH with
pinned keys, the API tunnel, Mailcow's API semantics. It does not use the shared lab, whose
inventory other sessions deploy from and whose hosts other tests load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailfleet.dkim.keys import load_key
from mailfleet.inventory import load_valid_inventory

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(Path(sys.executable).parent / "mailfleet")


def mailfleet(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILFLEET, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for third in range(91, 100):
        if f" 10.{third}.0." not in used:
            return f"10.{third}.0.0/24"
    pytest.skip("no free 10.9x.0.0/24 subnet for a private lab")


@pytest.fixture(scope="module")
def lab_inventory() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    from mailfleet.lab.lifecycle import lab_down, lab_up
    from mailfleet.lab.model import LabSpace
    from mailfleet.lab.state import LabPaths

    root = REPO / "var" / f"lab-add-domain-{os.getpid()}"
    paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                     example=REPO / "inventory" / "example.yaml")
    space = LabSpace(prefix="mfad", subnet=free_subnet())
    try:
        lab_up(paths, 6, space, say=lambda _: None)
        for role in ("inbound", "outbound-relay"):  # the hosts that run Mailcow; mon1 is not needed here
            deployed = mailfleet("deploy", "--role", role, "--inventory", str(paths.inventory), timeout=1500)
            assert deployed.returncode == 0, \
                f"deploy --role {role} failed:\n{deployed.stdout[-3000:]}\n{deployed.stderr[-3000:]}"
        yield paths.inventory
    finally:
        lab_down(paths, space, say=lambda _: None)
        shutil.rmtree(root, ignore_errors=True)


def example_domains():
    fleet = load_valid_inventory(REPO / "inventory" / "example.yaml").fleet
    return list(fleet.domains.values())


def add_domain_args(domain, inventory: Path) -> list[str]:
    args = ["add-domain", "--domain", domain.name, "--selector", domain.dkim.selector, "--json",
            "--inventory", str(inventory)]
    for host in domain.inbound_hosts:
        args += ["--inbound", host]
    if domain.relay:
        args += ["--relay", domain.relay]
    if domain.transactional_relay:
        args += ["--transactional-relay", domain.transactional_relay]
    if domain.mta_sts:
        args += ["--mta-sts", domain.mta_sts]
    return args


def add_all(inventory: Path, retry: bool = False) -> dict[str, dict]:
    """add-domain for each example domain. With ``retry``, a run a host failed (this machine is
    shared and sometimes slow) is run once more: completing it is exactly what a rerun is for."""
    reports = {}
    for domain in example_domains():
        done = mailfleet(*add_domain_args(domain, inventory))
        if done.returncode != 0 and retry:
            errors = {h: r["error"] for h, r in json.loads(done.stdout)["hosts"].items() if r["error"]}
            print(f"add-domain {domain.name}: host failures {errors}; running it again")
            done = mailfleet(*add_domain_args(domain, inventory))
        assert done.returncode == 0, f"add-domain {domain.name}:\n{done.stdout}\n{done.stderr}"
        reports[domain.name] = json.loads(done.stdout)
    return reports


def test_twelve_domains_twice_then_every_host_holds_them_with_one_key(lab_inventory: Path) -> None:
    first = add_all(lab_inventory, retry=True)
    assert len(first) == 12
    assert all(h["ok"] for r in first.values() for h in r["hosts"].values())
    inv = load_valid_inventory(lab_inventory)
    fleet = inv.fleet
    for example in example_domains():  # written with the same inbound and relay choices
        written = fleet.domain(example.name)
        assert written is not None and written.inbound == example.inbound
        assert (written.relay, written.transactional_relay) == (example.relay, example.transactional_relay)
        assert written.mta_sts == example.mta_sts
    text = lab_inventory.read_text()

    second = add_all(lab_inventory)
    changes = {name: {h: r["changes"] for h, r in report["hosts"].items() if r["changes"]}
               for name, report in second.items()}
    assert all(not c for c in changes.values()), changes
    assert all(h["ok"] for r in second.values() for h in r["hosts"].values())
    assert lab_inventory.read_text() == text

    # deploy wires relayhosts by the same rule: it finds nothing to change after add-domain
    deployed = mailfleet("deploy", "--role", "inbound", "--json", "--inventory", str(lab_inventory), timeout=1500)
    try:
        hosts = json.loads(deployed.stdout)["hosts"]
    except (ValueError, KeyError):
        pytest.fail(f"deploy --role inbound --json printed no report:\n{deployed.stdout[-2000:]}{deployed.stderr[-2000:]}")
    wiring = [(name, step) for name, host in hosts.items()
              for step in host["steps"] if step.get("step") == "relayhost_wiring"]
    assert wiring and not [w for w in wiring if w[1].get("changed")], wiring

    from mailfleet.mailcow import open_api

    ours = {d.ascii: load_key(inv.secrets_dir, d.ascii, d.dkim.selector).public_b64 for d in fleet.domains.values()}
    for host in fleet.hosts.values():
        if not host.runs_mailcow:
            continue
        with open_api(host, inv) as api:
            names = {str(row["domain_name"]) for row in api.get_domains()}
            assert names == {d.ascii for d in fleet.domains.values() if host.name in d.inbound_hosts}
            if host.name in fleet.domain("example.com").inbound_hosts:  # MTA-STS pushed, no warning
                assert all(not r["hosts"][host.name]["warnings"] for r in first.values() if host.name in r["hosts"])
            for domain in fleet.domains.values():
                dkim = api.get_dkim(domain.ascii)
                if host.name in domain.signing_hosts:
                    assert dkim and "".join(dkim["pubkey"].split()) == ours[domain.ascii], \
                        f"{host.name} signs {domain.name} with another key"
                    assert dkim["dkim_selector"] == domain.dkim.selector
                else:
                    assert not dkim, f"{host.name} holds a key for {domain.name} it does not sign"


def test_a_domain_a_host_already_holds_with_another_key_is_refused(lab_inventory: Path) -> None:
    from mailfleet.mailcow import open_api

    inv = load_valid_inventory(lab_inventory)
    with open_api("mx2", inv) as api:
        api.add_domain("handmade.example", key_size=2048, dkim_selector="dkim", restart_sogo=0)  # Mailcow's own key
    before = lab_inventory.read_text()
    done = mailfleet("add-domain", "--domain", "handmade.example", "--inventory", str(lab_inventory))
    assert done.returncode == 1
    assert "mx2 already holds a different DKIM key for handmade.example" in done.stderr
    assert "the inventory and the key folder were not changed" in done.stderr
    assert lab_inventory.read_text() == before
    assert load_key(inv.secrets_dir, "handmade.example", "s2026") is None


def test_tlsa_from_hosts_matches_the_certificate_each_mx_serves(lab_inventory: Path) -> None:
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(lab_inventory)
    if inv.fleet.domain("example.org") is None:
        done = mailfleet(*add_domain_args(next(d for d in example_domains() if d.name == "example.org"), lab_inventory))
        assert done.returncode == 0, done.stdout + done.stderr
        inv = load_valid_inventory(lab_inventory)
    listed = mailfleet("dns.records", "--domain", "example.org", "--tlsa-from-hosts", "--format", "json",
                       "--inventory", str(lab_inventory))
    assert listed.returncode == 0, listed.stderr
    tlsa = {r["name"]: r["value"] for r in json.loads(listed.stdout)["records"] if r["type"] == "TLSA"}
    install_dir = inv.fleet.settings.mailcow.install_dir
    for name in ("mx1", "mx2"):
        host = inv.fleet.hosts[name]
        conn = open_connection(host, inv.fleet, inv.base_dir)
        try:  # computed on the host by openssl, independently of mailfleet's code
            digest = conn.run(f"openssl x509 -in {install_dir}/data/assets/ssl/cert.pem -pubkey -noout"
                              " | openssl pkey -pubin -outform DER | sha256sum", hide=True, in_stream=False).stdout.split()[0]
        finally:
            conn.close()
        assert tlsa[f"_25._tcp.{host.hostname}"] == f"3 1 1 {digest}"


def test_published_records_check_out_and_a_rotation_switches_every_signer(lab_inventory: Path, tmp_path: Path) -> None:
    """add-domain's keys published through Knot: dns.check passes; dkim.rotate publishes a new
    selector, waits for DNS, switches every signing host, and the check still passes."""
    sys.path.insert(0, str(REPO / "tests" / "dns"))
    from knot_server import HAVE_KNOT, serve_zones

    from mailfleet.dns.render_bind import render_txt_strings
    from mailfleet.mailcow import open_api

    if not HAVE_KNOT:
        pytest.skip("knotd/knotc are not installed (apt-get install knot)")
    example = next(d for d in example_domains() if d.name == "example.com")
    inv = load_valid_inventory(lab_inventory)
    if inv.fleet.domain("example.com") is None:
        assert mailfleet(*add_domain_args(example, lab_inventory)).returncode == 0
    inventory = ["--inventory", str(lab_inventory)]
    zone = mailfleet("dns.records", "--domain", "example.com", "--format", "bind", "--soa", "ns1.example.com",
                     *inventory)
    assert zone.returncode == 0, zone.stderr
    with serve_zones(tmp_path / "knot", {"example.com": zone.stdout}) as knot:
        ns = ["--nameserver", knot.server]
        checked = mailfleet("dns.check", "--domain", "example.com", *ns, *inventory)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        started = mailfleet("dkim.rotate", "--domain", "example.com", "--selector", "s2027", *ns, *inventory)
        assert started.returncode == 0 and "step: start" in started.stdout, started.stdout + started.stderr
        waiting = mailfleet("dkim.rotate", "--domain", "example.com", *ns, *inventory)
        assert "step: wait_dns" in waiting.stdout
        pending = mailfleet("dns.check", "--domain", "example.com", *ns, *inventory)
        assert pending.returncode == 1 and "s2027._domainkey.example.com. TXT (dkim)" in pending.stdout

        records = json.loads(mailfleet("dns.records", "--domain", "example.com", "--format", "json", *inventory).stdout)
        new = next(r for r in records["records"] if r["name"] == "s2027._domainkey.example.com")
        knot.control("zone-begin", "example.com")
        knot.control("zone-set", "example.com", "s2027._domainkey", "3600", "TXT", render_txt_strings(new["value"]))
        knot.control("zone-commit", "example.com")

        switched = mailfleet("dkim.rotate", "--domain", "example.com", *ns, *inventory)
        assert switched.returncode == 0 and "step: switch" in switched.stdout, switched.stdout + switched.stderr
        after = mailfleet("dns.check", "--domain", "example.com", *ns, *inventory)
        assert after.returncode == 0, after.stdout  # s2027 signs, s2026 stays published as "previous"
        assert "✓ TXT   s2026._domainkey" in after.stdout and "✓ TXT   s2027._domainkey" in after.stdout

    inv = load_valid_inventory(lab_inventory)
    domain = inv.fleet.domain("example.com")
    assert domain.dkim.selector == "s2027"
    ours = load_key(inv.secrets_dir, "example.com", "s2027").public_b64
    for name in domain.signing_hosts:
        with open_api(name, inv) as api:
            dkim = api.get_dkim("example.com")
        assert dkim["dkim_selector"] == "s2027" and "".join(dkim["pubkey"].split()) == ours, name
    again = mailfleet(*add_domain_args(example, lab_inventory)[:3], "--json", *inventory)  # no --selector: as written
    assert again.returncode == 0 and all(h["changes"] == 0 for h in json.loads(again.stdout)["hosts"].values())
