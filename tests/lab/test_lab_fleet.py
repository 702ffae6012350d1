"""The shared lab fleet: six hosts answering SSH with pinned keys, each its own machine,
real mail between them. These tests only read, or write and clean up inside a host."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lab_helpers import run_on

from mailfleet.errors import HostKeyError
from mailfleet.inventory import load_valid_inventory
from mailfleet.secrets import secret_path

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(Path(sys.executable).with_name("mailfleet"))


def _other_ed25519_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_status_shows_six_hosts_answering_ssh_with_their_pinned_keys(lab_fleet: Path) -> None:
    result = subprocess.run([MAILFLEET, "lab.status", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    inv = load_valid_inventory(lab_fleet)
    assert inv.fleet is not None
    assert sorted(report["hosts"]) == sorted(["mx1", "mx2", "relay1", "relay2", "tx1", "mon1"])
    for name, host in report["hosts"].items():
        assert host["ssh"]["ok"], (name, host["ssh"])
        # Short name as the lab sets it, or the FQDN once deploy has set Mailcow's hostname.
        assert host["ssh"]["hostname"] in (name, f"{name}.lab.mailfleet.test")
        assert host["ssh"]["pinned_key"] == inv.fleet.hosts[name].host_key
        assert host["postfix"] == "up"
    assert report["hosts"]["mx1"]["dovecot"] == "up"
    assert report["hosts"]["relay1"]["dovecot"] == "none"


def test_a_wrong_pinned_key_is_refused(lab_fleet: Path) -> None:
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(lab_fleet)
    assert inv.fleet is not None
    impostor_key = _other_ed25519_key()
    host = dataclasses.replace(inv.fleet.hosts["mx1"], host_key=impostor_key)
    with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
        open_connection(host, inv.fleet, inv.base_dir, timeout=5)
    # The same with bare paramiko: RejectPolicy plus only the wrong key known.
    client = paramiko.SSHClient()
    key_type, blob = impostor_key.split()[:2]
    client.get_host_keys().add(host.address, key_type, paramiko.PKey.from_type_string(key_type, __import__("base64").b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    identity = secret_path(inv.fleet.settings.ssh_identity, inv.base_dir)
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(host.address, username="root", key_filename=str(identity), look_for_keys=False,
                       allow_agent=False, timeout=5)
    client.close()


def test_each_host_has_its_own_hostname_etc_and_processes(lab_fleet: Path) -> None:
    marker = f"/etc/mailfleet-lab-probe-{uuid.uuid4().hex}"
    try:
        out = run_on(lab_fleet, "mx1", f"hostname -s; hostname -f; echo mx1-only > {marker}; cat {marker}; "
                                       "ps -e -o comm= | sort -u | tr '\\n' ' '")
        lines = out.splitlines()
        assert lines[0] == "mx1"
        assert lines[1] == "mx1.lab.mailfleet.test"
        assert lines[2] == "mx1-only"
        assert "tini" in lines[3] and "master" in lines[3]
        # Neither the machine nor another host sees mx1's /etc change.
        assert not Path(marker).exists()
        other = run_on(lab_fleet, "mx2", f"hostname -s; test -e {marker} && echo leaked || echo absent; "
                                         "pgrep -c -x master; cat /proc/1/comm")
        assert other.split() == ["mx2", "absent", "1", "tini"]
    finally:
        run_on(lab_fleet, "mx1", f"rm -f {marker}")


def test_hosts_have_no_route_out(lab_fleet: Path) -> None:
    out = run_on(lab_fleet, "relay1", "ip -4 route; ip route get 192.0.2.1 2>&1 || true")
    assert "default" not in out
    assert "unreachable" in out.lower()


def test_inventory_is_valid_and_secrets_are_private(lab_fleet: Path) -> None:
    result = subprocess.run([MAILFLEET, "inventory.check", "--inventory", str(lab_fleet)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    inv = load_valid_inventory(lab_fleet)
    assert inv.fleet is not None
    settings = inv.fleet.settings
    assert settings.trusted_networks == ("10.77.0.0/24",)
    assert settings.secrets_dir == "secrets/lab"
    assert inv.fleet.domains == {}
    assert inv.fleet.hosts["mon1"].roles == ("monitoring",) and inv.fleet.hosts["mon1"].api_key is None
    for host in inv.fleet.hosts.values():
        assert host.public_ips == (host.address,)
        if host.api_key is not None:
            path = secret_path(host.api_key, inv.base_dir)
            assert path.stat().st_mode & 0o077 == 0
            assert len(path.read_text().strip()) >= 32
    identity = secret_path(settings.ssh_identity, inv.base_dir)
    assert identity.stat().st_mode & 0o077 == 0


def test_up_on_a_running_lab_changes_nothing(lab_fleet: Path) -> None:
    state_before = json.loads((REPO / "var" / "lab" / "state.json").read_text())
    inventory_before = lab_fleet.read_text()
    result = subprocess.run([MAILFLEET, "lab.up"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already up" in result.stdout and "nothing to do" in result.stdout
    state_after = json.loads((REPO / "var" / "lab" / "state.json").read_text())
    assert [h["init_pid"] for h in state_after["hosts"]] == [h["init_pid"] for h in state_before["hosts"]]
    assert lab_fleet.read_text() == inventory_before
