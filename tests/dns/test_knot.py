"""dns.check against a real authoritative server: Knot on loopback serving our BIND output.

The zone Knot loads is exactly what `mailfleet dns.records --format bind --soa NS` prints; the
check passes on it, and fails naming the record once one record is changed in the server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.resolver
import pytest

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
MAILFLEET = str(Path(sys.executable).parent / "mailfleet")
ZONE = "example.com"

pytestmark = pytest.mark.skipif(not os.path.exists(KNOTD), reason="knotd is not installed (apt-get install knot)")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def mailfleet(*args: str, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILFLEET, *args, "--inventory", str(inventory)], capture_output=True, text=True,
                          timeout=120, cwd=inventory.parent)


class Knot:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.folder, self.port, self.process = folder, port, process
        self.conf = folder / "knot.conf"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def control(self, *args: str) -> None:
        done = subprocess.run([KNOTC, "-c", str(self.conf), *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"knotc {' '.join(args)}: {done.stdout}{done.stderr}"

    def replace(self, owner: str, rtype: str, rdata: str) -> None:
        """Swap every ``rtype`` record at ``owner`` for one with ``rdata`` (one transaction)."""
        self.control("zone-begin", ZONE)
        self.control("zone-unset", ZONE, owner, rtype)
        self.control("zone-set", ZONE, owner, "3600", rtype, rdata)
        self.control("zone-commit", ZONE)


@pytest.fixture
def knot(tmp_path: Path, keyed_inventory: Path) -> Iterator[Knot]:
    zone_text = mailfleet("dns.records", "--domain", ZONE, "--format", "bind", "--soa", "ns1.example.com",
                          inventory=keyed_inventory)
    assert zone_text.returncode == 0, zone_text.stderr
    folder = tmp_path / "knot"
    folder.mkdir()
    (folder / "db").mkdir()  # the journal; zone-commit fails with "not exists" without it
    (folder / f"{ZONE}.zone").write_text(zone_text.stdout)
    port = free_port()
    conf = folder / "knot.conf"
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {folder}
    pidfile: {folder}/knot.pid
log:
  - target: {folder}/knot.log
    any: info
database:
    storage: {folder}/db
control:
    listen: {folder}/knot.sock
template:
  - id: default
    storage: {folder}
    file: "%s.zone"
zone:
  - domain: {ZONE}
""")
    process = subprocess.Popen([KNOTD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], port, 1.0
        for _ in range(50):  # bounded: at most about 10 s
            try:
                resolver.resolve(f"_dmarc.{ZONE}.", "TXT")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if process.poll() is not None:
                    pytest.fail(f"knotd exited: {(folder / 'knot.log').read_text()}")
                time.sleep(0.2)
        else:
            pytest.fail(f"knotd did not answer: {(folder / 'knot.log').read_text()}")
        yield Knot(folder, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_published_bind_output_passes_then_a_changed_record_fails_by_name(knot: Knot,
                                                                              keyed_inventory: Path) -> None:
    ok = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, inventory=keyed_inventory)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 drift" in ok.stdout
    assert "✓ MX" in ok.stdout and "✓ TXT" in ok.stdout

    knot.replace("@", "TXT", '"v=spf1 ip4:192.0.2.99 ~all"')
    bad = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, inventory=keyed_inventory)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "drift in: example.com. TXT (spf)" in bad.stdout
    assert "wrong SPF" in bad.stdout and "198.51.100.21" in bad.stdout and "~all" in bad.stdout
    assert "1 drift" in bad.stdout


def test_a_stale_dkim_key_and_a_missing_record_are_explained(knot: Knot, keyed_inventory: Path) -> None:
    from mailfleet.dkim.keys import generate_private_key_pem
    from mailfleet.dkim.render_key import render_public_key_b64

    other = render_public_key_b64(generate_private_key_pem(1024))
    knot.replace("s2026._domainkey", "TXT", f'"v=DKIM1; k=rsa; p={other}"')
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
    knot.replace("@", "TXT", '"' + ours["value"].replace(" -all", " include:_spf1.example.com -all") + '"')
    result = mailfleet("dns.check", "--domain", ZONE, "--nameserver", knot.server, "--json", inventory=keyed_inventory)
    assert result.returncode == 1
    (spf,) = [r for r in json.loads(result.stdout)["records"] if r["type"] == "TXT" and r["name"] == ZONE
              and r["expected"].startswith("v=spf1")]
    # 1 (include _spf1) + 4 in _spf1 (a, mx, a:, include _spf2) + 7 in _spf2
    assert spf["status"] == "drift" and "needs 12 DNS lookups" in spf["explanation"]
