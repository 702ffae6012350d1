"""Bringing a lab up and down, breaking and healing it, on a private two-host lab
(``isolated_lab``: names mflt-*, 10.79.0.0/24), so the shared lab is never disturbed.

The tests run in file order: up, faults, recovery, down."""

from __future__ import annotations

import dataclasses
import imaplib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from lab_helpers import run_on

from mailfleet.inventory import load_valid_inventory, save_inventory
from mailfleet.inventory.merge import merge_domain
from mailfleet.lab import boot, network, parse_probe
from mailfleet.lab.faults import apply_fault, faults_file, heal_lab
from mailfleet.lab.state import load_state
from mailfleet.lab.system import pids_in_netns, wait_until

pytestmark = pytest.mark.lab
PREFIX = "mflt"


def machine_snapshot() -> dict[str, object]:
    """What a lab could leave behind on the machine, restricted to things named like this lab."""
    netns = sorted(p.name for p in Path("/run/netns").glob(f"{PREFIX}-*")) if Path("/run/netns").exists() else []
    links = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(PREFIX))
    mounts = sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if PREFIX in line or line.split()[4] == "/run/netns")
    iptables: list[str] = []
    if shutil.which("iptables"):
        rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout.splitlines()
        iptables = [rule for rule in rules if f"{PREFIX}0" in rule]  # other labs come and go meanwhile
    return {"netns": netns, "links": links, "mounts": mounts, "iptables": iptables}


def lab_processes(root: Path, inodes: set[int]) -> list[int]:
    """Processes in one of the lab's network namespaces or running a file of the lab's folder."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry}/ns/net")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(link[link.index("[") + 1:-1]) in inodes or str(root).encode() in cmdline:
            found.append(int(entry))
    return found


def answers_ssh(address: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-2.0")
    except OSError:
        return False


BEFORE: dict[str, object] = {}
INODES: set[int] = set()


def test_up_builds_the_hosts_and_a_second_up_is_a_no_op(isolated_lab) -> None:
    BEFORE.update(machine_snapshot())
    first = isolated_lab.up()
    assert first.changed and sorted(first.started) == ["mx1", "relay1"]
    state = load_state(isolated_lab.paths)
    assert state is not None and state.complete
    for record in state.hosts:
        INODES.add(os.stat(f"/run/netns/{record.netns}").st_ino)
    if shutil.which("iptables") and Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1":
        # Where bridged frames pass iptables, the lab lets its own bridge's traffic through.
        assert machine_snapshot()["iptables"] == [
            f"-A FORWARD -i {PREFIX}0 -o {PREFIX}0 -m comment --comment mailfleet-lab -j ACCEPT"]
    second = isolated_lab.up()
    assert not second.changed and sorted(second.kept) == ["mx1", "relay1"]
    assert run_on(isolated_lab.paths.inventory, "relay1", "hostname").strip() == "relay1"
    from mailfleet.lab.lifecycle import lab_up
    from mailfleet.lab.system import LabError
    with pytest.raises(LabError, match="cannot grow or shrink in place"):
        lab_up(isolated_lab.paths, 3, isolated_lab.space, say=lambda _: None)
    with pytest.raises(LabError, match="is inside the lab subnet"):  # a second lab on this lab's subnet
        lab_up(dataclasses.replace(isolated_lab.paths, state_dir=isolated_lab.root / "other"), 1,
               dataclasses.replace(isolated_lab.space, prefix="mflu", subnet=isolated_lab.space.subnet),
               say=lambda _: None)


def test_mail_from_one_host_arrives_over_imap_on_another(isolated_lab) -> None:
    """relay1's Postfix delivers to mx1's Postfix over the bridge; mx1's Dovecot serves it."""
    inventory = isolated_lab.paths.inventory
    password = isolated_lab.paths.mailbox_password.read_text().strip()
    subject = f"lab-flow-{uuid.uuid4().hex}"
    run_on(inventory, "relay1", f"printf 'Subject: {subject}\\nFrom: probe@relay1.lab.mailfleet.test\\n\\nhello\\n' "
                                "| /usr/sbin/sendmail -f probe@relay1.lab.mailfleet.test labuser@mx1.lab.mailfleet.test")
    deadline = time.monotonic() + 30
    message = b""
    while time.monotonic() < deadline and not message:
        with imaplib.IMAP4("10.79.0.11", 143, timeout=10) as imap:
            imap.login("labuser", password)
            imap.select("INBOX")
            _, found = imap.search(None, "SUBJECT", subject)
            if found[0].split():
                _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                message = data[0][1]
        if not message:
            time.sleep(0.3)
    assert message, f"the message {subject} did not arrive at mx1 within 30 s"
    assert b"from relay1.lab.mailfleet.test (relay1.lab.mailfleet.test [10.79.0.12])" in message
    log = run_on(inventory, "relay1", "cat /var/log/postfix.log")
    assert "relay=mx1.lab.mailfleet.test[10.79.0.11]:25" in log and "status=sent" in log
    # Each host logs to its own /var/log, which the machine sees in the host's folder.
    assert subject not in (isolated_lab.paths.host_dir("relay1") / "log" / "postfix.log").read_text()
    assert "relay1 postfix/" in (isolated_lab.paths.host_dir("relay1") / "log" / "postfix.log").read_text()
    assert "mx1 postfix/local" in (isolated_lab.paths.host_dir("mx1") / "log" / "postfix.log").read_text()


def test_fault_down_stops_answering_and_heal_brings_it_back(isolated_lab) -> None:
    inventory = isolated_lab.paths.inventory
    key_before = (isolated_lab.paths.host_dir("mx1") / "etc/upper/ssh/ssh_host_ed25519_key.pub").read_text()
    try:
        apply_fault(isolated_lab.paths, "mx1", "down", say=lambda _: None)
        assert not answers_ssh("10.79.0.11")
        state = load_state(isolated_lab.paths)
        assert state is not None and state.faults == {"mx1": ("down",)}
        assert not boot.host_running(next(r for r in state.hosts if r.name == "mx1"))
        assert answers_ssh("10.79.0.12"), "the other host must not be affected"
    finally:
        heal_lab(isolated_lab.paths, say=lambda _: None)
    assert run_on(inventory, "mx1", "hostname").strip() == "mx1"  # same pinned key still accepted
    key_after = (isolated_lab.paths.host_dir("mx1") / "etc/upper/ssh/ssh_host_ed25519_key.pub").read_text()
    assert key_after == key_before
    assert "up" in run_on(inventory, "mx1", "postfix status 2>&1 && echo up")
    state = load_state(isolated_lab.paths)
    assert state is not None and state.faults == {}


def _cli(isolated_lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The same through the command line, as a user types it."""
    mailfleet = str(Path(sys.executable).with_name("mailfleet"))
    where = ["--dir", str(isolated_lab.paths.state_dir), "--inventory", str(isolated_lab.paths.inventory)]
    return subprocess.run([mailfleet, *args, *where], capture_output=True, text=True, timeout=120)


def test_partition_cuts_the_host_off_and_heal_reconnects_it(isolated_lab) -> None:
    try:
        result = _cli(isolated_lab, "lab.fault", "--host", "relay1", "--kind", "partition")
        assert result.returncode == 0, result.stderr
        assert "relay1 is cut off" in result.stdout
        assert not answers_ssh("10.79.0.12", timeout=1.5)
        assert answers_ssh("10.79.0.11")
        status = _cli(isolated_lab, "lab.status", "--json")
        assert status.returncode == 1
        report = json.loads(status.stdout)
        assert report["hosts"]["relay1"]["link"] == "down" and not report["hosts"]["relay1"]["ok"]
        assert report["hosts"]["relay1"]["faults"] == ["partition"]
        assert report["hosts"]["mx1"]["ok"] and report["hosts"]["mx1"]["ssh"]["hostname"] == "mx1"
    finally:
        healed = _cli(isolated_lab, "lab.heal", "--host", "relay1")
    assert healed.returncode == 0 and "link mfltv12 up again" in healed.stdout
    assert wait_until(lambda: answers_ssh("10.79.0.12"), 10)
    assert _cli(isolated_lab, "lab.status").returncode == 0
    again = _cli(isolated_lab, "lab.heal")
    assert again.returncode == 0 and "nothing to heal" in again.stdout


def test_emulator_faults_are_written_for_the_emulator_and_healed(isolated_lab) -> None:
    path = faults_file(isolated_lab.paths, "mx1")
    try:
        apply_fault(isolated_lab.paths, "mx1", "api-errors", mode="slow", delay_s=3, say=lambda _: None)
        apply_fault(isolated_lab.paths, "mx1", "update-fails", say=lambda _: None)
        assert json.loads(path.read_text()) == {"api-errors": {"mode": "slow", "delay_s": 3.0}, "update-fails": True}
        # Inside the host it is /var/lib/docker/mailcow-emulator/faults.json.
        inside = run_on(isolated_lab.paths.inventory, "mx1", "cat /var/lib/docker/mailcow-emulator/faults.json")
        assert json.loads(inside)["update-fails"] is True
        with pytest.raises(Exception, match="must be one of"):
            apply_fault(isolated_lab.paths, "mx1", "api-errors", mode="sometimes", say=lambda _: None)
        with pytest.raises(Exception, match="unknown fault kind"):
            apply_fault(isolated_lab.paths, "mx1", "flood", say=lambda _: None)
        with pytest.raises(Exception, match="no host 'mx9'"):
            apply_fault(isolated_lab.paths, "mx9", "down", say=lambda _: None)
    finally:
        heal_lab(isolated_lab.paths, say=lambda _: None)
    assert not path.exists()


def _api_status(address: str) -> int:
    import requests
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:  # the emulator's certificate is self-signed, like a fresh Mailcow's
        return requests.get(f"https://{address}/api/v1/get/status/version", verify=False, timeout=10).status_code
    except requests.RequestException:
        return 0


def test_heal_restarts_an_installed_emulated_mailcow_and_api_faults_bite(isolated_lab) -> None:
    """A crashed host with Mailcow comes back with its containers, as dockerd restarts them."""
    inventory = isolated_lab.paths.inventory
    repo = isolated_lab.paths.mailcow_repository.as_uri()
    run_on(inventory, "mx1", "cd /opt && git -c advice.detachedHead=false clone -q -b 2026-07a "
                             f"{repo} mailcow-dockerized && cd mailcow-dockerized && "
                             "MAILCOW_HOSTNAME=mx1.lab.mailfleet.test MAILCOW_TZ=UTC ./generate_config.sh "
                             "</dev/null >/var/log/mailcow-install.log 2>&1 && "
                             "docker compose up -d </dev/null >>/var/log/mailcow-install.log 2>&1", timeout=120)
    assert _api_status("10.79.0.11") == 401  # up, and it wants an API key
    try:
        apply_fault(isolated_lab.paths, "mx1", "down", say=lambda _: None)
        assert _api_status("10.79.0.11") == 0
        heal_lab(isolated_lab.paths, "mx1", say=lambda _: None)
        assert _api_status("10.79.0.11") == 401  # heal waited for it
        apply_fault(isolated_lab.paths, "mx1", "api-errors", mode="500", say=lambda _: None)
        assert _api_status("10.79.0.11") == 500
    finally:
        heal_lab(isolated_lab.paths, say=lambda _: None)
    assert _api_status("10.79.0.11") == 401
    assert "mailcow_api=up" in run_on(inventory, "mx1", parse_probe.render_probe_command("/opt/mailcow-dockerized", 443))


def test_up_recovers_killed_hosts_and_a_stale_namespace(isolated_lab) -> None:
    state = load_state(isolated_lab.paths)
    assert state is not None
    mx1 = next(r for r in state.hosts if r.name == "mx1")
    relay1 = next(r for r in state.hosts if r.name == "relay1")
    inventory = load_valid_inventory(isolated_lab.paths.inventory)
    merge_domain(inventory.doc, "example.net", {"inbound": {"mx1": 10}, "relay": "relay1"})
    save_inventory(inventory)  # what add-domain does; a repair must keep it
    os.kill(mx1.init_pid, signal.SIGKILL)  # a crash nobody recorded as a fault
    assert wait_until(lambda: not boot.host_running(mx1), 10)
    result = isolated_lab.up()
    assert result.changed and result.started == ("mx1",) and result.kept == ("relay1",)
    assert run_on(isolated_lab.paths.inventory, "mx1", "hostname").strip() == "mx1"
    fleet = load_valid_inventory(isolated_lab.paths.inventory).fleet
    assert fleet is not None and list(fleet.domains) == ["example.net"]

    # Everything killed and the state file marked half-built: up rebuilds from stale namespaces.
    state = load_state(isolated_lab.paths)
    assert state is not None
    for record in state.hosts:
        os.kill(record.init_pid, signal.SIGKILL)
    assert wait_until(lambda: not any(pids_in_netns(r.netns) for r in state.hosts), 10)
    raw = json.loads(isolated_lab.paths.state_file.read_text())
    raw["complete"] = False
    isolated_lab.paths.state_file.write_text(json.dumps(raw))
    assert network.netns_exists("mflt-mx1")
    result = isolated_lab.up()
    assert sorted(result.started) == ["mx1", "relay1"]
    for name in ("mx1", "relay1"):
        assert run_on(isolated_lab.paths.inventory, name, "hostname").strip() == name
    assert relay1.init_pid != next(r for r in load_state(isolated_lab.paths).hosts if r.name == "relay1").init_pid


def test_up_recreates_a_deleted_bridge_without_restarting_hosts(isolated_lab) -> None:
    before = load_state(isolated_lab.paths)
    assert before is not None
    subprocess.run(["ip", "link", "del", f"{PREFIX}0"], check=True)
    assert not answers_ssh("10.79.0.11", timeout=1)
    result = isolated_lab.up()
    assert result.changed and result.started == () and sorted(result.kept) == ["mx1", "relay1"]
    after = load_state(isolated_lab.paths)
    assert after is not None and [r.init_pid for r in after.hosts] == [r.init_pid for r in before.hosts]
    assert run_on(isolated_lab.paths.inventory, "relay1", "hostname").strip() == "relay1"


def test_down_leaves_the_machine_as_it_was_and_is_safe_twice(isolated_lab) -> None:
    state = load_state(isolated_lab.paths)
    assert state is not None
    INODES.update(os.stat(f"/run/netns/{r.netns}").st_ino for r in state.hosts)
    assert lab_processes(isolated_lab.root, INODES), "the lab should have processes before down"
    assert isolated_lab.down() is True
    assert machine_snapshot() == BEFORE
    assert lab_processes(isolated_lab.root, INODES) == []
    assert not isolated_lab.paths.state_dir.exists()
    assert not isolated_lab.paths.inventory.exists()
    assert not isolated_lab.paths.secrets_dir.exists()
    assert isolated_lab.down() is False
    assert machine_snapshot() == BEFORE


def test_down_without_inventory_or_state_file_still_removes_everything(isolated_lab) -> None:
    isolated_lab.up()
    state = load_state(isolated_lab.paths)
    assert state is not None
    inodes = {os.stat(f"/run/netns/{r.netns}").st_ino for r in state.hosts}
    isolated_lab.paths.inventory.unlink()
    isolated_lab.paths.state_file.unlink()  # the lab is found by its names alone
    assert isolated_lab.down() is True
    assert machine_snapshot() == BEFORE
    assert lab_processes(isolated_lab.root, inodes) == []
    assert not isolated_lab.paths.state_dir.exists()
