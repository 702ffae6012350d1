"""``mailfleet deploy`` on the lab fleet: converge six hosts, idempotency, drift, a wrong key.

Runs the real command line (the contract's JSON) against the shared lab. The drift test edits a
host and repairs it with deploy; the wrong-key test uses a copy of the inventory and changes
nothing on any host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lab_helpers import run_on

from mailfleet.inventory import load_valid_inventory
from mailfleet.ssh import fingerprint

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(Path(sys.executable).with_name("mailfleet"))
HOSTS = {"mx1", "mx2", "relay1", "relay2", "tx1", "mon1"}
INSTALL = "/opt/mailcow-dockerized"
# Everything under the install dir except git's own bookkeeping: path, mtime, size, mode.
SNAPSHOT = f"find {INSTALL} -path {INSTALL}/.git -prune -o -printf '%p %T@ %s %m\\n' | sort"


def deploy(inventory: Path, *args: str, timeout: int = 600) -> tuple[int, dict, str]:
    result = subprocess.run([MAILFLEET, "deploy", "--inventory", str(inventory), *args], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    if "--json" in args:
        try:
            return result.returncode, json.loads(result.stdout), result.stderr
        except json.JSONDecodeError:
            pytest.fail(f"deploy --json printed no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, {}, result.stdout + result.stderr


def snapshot(inventory: Path, host: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """Every file under the install dir (path, mtime, size, mode) and every container's state and
    start time as the host's Mailcow API reports them: what a mutating command would move."""
    from mailfleet.mailcow import open_api

    with open_api(host, load_valid_inventory(inventory)) as api:
        containers = {name: (str(info.get("state")), str(info.get("started_at")))
                      for name, info in api.get_containers().items()}
    return run_on(inventory, host, SNAPSHOT), containers


def changed_steps(host_report: dict) -> dict[str, list[str]]:
    return {step["name"]: step["changes"] for step in host_report["steps"] if step["changed"]}


@pytest.fixture(scope="module")
def deployed(lab_fleet: Path) -> Path:
    """The lab fleet converged once (whatever state it was in)."""
    code, report, err = deploy(lab_fleet, "--all", "--json")
    assert code == 0, f"first deploy failed: {json.dumps(report, indent=1)}\n{err}"
    assert set(report["hosts"]) == HOSTS
    return lab_fleet


def test_second_deploy_changes_nothing_on_any_host(deployed: Path) -> None:
    code, report, err = deploy(deployed, "--all", "--json")
    assert code == 0, err
    for name, host in report["hosts"].items():
        assert host["ok"], (name, host)
        assert host["changes"] == 0, (name, changed_steps(host))
        assert not changed_steps(host), name
    code, _, text = deploy(deployed, "--all")
    assert code == 0 and "zero changes - every host is converged" in text


def test_a_deployed_host_runs_mailcow_with_our_files_and_key(deployed: Path) -> None:
    conf = run_on(deployed, "relay1", f"cat {INSTALL}/mailcow.conf; stat -c %a {INSTALL}/mailcow.conf")
    assert conf.rstrip().endswith("600")
    assert "SKIP_FTS=y" in conf and "API_ALLOW_FROM=172.22.1.1,127.0.0.1" in conf
    extra = run_on(deployed, "relay1", f"cat {INSTALL}/data/conf/postfix/extra.cf")
    assert "myhostname" not in extra and "mynetworks = 127.0.0.0/8" in extra
    assert "local_addrs = [" in run_on(deployed, "relay1", f"cat {INSTALL}/data/conf/rspamd/local.d/options.inc")
    hook = run_on(deployed, "mx1", f"stat -c %a {INSTALL}/data/hooks/postfix/mailfleet-bulk-transport.sh")
    assert hook.strip() == "755"
    from mailfleet.mailcow import open_api

    inv = load_valid_inventory(deployed)
    with open_api("mx1", inv) as api:  # the tunnel, pinned TLS and the key deploy put in mailcow.conf
        containers = api.get_containers()
        assert containers and all(info.get("state") == "running" for info in containers.values())
        assert api.get_version()


def test_check_reports_exactly_the_drift_changes_nothing_and_deploy_repairs_it(deployed: Path) -> None:
    host = "mx2"
    passwords = run_on(deployed, host, f"grep -E '^(DBPASS|DBROOT|REDISPASS)=' {INSTALL}/mailcow.conf")
    run_on(deployed, host, f"sed -i 's/^SKIP_FTS=n$/SKIP_FTS=y/' {INSTALL}/mailcow.conf && "
                           f"rm {INSTALL}/data/conf/postfix/extra.cf")
    before = snapshot(deployed, host)
    assert before[1], "the API lists no containers"
    try:
        code, report, err = deploy(deployed, "--host", host, "--check", "--json")
        assert code == 0, err
        assert list(report["hosts"]) == [host]
        changes = changed_steps(report["hosts"][host])
        assert changes == {
            "mailcow.conf": ["SKIP_FTS: 'y' -> 'n'"],
            "role files": ["data/conf/postfix/extra.cf: create (missing)"],
            "compose": ["docker compose pull, up -d (mailcow.conf changed)",
                        "restart postfix-mailcow (their files changed)"],
        }
        assert snapshot(deployed, host) == before, "--check changed something on the host"
    finally:
        code, report, err = deploy(deployed, "--host", host, "--json")
    assert code == 0, (report, err)
    assert set(changed_steps(report["hosts"][host])) == {"mailcow.conf", "role files", "compose"}
    after = snapshot(deployed, host)
    assert after[0] != before[0] and after[1] != before[1], "the snapshot must see what deploy changed"
    code, report, err = deploy(deployed, "--host", host, "--check", "--json")
    assert code == 0 and report["hosts"][host]["changes"] == 0, report
    assert run_on(deployed, host, f"grep -c '^SKIP_FTS=n$' {INSTALL}/mailcow.conf").strip() == "1"
    assert run_on(deployed, host, f"grep -E '^(DBPASS|DBROOT|REDISPASS)=' {INSTALL}/mailcow.conf") == passwords
    assert "myhostname" not in run_on(deployed, host, f"cat {INSTALL}/data/conf/postfix/extra.cf")


def test_a_wrong_pinned_key_is_refused_and_the_others_still_deploy(deployed: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    inv = load_valid_inventory(deployed)
    assert inv.fleet is not None
    real = inv.fleet.hosts["relay2"].host_key
    assert real
    copy = deployed.with_name(f"lab-wrong-key-{os.getpid()}.yaml")  # beside it: same secrets folder
    copy.write_text(deployed.read_text().replace(real, other))
    try:
        code, report, _ = deploy(copy, "--all", "--json")
        code_text, _, text = deploy(copy, "--all")
    finally:
        copy.unlink()
    assert code == 1 and code_text == 1
    refused = report["hosts"]["relay2"]
    assert refused["ok"] is False and refused["steps"] == []
    assert "HOST KEY CHANGED" in refused["error"]
    assert fingerprint(real) in refused["error"] and fingerprint(other) in refused["error"]
    for name in HOSTS - {"relay2"}:
        assert report["hosts"][name]["ok"], (name, report["hosts"][name])
    assert "relay2: FAILED - relay2: HOST KEY CHANGED" in text
    assert "mx1: ok, nothing to change" in text
    assert "6 host(s): 5 ok, 1 failed" in text


def test_inbound_host_gets_relayhosts_and_its_domains_point_at_their_relays(deployed: Path) -> None:
    """Wiring through the API: a domain served by mx1 leaves through its transactional relay."""
    from mailfleet.mailcow import open_api

    domain = f"wired-{os.getpid()}.lab.mailfleet.test"
    text = deployed.read_text()
    entry = f"  {domain}:\n    inbound: {{mx1: 10}}\n    relay: relay1\n    transactional_relay: tx1\n"
    text = text.replace("\ndomains: {}\n", "\ndomains:\n" + entry) if "\ndomains: {}" in text else \
        (text.replace("\ndomains:\n", "\ndomains:\n" + entry, 1) if "\ndomains:\n" in text else text + "\ndomains:\n" + entry)
    copy = deployed.with_name(f"lab-wiring-{os.getpid()}.yaml")
    copy.write_text(text)
    inv = load_valid_inventory(copy)
    assert inv.fleet is not None and inv.fleet.domain(domain) is not None
    nexthop = f"[{inv.fleet.hosts['tx1'].address}]:25"
    with open_api("mx1", inv) as api:
        existing = {r["hostname"]: r["id"] for r in api.get_relayhosts()}
        api.add_domain(domain, key_size=0, restart_sogo=0)
    try:
        code, report, err = deploy(copy, "--host", "mx1", "--json")
        assert code == 0, (report, err)
        changes = changed_steps(report["hosts"]["mx1"]).get("relayhosts", [])
        assert f"{domain}: relayhost -> {nexthop}" in changes
        with open_api("mx1", inv) as api:
            ids = {r["hostname"]: str(r["id"]) for r in api.get_relayhosts()}
            record = api.get_domain(domain)
        assert record is not None and str(record["relayhost"]) == ids[nexthop]
        code, report, _ = deploy(copy, "--host", "mx1", "--json")
        assert code == 0 and report["hosts"]["mx1"]["changes"] == 0, report
    finally:
        with open_api("mx1", inv) as api:
            api.delete_domain(domain)
            created = [int(r["id"]) for r in api.get_relayhosts() if r["hostname"] not in existing]
            if created:
                api.delete_relayhost(*created)
        copy.unlink()


def test_an_unpinned_host_is_refused_with_the_fingerprint_it_presents(deployed: Path) -> None:
    inv = load_valid_inventory(deployed)
    assert inv.fleet is not None
    real = inv.fleet.hosts["tx1"].host_key
    assert real
    copy = deployed.with_name(f"lab-no-key-{os.getpid()}.yaml")
    copy.write_text(re.sub(rf"(?m)^[ \t]*host_key: {re.escape(real)}\n", "", deployed.read_text()))
    try:
        code, report, _ = deploy(copy, "--host", "tx1", "--check", "--json")
    finally:
        copy.unlink()
    assert code == 1
    error = report["hosts"]["tx1"]["error"]
    assert "no host key is pinned" in error and fingerprint(real) in error and "trust-host --host tx1" in error
