"""End to end on a lab fleet of its own: mail really flows through the deployed fleet.

The module builds a five-host lab (mx1, mx2, relay1, tx1, mon1; names ``mfe2e-*``, a free
``10.6x.0.0/24``), writes two of the example inventory's domains into its inventory exactly as
the example has them (inbound mx1/mx2, bulk relay relay1, transactional relay tx1, bulk rules),
runs ``mailfleet deploy --all`` and ``mailfleet add-domain`` for both, and then:

* (a) a message sent by SMTP to a mailbox on its inbound host is read back over IMAPS with the
  mailbox password add-domain generated into the secrets folder;
* (b) a domain user's message (submitted with sendmail inside postfix-mailcow: the emulator has
  no SASL submission) to a recipient outside the fleet leaves mx1 through the domain's
  relayhost (tx1, wired by deploy/add-domain) and reaches a "remote MX": an SMTP sink this test
  runs on the lab bridge (the machine's side). The lab has no DNS, so the relays reach the sink
  through a Mailcow transport (``add/transport`` over the API), as an operator routes a partner
  domain. ``logs.pull --all`` + ``trace --message-id`` then show the message on both hosts,
  linked by ``queued as``, and its final delivery to the sink;
* (c) a bulk sender's message (the example's ``bulk.senders``) leaves mx1 through the bulk
  transport (``postfix/bulk/smtp``) to the bulk relay relay1; the transactional one does not;
* (d) a DMARC aggregate report mailed to the report mailbox is fetched over IMAPS by the
  monitoring host's ``dmarc-fetch`` job, as deploy scheduled it, and shows in its store.
"""

from __future__ import annotations

import email.message
import email.utils
import imaplib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(Path(sys.executable).parent / "mailfleet")
DOMAINS = ("example.com", "shop.example")
REMOTE_DOMAIN = "remote-mx.test"  # outside the fleet: the relays route it to the sink by a transport
WAIT_S = 90  # upper bound for any one message to arrive (a loaded machine; Postfix queues retry)


def mailfleet(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILFLEET, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for third in range(60, 70):
        if f" 10.{third}.0." not in used:
            return f"10.{third}.0.0/24"
    pytest.skip("no free 10.6x.0.0/24 subnet for a private lab")


@dataclass
class Received:
    peer: str
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class SinkHandler:
    """aiosmtpd handler: keeps every envelope, answers 250 like a remote MX that accepts."""

    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        with self.lock:
            self.messages.append(Received(session.peer[0], envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content))
        return "250 2.0.0 Ok: queued by the e2e sink"

    def find(self, marker: str) -> Received | None:
        with self.lock:
            return next((m for m in self.messages if marker.encode() in m.content), None)


@dataclass
class E2ELab:
    inventory: Path
    paths: Any
    space: Any
    sink: SinkHandler
    sink_address: str
    db: Path


def _example_entries() -> dict[str, Any]:
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load((REPO / "inventory" / "example.yaml").read_text(encoding="utf-8"))
    return {name: doc["domains"][name] for name in DOMAINS}


def _write_domains(inventory: Path) -> None:
    """The example's entries for DOMAINS, verbatim (bulk rules included), into the lab inventory."""
    from mailfleet.inventory import load_valid_inventory
    from mailfleet.inventory.load import save_inventory
    from mailfleet.inventory.merge import merge_domain

    inv = load_valid_inventory(inventory)
    for name, entry in _example_entries().items():
        merge_domain(inv.doc, name, entry)
    save_inventory(inv)


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _route_remote_domain_to_sink(inventory: Path, nexthop: str) -> None:
    """On every outbound relay, a Mailcow transport REMOTE_DOMAIN -> the sink (read back)."""
    from mailfleet.inventory import load_valid_inventory
    from mailfleet.mailcow import open_api

    inv = load_valid_inventory(inventory)
    for host in inv.fleet.hosts.values():
        if not host.has_role("outbound-relay"):
            continue
        with open_api(host, inv) as api:
            if not any(t.get("destination") == REMOTE_DOMAIN for t in api.get_transports()):
                api.add_transport(REMOTE_DOMAIN, nexthop)
            assert any(t.get("destination") == REMOTE_DOMAIN and t.get("nexthop") == nexthop
                       for t in api.get_transports()), f"{host.name}: transport to the sink not read back"


@pytest.fixture(scope="module")
def e2e_lab() -> Iterator[E2ELab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    Controller = pytest.importorskip("aiosmtpd.controller", reason="the remote-MX sink needs aiosmtpd "
                                     "(pip install -e '.[test]')").Controller

    from mailfleet.lab.lifecycle import lab_down, lab_up
    from mailfleet.lab.model import LabSpace
    from mailfleet.lab.state import LabPaths

    root = REPO / "var" / f"lab-e2e-test-{os.getpid()}"
    paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                     example=REPO / "inventory" / "example.yaml")
    space = LabSpace(prefix="mfe2e", subnet=free_subnet())
    controller = None
    try:
        lab_up(paths, 5, space, say=lambda _: None)
        _write_domains(paths.inventory)
        deployed = mailfleet("deploy", "--all", "--inventory", str(paths.inventory), timeout=1500)
        assert deployed.returncode == 0, f"deploy --all failed:\n{deployed.stdout[-3000:]}\n{deployed.stderr[-3000:]}"
        for name in DOMAINS:
            added = mailfleet("add-domain", "--domain", name, "--json", "--inventory", str(paths.inventory))
            if added.returncode != 0:  # a slow, shared machine: completing a half-done run is what a rerun is for
                added = mailfleet("add-domain", "--domain", name, "--json", "--inventory", str(paths.inventory))
            assert added.returncode == 0, f"add-domain {name}:\n{added.stdout[-3000:]}\n{added.stderr[-3000:]}"
        handler = SinkHandler()
        port = _free_port(space.gateway)
        controller = Controller(handler, hostname=space.gateway, port=port, ready_timeout=10)
        controller.start()
        _route_remote_domain_to_sink(paths.inventory, f"[{space.gateway}]:{port}")
        yield E2ELab(paths.inventory, paths, space, handler, f"{space.gateway}:{port}", root / "logs.sqlite")
    finally:
        if controller is not None:
            controller.stop()
        lab_down(paths, space, say=lambda _: None)
        shutil.rmtree(root, ignore_errors=True)


def _host(lab: E2ELab, name: str):
    from mailfleet.inventory import load_valid_inventory

    return load_valid_inventory(lab.inventory).fleet.hosts[name]


def _message(sender: str, rcpt: str, subject: str) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = rcpt
    message["Subject"] = subject
    message["Message-ID"] = email.utils.make_msgid(idstring=uuid.uuid4().hex[:12], domain="e2e.lab.mailfleet.test")
    message.set_content(f"mailfleet end-to-end test\nmarker: {subject}\n")
    return message


def _send_inbound(lab: E2ELab, host: str, sender: str, rcpt: str, subject: str) -> str:
    """Mail from outside the fleet: SMTP to ``host``:25, as a remote MTA delivers it."""
    import smtplib

    message = _message(sender, rcpt, subject)
    with smtplib.SMTP(_host(lab, host).address, 25, timeout=30) as smtp:
        smtp.send_message(message, from_addr=sender, to_addrs=[rcpt])
    return message["Message-ID"]


def _submit(lab: E2ELab, host: str, sender: str, rcpt: str, subject: str) -> str:
    """A domain user's outgoing mail, submitted inside postfix-mailcow with its sendmail (the
    emulator has no SASL submission; an inbound host relays only for its own loopback)."""
    import io
    import shlex

    from mailfleet.inventory import load_valid_inventory
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(lab.inventory)
    message = _message(sender, rcpt, subject)
    command = (f"cd {shlex.quote(inv.fleet.settings.mailcow.install_dir)} && "
               f"docker compose exec -T postfix-mailcow sendmail -f {shlex.quote(sender)} -- {shlex.quote(rcpt)}")
    conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir, timeout=10)
    try:
        done = conn.run(command, in_stream=io.StringIO(message.as_string()), hide=True, warn=True, timeout=60)
    finally:
        conn.close()
    assert done.exited == 0, f"{host}: {command}: {done.stdout}{done.stderr}"
    return message["Message-ID"]


def _wait_at_sink(lab: E2ELab, marker: str) -> Received:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = lab.sink.find(marker)
        if found is not None:
            return found
        time.sleep(0.5)
    pytest.fail(f"{marker!r} did not reach the sink {lab.sink_address} within {WAIT_S} s; "
                f"see {lab.paths.state_dir}/hosts/*/log/postfix.log")


def _imap_fetch_subjects(lab: E2ELab, host: str, address: str) -> list[str]:
    from mailfleet.inventory import load_valid_inventory

    inv = load_valid_inventory(lab.inventory)
    password = (inv.secrets_dir / "mailboxes" / f"{address}.password").read_text().strip()
    # The emulated Mailcow serves its snake-oil certificate, like a fresh Mailcow: no CA to check it against.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4_SSL(_host(lab, host).address, 993, ssl_context=context, timeout=30) as imap:
        imap.login(address, password)
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        subjects = []
        for number in data[0].split():
            _, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(parts[0][1].decode(errors="replace").strip())
        return subjects


@dataclass(frozen=True)
class Flow:
    tag: str
    local_subject: str
    transactional: tuple[str, Received]  # (Message-ID, what the sink got)
    bulk: tuple[str, Received]


@pytest.fixture(scope="module")
def flow(e2e_lab: E2ELab) -> Flow:
    """One message of each kind through the fleet; the logs of every Mailcow host pulled after."""
    tag = uuid.uuid4().hex[:8]
    local_subject = f"e2e local {tag}"
    _send_inbound(e2e_lab, "mx1", f"alice@{REMOTE_DOMAIN}", "postmaster@example.com", local_subject)
    tx_id = _submit(e2e_lab, "mx1", "orders@shop.example", f"customer@{REMOTE_DOMAIN}", f"e2e transactional {tag}")
    bulk_id = _submit(e2e_lab, "mx1", "newsletter@example.com", f"reader@{REMOTE_DOMAIN}", f"e2e bulk {tag}")
    tx = _wait_at_sink(e2e_lab, f"e2e transactional {tag}")
    bulk = _wait_at_sink(e2e_lab, f"e2e bulk {tag}")
    return Flow(tag, local_subject, (tx_id, tx), (bulk_id, bulk))


def _pull_and_trace(lab: E2ELab, message_id: str, until_hosts: set[str]) -> dict[str, Any]:
    """logs.pull --all, then trace; pulled again (bounded) while the relay's delivery line has
    not reached its log yet (Postfix logs right after the remote's 250)."""
    deadline = time.monotonic() + 30
    while True:
        pulled = mailfleet("logs.pull", "--all", "--db", str(lab.db), "--inventory", str(lab.inventory), timeout=300)
        assert pulled.returncode == 0, f"logs.pull --all:\n{pulled.stdout[-2000:]}\n{pulled.stderr[-2000:]}"
        traced = mailfleet("trace", "--db", str(lab.db), "--message-id", message_id, "--json")
        assert traced.returncode == 0, traced.stdout + traced.stderr
        report = json.loads(traced.stdout)
        traces = report["traces"]
        sent = [e for t in traces for e in t["timeline"]
                if e["event"] == "delivery" and e.get("status") == "sent" and not e.get("next")]
        if traces and until_hosts <= set(traces[0]["hosts"]) and sent:
            return report
        if time.monotonic() > deadline:
            return report
        time.sleep(2)


def test_a_message_to_a_mailbox_is_read_over_imaps_with_the_generated_password(e2e_lab: E2ELab, flow: Flow) -> None:
    deadline = time.monotonic() + WAIT_S
    subjects: list[str] = []
    while time.monotonic() < deadline:
        subjects = _imap_fetch_subjects(e2e_lab, "mx1", "postmaster@example.com")
        if any(flow.local_subject in s for s in subjects):
            break
        time.sleep(1)
    assert any(flow.local_subject in s for s in subjects), subjects


def test_transactional_mail_leaves_through_the_relayhost_and_is_traced_across_hosts(
        e2e_lab: E2ELab, flow: Flow) -> None:
    message_id, received = flow.transactional
    tx1, mx1 = _host(e2e_lab, "tx1"), _host(e2e_lab, "mx1")
    assert received.peer == tx1.address, f"the sink got it from {received.peer}, not the transactional relay tx1"
    assert received.rcpt_tos == [f"customer@{REMOTE_DOMAIN}"] and received.mail_from == "orders@shop.example"

    report = _pull_and_trace(e2e_lab, message_id, {"mx1", "tx1"})
    assert len(report["traces"]) == 1, report
    trace = report["traces"][0]
    assert trace["message_id"].strip("<>") == message_id.strip("<>")
    assert {"mx1", "tx1"} <= set(trace["hosts"]), trace["hosts"]
    first = next(m for m in trace["messages"] if m["host"] == "mx1")
    second = next(m for m in trace["messages"] if m["host"] == "tx1")
    assert second["parent"] == f"mx1/{first['qid']}", trace["messages"]
    handoff = [e for e in trace["timeline"] if e["host"] == "mx1" and e["event"] == "delivery"]
    assert handoff and handoff[-1]["status"] == "sent" and handoff[-1]["next"] == f"tx1/{second['qid']}", handoff
    assert tx1.address in handoff[-1]["relay"], handoff[-1]
    assert handoff[-1]["transport"] != "bulk", handoff[-1]
    final = [e for e in trace["timeline"] if e["host"] == "tx1" and e["event"] == "delivery"]
    assert final and final[-1]["status"] == "sent" and not final[-1].get("next"), final
    assert e2e_lab.sink_address.replace(":", "]:") in final[-1]["relay"], final[-1]
    assert mx1.address != received.peer


def test_bulk_mail_takes_the_bulk_transport_to_the_bulk_relay(e2e_lab: E2ELab, flow: Flow) -> None:
    message_id, received = flow.bulk
    relay1 = _host(e2e_lab, "relay1")
    assert received.peer == relay1.address, f"the sink got the bulk message from {received.peer}, not relay1"

    report = _pull_and_trace(e2e_lab, message_id, {"mx1", "relay1"})
    trace = report["traces"][0]
    assert {"mx1", "relay1"} <= set(trace["hosts"]), trace["hosts"]
    handoff = [e for e in trace["timeline"] if e["host"] == "mx1" and e["event"] == "delivery"]
    assert handoff and handoff[-1]["transport"] == "bulk" and handoff[-1]["status"] == "sent", handoff
    assert relay1.address in handoff[-1]["relay"], handoff[-1]

    # In the raw log too: the bulk message's queue id on mx1 appears under postfix/bulk/smtp,
    # the transactional one's under the default smtp client.
    log = (e2e_lab.paths.host_dir("mx1") / "log" / "postfix.log").read_text(errors="replace")
    bulk_qid = next(m["qid"] for m in trace["messages"] if m["host"] == "mx1")
    tx_trace = _pull_and_trace(e2e_lab, flow.transactional[0], {"mx1", "tx1"})["traces"][0]
    tx_qid = next(m["qid"] for m in tx_trace["messages"] if m["host"] == "mx1")
    bulk_lines = [line for line in log.splitlines() if f": {bulk_qid}: to=" in line]
    tx_lines = [line for line in log.splitlines() if f": {tx_qid}: to=" in line]
    assert bulk_lines and all("postfix/bulk/smtp[" in line for line in bulk_lines), bulk_lines
    assert tx_lines and not any("/bulk/" in line for line in tx_lines), tx_lines


def test_a_dmarc_report_mailed_to_the_report_mailbox_is_fetched_by_the_monitoring_job(e2e_lab: E2ELab) -> None:
    """A reporter mails an aggregate report to fleet.dmarc_reports' MX; the monitoring host's
    dmarc-fetch job (as deploy scheduled it) reads it over IMAPS and stores it."""
    import shlex
    import smtplib

    from mailfleet.inventory import load_valid_inventory
    from mailfleet.ssh import open_connection

    # add-domain made the report mailbox (and its password) after the first deploy: the
    # monitoring host schedules dmarc.fetch on the next deploy.
    deployed = mailfleet("deploy", "--role", "monitoring", "--inventory", str(e2e_lab.inventory), timeout=900)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    report = REPO / "tests" / "fixtures" / "dmarc" / "parsedmarc" / "nice-input.xml.gz"
    message = _message("noreply-dmarc-support@google.com", "dmarc-reports@example.com",
                       "Report domain: example.com Submitter: google.com")
    message.add_attachment(report.read_bytes(), maintype="application", subtype="gzip", filename=report.name)
    with smtplib.SMTP(_host(e2e_lab, "mx1").address, 25, timeout=30) as smtp:
        smtp.send_message(message)

    inv = load_valid_inventory(e2e_lab.inventory)
    fleet = inv.fleet
    cert = f"{fleet.settings.mailcow.install_dir}/data/assets/ssl/cert.pem"
    with open_connection(fleet.hosts["mx1"], fleet, inv.base_dir) as conn:
        issuer = conn.run(f"openssl x509 -noout -issuer -in {shlex.quote(cert)}", hide=True, in_stream=False).stdout
    # No trust is added here: mx1's certificate comes from the emulated acme-mailcow, signed by
    # the lab CA that lab.up put into every host's own trust store.
    assert "mailfleet lab CA" in issuer, f"mx1's Mailcow certificate is not from the lab CA: {issuer}"
    with open_connection(fleet.hosts["mon1"], fleet, inv.base_dir) as conn:
        deadline = time.monotonic() + WAIT_S
        while True:  # the report may still be on its way into the mailbox: run the job again (bounded)
            job = conn.run("/opt/mailfleet/bin/mailfleet-job dmarc-fetch", hide=True, warn=True, in_stream=False,
                           timeout=120)
            log = conn.run("cat /var/log/mailfleet/dmarc-fetch.log", hide=True, warn=True, in_stream=False).stdout
            assert job.exited == 0, f"dmarc-fetch job failed: {job.stdout}{job.stderr}\n{log[-2000:]}"
            summary = conn.run("/opt/mailfleet/venv/bin/mailfleet dmarc.summary --db /var/lib/mailfleet/dmarc.sqlite "
                               "--days 0 --json", hide=True, warn=True, in_stream=False)
            rows = json.loads(summary.stdout) if summary.exited == 0 and summary.stdout.strip() else []
            if rows or time.monotonic() > deadline:
                break
            time.sleep(2)
    ips = {row["source_ip"] for row in rows if row["domain"] == "example.com"}
    assert {"209.85.220.69", "209.85.220.41"} <= ips, (rows, log[-2000:])
