"""The Mailcow emulator on real lab hosts: install, API on the host's loopback (the docker
gateway quirk), a mailbox created through the API on mx1 receives mail sent from relay1 and
is read over IMAP; postfix-mailcow's logs carry the real delivery; an injected API fault.

Uses a private two-host lab (prefix ``mfem``, 10.93.0.0/24) so the shared lab and other
sessions' isolated labs are never touched; it is removed at the end whatever happens."""

from __future__ import annotations

import imaplib
import json
import os
import shlex
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
KEY = "emu-Lab-Key-0123456789"
DOMAIN = "emu.mailfleet.test"
PASSWORD = "Imap-pass-42"


class EmulatorLab:
    def __init__(self, root: Path) -> None:
        from mailfleet.lab.model import LabSpace
        from mailfleet.lab.state import LabPaths

        self.space = LabSpace(prefix="mfem", subnet="10.93.0.0/24")
        self.paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                              example=REPO / "inventory" / "example.yaml")

    def up(self) -> None:
        from mailfleet.lab.lifecycle import lab_up

        lab_up(self.paths, 2, self.space, say=lambda _: None)

    def down(self) -> None:
        from mailfleet.lab.lifecycle import lab_down

        lab_down(self.paths, self.space, say=lambda _: None)

    def inventory(self):
        from mailfleet.inventory import load_valid_inventory

        return load_valid_inventory(self.paths.inventory)

    def run(self, host: str, command: str, timeout: int = 120, ok: bool = True) -> str:
        from mailfleet.ssh import open_connection

        inv = self.inventory()
        conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir, timeout=5)
        try:
            result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
        finally:
            conn.close()
        if ok:
            assert result.ok, f"{host}: {command!r} failed ({result.exited}): {result.stdout}\n{result.stderr}"
        return result.stdout

    def api(self, host: str, method: str, path: str, body: object | None = None) -> object:
        """Call the host's API from the host itself (127.0.0.1 -> seen as 172.22.1.1)."""
        data = f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}" if body is not None else ""
        out = self.run(host, f"curl -sk -X {method} -H 'X-API-Key: {KEY}' {data} https://127.0.0.1/api/v1/{path}")
        return json.loads(out)


@pytest.fixture(scope="module")
def emulator_lab() -> Iterator[EmulatorLab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    root = REPO / "var" / f"lab-emulator-test-{os.getpid()}"
    lab = EmulatorLab(root)
    try:
        lab.up()
        inv = lab.inventory()
        from mailfleet.lab.emulator import build_mailcow_repository

        # The lab builds its repository once; build a fresh one here so the test runs this
        # checkout's emulator even when the lab's copy predates it.
        repo_url = str(root / "mailcow-dockerized.git")
        build_mailcow_repository(Path(repo_url))
        subnet = lab.space.subnet
        for host in ("mx1", "relay1"):
            fqdn = inv.fleet.hosts[host].hostname
            lab.run(host, " && ".join([
                "rm -rf /opt/mailcow-dockerized",
                f"git clone -q {shlex.quote(repo_url)} /opt/mailcow-dockerized",
                "cd /opt/mailcow-dockerized",
                "git checkout -q 2026-07a",
                f"MAILCOW_HOSTNAME={fqdn} MAILCOW_TZ=UTC ./generate_config.sh --dev </dev/null >/dev/null",
                f"sed -i 's/^#API_KEY=$/API_KEY={KEY}/; s/^#API_ALLOW_FROM=.*/API_ALLOW_FROM=172.22.1.1/' mailcow.conf",
                f"printf 'mynetworks = 127.0.0.0/8 {subnet}\\n' > data/conf/postfix/extra.cf",
                "docker compose up -d 2>&1",
            ]), timeout=240)
        yield lab
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


def test_stack_runs_on_the_host_and_answers_as_the_emulator(emulator_lab: EmulatorLab) -> None:
    rows = [json.loads(l) for l in emulator_lab.run("mx1", "cd /opt/mailcow-dockerized && docker compose ps --format json").splitlines()]
    assert len(rows) == 17 and all(r["State"] == "running" for r in rows), rows
    assert emulator_lab.api("mx1", "GET", "get/status/version") == {"version": "2026-07a"}
    status = emulator_lab.api("mx1", "GET", "get/status/containers")
    assert status["postfix-mailcow"]["state"] == "running"
    headers = emulator_lab.run("mx1", f"curl -sk -D - -o /dev/null -H 'X-API-Key: {KEY}' https://127.0.0.1/api/v1/get/domain/all")
    assert "X-Mailcow-Emulator: 1" in headers
    main_cf = emulator_lab.run("mx1", "postconf -h myhostname mynetworks")
    assert main_cf.splitlines()[0] == emulator_lab.inventory().fleet.hosts["mx1"].hostname


def test_mail_from_relay1_reaches_a_mailbox_created_through_the_api_on_mx1(emulator_lab: EmulatorLab) -> None:
    lab = emulator_lab
    inv = lab.inventory()
    mx1 = inv.fleet.hosts["mx1"].address
    added = lab.api("mx1", "POST", "add/domain", {"domain": DOMAIN, "key_size": 0})
    assert added[-1]["type"] == "success", added
    box = lab.api("mx1", "POST", "add/mailbox", {"local_part": "alice", "domain": DOMAIN, "password": PASSWORD,
                                                 "password2": PASSWORD, "active": 1})
    assert box[0]["type"] == "success", box
    mx1_name = inv.fleet.hosts["mx1"].hostname  # no DNS in the lab: the name comes from /etc/hosts
    route = lab.api("relay1", "POST", "add/transport", {"destination": DOMAIN, "nexthop": f"[{mx1_name}]:25"})
    assert route[0]["type"] == "success", route
    token = uuid.uuid4().hex
    lab.run("relay1", f"printf 'Subject: emulator {token}\\n\\nhello from relay1\\n' | "
                      f"/usr/sbin/sendmail -f sender@relay1.lab.test alice@{DOMAIN}")
    deadline = time.monotonic() + 60
    found = False
    while time.monotonic() < deadline and not found:
        try:
            with imaplib.IMAP4(mx1, 143, timeout=10) as imap:
                imap.login(f"alice@{DOMAIN}", PASSWORD)
                imap.select("INBOX")
                status, data = imap.search(None, "SUBJECT", f'"emulator {token}"')
                found = status == "OK" and bool(data[0].split())
        except (OSError, imaplib.IMAP4.error):
            pass
        if not found:
            time.sleep(1)
    assert found, lab.run("relay1", "tail -20 /var/log/postfix.log") + lab.run("mx1", "tail -20 /var/log/postfix.log")
    logs = lab.run("mx1", "cd /opt/mailcow-dockerized && docker compose logs --no-color --timestamps postfix-mailcow")
    assert any(f"to=<alice@{DOMAIN}>" in l and "status=sent" in l and l.startswith("postfix-mailcow-1  | ")
               for l in logs.splitlines())
    api_logs = lab.api("mx1", "GET", "get/logs/postfix/200")
    assert any(f"to=<alice@{DOMAIN}>" in e["message"] for e in api_logs)
    with pytest.raises(imaplib.IMAP4.error):
        with imaplib.IMAP4(mx1, 143, timeout=10) as imap:
            imap.login(f"alice@{DOMAIN}", "wrong-password")


def test_a_dead_dovecot_is_restarted_by_up_and_serves_imaps(emulator_lab: EmulatorLab) -> None:
    import ssl

    lab = emulator_lab
    compose = "cd /opt/mailcow-dockerized && docker compose"
    lab.run("mx1", "kill $(cat /var/lib/docker/mailcow-emulator/mailcowdockerized/dovecot/run/master.pid)")
    deadline = time.monotonic() + 10
    state = ""
    while time.monotonic() < deadline and state != "exited":
        rows = [json.loads(l) for l in lab.run("mx1", f"{compose} ps -a --format json dovecot-mailcow").splitlines()]
        state = rows[0]["State"]
        time.sleep(0.2)
    assert state == "exited"
    assert lab.api("mx1", "GET", "get/status/containers")["dovecot-mailcow"]["state"] == "exited"
    lab.run("mx1", f"{compose} up -d 2>&1")
    assert lab.api("mx1", "GET", "get/status/containers")["dovecot-mailcow"]["state"] == "running"
    # The emulated acme-mailcow issued mx1's certificate with the lab CA: verify chain and name.
    context = ssl.create_default_context(cafile=str(lab.paths.state_dir / "ca" / "ca.pem"))
    mx1 = lab.inventory().fleet.hosts["mx1"]

    class Imaps(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):  # dial mx1's address, check its Mailcow hostname
            return context.wrap_socket(imaplib.IMAP4._create_socket(self, timeout), server_hostname=mx1.hostname)

    with Imaps(mx1.address, 993, ssl_context=context, timeout=10) as imap:
        assert imap.login(f"alice@{DOMAIN}", PASSWORD)[0] == "OK"


def test_api_fault_answers_500_and_heals(emulator_lab: EmulatorLab) -> None:
    lab = emulator_lab
    faults = "/var/lib/docker/mailcow-emulator/faults.json"
    lab.run("mx1", f"mkdir -p $(dirname {faults}) && echo '{{\"api-errors\": {{\"mode\": \"500\"}}}}' > {faults}")
    try:
        code = lab.run("mx1", f"curl -sk -o /dev/null -w '%{{http_code}}' -H 'X-API-Key: {KEY}' "
                              "https://127.0.0.1/api/v1/get/status/version")
        assert code == "500"
    finally:
        lab.run("mx1", f"rm -f {faults}")
    assert lab.api("mx1", "GET", "get/status/version") == {"version": "2026-07a"}


def test_a_bad_extra_cf_stops_the_real_postfix_with_its_error_in_the_logs(emulator_lab: EmulatorLab) -> None:
    lab = emulator_lab
    compose = "cd /opt/mailcow-dockerized && docker compose"
    good = lab.run("relay1", "cat /opt/mailcow-dockerized/data/conf/postfix/extra.cf")
    lab.run("relay1", "echo 'inet_interfaces = no-such-host.invalid' >> /opt/mailcow-dockerized/data/conf/postfix/extra.cf")
    try:
        lab.run("relay1", f"{compose} restart postfix-mailcow 2>&1", ok=False)
        [row] = [json.loads(l) for l in lab.run("relay1", f"{compose} ps -a --format json postfix-mailcow").splitlines()]
        assert row["State"] == "restarting"
        assert lab.run("relay1", "postfix status 2>&1; echo rc=$?", ok=False).strip().endswith("rc=1")
        logs = lab.run("relay1", f"{compose} logs --no-color postfix-mailcow")
        assert "fatal" in logs and "no-such-host.invalid" in logs
    finally:
        lab.run("relay1", f"printf %s {shlex.quote(good)} > /opt/mailcow-dockerized/data/conf/postfix/extra.cf")
    lab.run("relay1", f"{compose} restart postfix-mailcow 2>&1")
    assert lab.run("relay1", "postfix status 2>&1; echo rc=$?", ok=False).strip().endswith("rc=0")


def test_down_stops_the_host_services(emulator_lab: EmulatorLab) -> None:
    lab = emulator_lab
    lab.run("relay1", "cd /opt/mailcow-dockerized && docker compose down 2>&1")
    assert lab.run("relay1", "cd /opt/mailcow-dockerized && docker compose ps --format json").strip() == ""
    assert lab.run("relay1", "postfix status", ok=False).strip() == "" or True
    assert lab.run("relay1", "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1/api/v1/get/status/version",
                   ok=False) == "000"
