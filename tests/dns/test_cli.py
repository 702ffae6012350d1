"""dns.records and dns.check on the command line: formats, errors, no host needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MAILFLEET = str(Path(sys.executable).parent / "mailfleet")
REPO = Path(__file__).resolve().parents[2]


def mailfleet(*args: str, inventory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILFLEET, *args, "--inventory", str(inventory)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_every_format_prints_the_same_records_with_no_host_reachable(keyed_inventory: Path) -> None:
    data = json.loads(mailfleet("dns.records", "--domain", "bücher.example", "--format", "json",
                                inventory=keyed_inventory).stdout)
    assert data["domain"] == "xn--bcher-kva.example"
    assert not any(r["pending"] for r in data["records"])  # the key exists locally
    in_zone = [r for r in data["records"] if r["in_zone"]]
    bind = mailfleet("dns.records", "--domain", "xn--bcher-kva.example", "--format", "bind", inventory=keyed_inventory)
    assert bind.returncode == 0
    record_lines = [line for line in bind.stdout.splitlines() if line and not line.startswith((";", "$"))]
    assert len(record_lines) == len(in_zone)
    table = mailfleet("dns.records", "--domain", "bücher.example", inventory=keyed_inventory).stdout
    assert table.count("why: ") == len(data["records"])


def test_bad_input_gets_a_clear_message(keyed_inventory: Path) -> None:
    unknown = mailfleet("dns.records", "--domain", "nope.example", inventory=keyed_inventory)
    assert unknown.returncode == 1 and "is not a domain in" in unknown.stderr and "add-domain" in unknown.stderr
    bad_format = mailfleet("dns.records", "--domain", "example.com", "--format", "xml", inventory=keyed_inventory)
    assert bad_format.returncode == 2 and "table, bind, json, octodns" in bad_format.stderr
    missing = mailfleet("dns.records", inventory=keyed_inventory)
    assert missing.returncode == 2 and "--domain" in missing.stderr
    bad_tlsa = mailfleet("dns.records", "--domain", "example.com", "--tlsa", "mx9=/nonexistent",
                         inventory=keyed_inventory)
    assert bad_tlsa.returncode == 1 and "there is no host 'mx9'" in bad_tlsa.stderr


def test_a_pending_key_is_shown_and_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text((REPO / "inventory" / "example.yaml").read_text())
    listed = mailfleet("dns.records", "--domain", "example.org", inventory=path)
    assert "p=<pending> (pending)" in listed.stdout and "no DKIM key for example.org" in listed.stdout
