"""Priority on the lab: the queue controls against a lab host's real Postfix, and deploy's
bulk transport (present, checked by Postfix, unchanged by a second deploy).

The lab inventory has no domains, so the queue test classifies with a bulk sender added in
memory (the queue code takes the fleet as data). Test messages go to an address literal on an
unused lab address, so they stay queued (connection timeout, then deferred) and never leave
the lab; the test deletes them at the end.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
BULK_SENDER = "newsletter@prio.lab.mailfleet.test"
RESET_SENDER = "reset@prio.lab.mailfleet.test"


def _lab(lab_fleet: Path):
    from mailfleet.inventory import load_valid_inventory

    inv = load_valid_inventory(lab_fleet)
    assert inv.fleet is not None
    return inv


def _with_bulk_sender(fleet):
    from mailfleet.inventory.model import BulkRules, Domain

    inbound = next(h for h in fleet.hosts.values() if h.has_role("inbound"))
    domain = Domain(name="prio.lab.mailfleet.test", ascii="prio.lab.mailfleet.test", inbound=((inbound.name, 10),),
                    bulk=BulkRules(senders=(BULK_SENDER,)))
    return dataclasses.replace(fleet, domains={**fleet.domains, domain.name: domain}), inbound


def _submit(conn, fleet, sender: str, rcpt: str, tag: str) -> None:
    from mailfleet.priority.queue import postfix_command

    body = f"From: <{sender}>\nTo: <{rcpt}>\nSubject: {tag}\nX-Test-Tag: {tag}\n\nlab priority test\n"
    result = conn.run(postfix_command(fleet, ["sendmail", "-f", sender, rcpt]), in_stream=io.StringIO(body),
                      hide=True, warn=True)
    assert result.exited == 0, result.stderr


def _deploy(lab_fleet: Path, host: str) -> dict:
    result = subprocess.run([str(Path(sys.executable).parent / "mailfleet"), "deploy", "--host", host, "--json",
                             "--inventory", str(lab_fleet)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def deployed(lab_fleet):
    """The first inbound lab host, deployed twice (Mailcow installed, bulk transport in place)."""
    from mailfleet.cli import build_namespace

    if "deploy" not in build_namespace().task_names:
        pytest.skip("the deploy task is not available yet")
    inv = _lab(lab_fleet)
    host = next(h for h in inv.fleet.hosts.values() if h.has_role("inbound"))
    first = _deploy(lab_fleet, host.name)
    second = _deploy(lab_fleet, host.name)
    return {"host": host.name, "first": first, "second": second}


def test_deploy_places_the_bulk_transport_and_a_second_deploy_changes_nothing(lab_fleet, deployed):
    from mailfleet.priority.queue import postfix_command
    from mailfleet.ssh import open_connection

    inv = _lab(lab_fleet)
    name = deployed["host"]
    host = inv.fleet.hosts[name]
    second = deployed["second"]["hosts"][name]
    assert second["ok"] is True
    assert second["changes"] == 0, second["steps"]

    conn = open_connection(host, inv.fleet, inv.base_dir)
    try:
        def postfix(*argv: str) -> tuple[str, list[str]]:
            """stdout, and stderr warnings other than the re-stated parameters extra.cf is made of
            (Mailcow appends extra.cf to main.cf; its syslog-ng drops those warnings too)."""
            result = conn.run(postfix_command(inv.fleet, list(argv)), hide=True, warn=True, in_stream=False)
            assert result.exited == 0, f"{shlex.join(argv)}: {result.stderr}"
            warnings = [line for line in result.stderr.splitlines()
                        if "warning" in line and "overriding earlier entry" not in line]
            return result.stdout, warnings

        service, _ = postfix("postconf", "-M", "bulk/unix")
        assert service.split()[:2] == ["bulk", "unix"]
        limit, _ = postfix("postconf", "-h", "bulk_destination_concurrency_limit")
        assert limit.strip() == str(inv.fleet.settings.bulk_transport.destination_concurrency_limit)
        sender_maps, _ = postfix("postconf", "-h", "sender_dependent_default_transport_maps")
        assert "mailfleet_bulk_senders.regexp" in sender_maps.split(",")[0]
        _, warnings = postfix("postfix", "check")
        assert warnings == [], warnings
    finally:
        conn.close()


def test_queue_shape_pause_resume_push_on_real_postfix(lab_fleet):
    from mailfleet.priority.queue import gather_queue, postfix_command, run_queue_command
    from mailfleet.ssh import open_connection

    inv = _lab(lab_fleet)
    fleet, host = _with_bulk_sender(inv.fleet)
    conn = open_connection(host, fleet, inv.base_dir)
    install_dir = fleet.settings.mailcow.install_dir
    if conn.run(f"test -f {shlex.quote(install_dir)}/mailcow.conf", hide=True, warn=True, in_stream=False).exited != 0:
        conn.close()
        pytest.skip(f"Mailcow is not installed on {host.name} yet (run `mailfleet deploy --host {host.name}`, "
                    "or the deploy test above)")
    tag = uuid.uuid4().hex[:10]
    # an unused address in the lab's own subnet: delivery attempts time out, mail stays queued
    subnet_base = host.address.rsplit(".", 1)[0]
    rcpt = f"sink-{tag}@[{subnet_base}.250]"
    mine: list[str] = []
    try:
        for _ in range(3):
            _submit(conn, fleet, BULK_SENDER, rcpt, tag)
        _submit(conn, fleet, RESET_SENDER, rcpt, tag)
        listing, _ = gather_queue(conn, fleet, host)
        mine = [m.queue_id for m in listing.messages if any(r[0] == rcpt for r in m.recipients)]
        assert len(mine) == 4, f"expected our 4 messages queued on {host.name}, found {len(mine)}"
        reset_id = next(m.queue_id for m in listing.messages if m.queue_id in mine and m.sender == RESET_SENDER)

        report = run_queue_command(conn, fleet, host.name)
        assert report["classes"]["bulk"]["messages"] >= 3
        assert report["transports"].get("bulk", 0) >= 3

        paused = run_queue_command(conn, fleet, host.name, pause_bulk=True)
        assert paused["action"]["done"] >= 3
        listing, _ = gather_queue(conn, fleet, host)
        states = {m.queue_id: (m.queue_name, m.sender) for m in listing.messages if m.queue_id in mine}
        assert all(q == "hold" for q, s in states.values() if s == BULK_SENDER), states
        assert states[reset_id][0] != "hold", "a transactional message was held"

        resumed = run_queue_command(conn, fleet, host.name, resume_bulk=True)
        assert resumed["action"]["done"] >= 3
        listing, _ = gather_queue(conn, fleet, host)
        assert not [m for m in listing.messages if m.queue_id in mine and m.queue_name == "hold"]

        pushed = run_queue_command(conn, fleet, host.name, push=reset_id)
        assert pushed["action"]["kind"] == "push" and pushed["action"]["done"] == 1
    finally:
        if mine:
            conn.run(postfix_command(fleet, ["postsuper", "-d", "-"]), in_stream=io.StringIO(
                "\n".join(mine) + "\n"), hide=True, warn=True)
        conn.close()




def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_priority", REPO / "bench" / "priority.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_rendered_config_routes_bulk_and_resets_apart_through_real_postfix(lab_fleet):
    """The benchmark's machinery at small scale, asserting routing, not timing: with mailfleet's
    rendered configuration every bulk message leaves through the bulk transport and every
    reset through smtp; the slow receiver never sees more sessions than the two windows."""
    import os
    import re
    import shutil as _shutil

    bench = _bench_module()
    work = REPO / "var" / "test-priority" / uuid.uuid4().hex[:8]
    bench.VAR = work
    place = bench.find_place("mflab", "relay1", force_local=False)
    try:
        outcome = bench.run_scenario("mailfleet", place, bulk=200, resets=3, limit=10, active_limit=None)
        log = (work / "mailfleet" / "postfix.log").read_text()
        sent = re.findall(r"postfix/(bulk/smtp|smtp)\[\d+\]: \w+: to=<(user|reset)\d+@gmail\.test>.*status=sent", log)
        assert sorted(set(sent)) == [("bulk/smtp", "user"), ("smtp", "reset")], set(sent)
        assert sum(1 for s in sent if s[1] == "user") == 200
        assert sum(1 for s in sent if s[1] == "reset") == 3
        assert outcome.lost == 0
        assert outcome.refused == 0, "the receiver answered 421: bulk took the connections resets needed"
        assert 0 < outcome.peak_sessions <= 10 + 3 + 1
    finally:
        _shutil.rmtree(work, ignore_errors=True)
        if work.parent.exists() and not os.listdir(work.parent):
            work.parent.rmdir()


HEADER_INVENTORY = """\
fleet:
  name: header-test
hosts:
  inb:
    address: 127.0.0.2
    hostname: inb.priority.test
    roles: [inbound]
    api_key: file:secrets/inb.api-key
  rly:
    address: 127.0.0.1
    hostname: rly.priority.test
    roles: [outbound-relay]
    api_key: file:secrets/rly.api-key
domains:
  shop.test:
    inbound: {inb: 10}
    relay: rly
    bulk:
      senders: [newsletter@shop.test]
      headers: ["Precedence: bulk"]
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a Postfix instance (needs root)")
def test_header_rule_and_sender_rule_choose_the_bulk_transport_in_real_cleanup():
    """A relay-only host's rendered configuration on a real Postfix instance (loopback, no
    delivery): bulk is parked with ``defer_transports = bulk``, so the queue shows which message
    the configuration sent to the bulk transport: by sender, by ``Precedence: bulk`` through the
    cleanup FILTER, and not the plain reset."""
    import smtplib

    bench = _bench_module()
    work = REPO / "var" / "test-priority" / uuid.uuid4().hex[:8]
    place = bench.Place(None, "127.0.0.1", "127.0.0.1", "loopback")
    instance = bench.Instance(place, work / "headers", bench.free_port(place, "127.0.0.1", False),
                              bench.free_port(place, "127.0.0.1", False))  # nothing listens on the sink port
    try:
        instance.create(["defer_transports = bulk"])
        instance.apply_mailfleet(10, inventory_text=HEADER_INVENTORY, host="rly")
        instance.start()
        sent = {
            "by-header": ("reset@shop.test", "Precedence: bulk\r\n"),
            "by-sender": ("newsletter+c9@shop.test", ""),
            "plain": ("reset@shop.test", ""),
        }
        with smtplib.SMTP("127.0.0.1", instance.smtpd_port, timeout=60) as smtp:
            for tag, (sender, header) in sent.items():
                smtp.sendmail(sender, [f"{tag}@gmail.test"],
                              f"From: <{sender}>\r\nTo: <{tag}@gmail.test>\r\nSubject: {tag}\r\n{header}\r\nbody\r\n")
        from mailfleet.priority.parse_queue import parse_postqueue_json

        reasons: dict[str, str] = {}
        for _ in range(60):  # bounded: up to 30 s for both deliveries to be tried
            listing = parse_postqueue_json(instance.run(["postqueue", "-c", str(instance.etc), "-j"]))
            reasons = {r[0].split("@")[0]: r[1] for m in listing.messages for r in m.recipients if r[1]}
            if len(reasons) == 3:
                break
            time.sleep(0.5)
        assert set(reasons) == set(sent), reasons
        assert "deferred transport" in reasons["by-header"], reasons
        assert "deferred transport" in reasons["by-sender"], reasons
        assert "deferred transport" not in reasons["plain"], reasons
    finally:
        instance.stop()
        shutil.rmtree(work, ignore_errors=True)
        if work.parent.exists() and not os.listdir(work.parent):
            work.parent.rmdir()
