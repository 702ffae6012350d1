"""The monitoring role on the lab's mon1: deploy installs mailfleet (from local wheels), the jobs
and Grafana's files; running the scheduled jobs exactly as cron would fills the stores on mon1.

The report mailbox is a Dovecot with TLS (a private CA) started by this test on the machine's
lab bridge address, holding real DMARC reports from the fixtures. Lab hosts run no systemd, so
the role picks cron; the job lines are read from /etc/cron.d/mailfleet on mon1 and run there.
Grafana's compose project is recorded as running by the lab's docker emulator (no images here).
"""

from __future__ import annotations

import dataclasses
import email.message
import imaplib
import ipaddress
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_helpers import make_server_certificates, stop_by_pid_file

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dmarc"
PASSWORD = "lab-dmarc-box-password"
REPORTS = ("parsedmarc/nice-input.xml.gz", "cry-inc/google.xml", "cry-inc/yahoo.xml")
CA_ON_MON1 = "/etc/mailfleet/lab-imap-ca.pem"


def _bridge_address(inventory: Path) -> str:
    from mailfleet.inventory import load_valid_inventory

    fleet = load_valid_inventory(inventory).fleet
    network = ipaddress.ip_network(f"{fleet.hosts['mon1'].address}/24", strict=False)
    return str(next(network.hosts()))  # the machine's own address on the lab bridge


@dataclasses.dataclass
class Mailbox:
    address: str
    port: int
    ca: Path


@pytest.fixture
def report_mailbox(lab_fleet: Path) -> Iterator[Mailbox]:
    if not shutil.which("dovecot"):
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    address = _bridge_address(lab_fleet)
    folder = Path(tempfile.mkdtemp(prefix="mailfleet-mon-dovecot-"))
    os.chmod(folder, 0o755)
    mail = folder / "mail"
    mail.mkdir()
    shutil.chown(mail, "nobody", "nogroup")
    ca, cert, key = make_server_certificates(folder, address)
    with socket.socket() as sock:
        sock.bind((address, 0))
        port = sock.getsockname()[1]
    config = folder / "dovecot.conf"
    config.write_text(f"""
protocols = imap
listen = {address}
base_dir = {folder}/run
instance_name = mailfleet-mon-{port}
log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = {address}
    port = {port}
    ssl = yes
  }}
}}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={mail}/%n
}}
mail_location = maildir:{mail}/%n/Maildir
""")
    with open(folder / "start.log", "wb") as log:
        started = subprocess.run(["dovecot", "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, timeout=30)
    pid_file = folder / "run" / "master.pid"
    try:
        assert started.returncode == 0, (folder / "start.log").read_text()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((address, port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        yield Mailbox(address, port, ca)
    finally:
        stop_by_pid_file(pid_file)
        shutil.rmtree(folder, ignore_errors=True)


def _deliver_reports(box: Mailbox, user: str) -> None:
    context = ssl.create_default_context(cafile=str(box.ca))
    imap = imaplib.IMAP4_SSL(box.address, box.port, ssl_context=context, timeout=30)
    imap.login(user, PASSWORD)
    for index, name in enumerate(REPORTS):
        message = email.message.EmailMessage()
        message["From"], message["To"] = "noreply-dmarc@reporter.example", user
        message["Subject"], message["Message-ID"] = f"Report {index}", f"<mon-{index}@reporter.example>"
        message.set_content("DMARC aggregate report attached.")
        data = (FIXTURES / name).read_bytes()
        subtype = "gzip" if name.endswith(".gz") else "xml"
        message.add_attachment(data, maintype="application", subtype=subtype, filename=Path(name).name)
        typ, _ = imap.append("INBOX", None, None, message.as_bytes())
        assert typ == "OK"
    imap.logout()


def _monitoring_books(box: Mailbox, user: str):  # type: ignore[no-untyped-def]
    from mailfleet.deploy.sources import load_playbooks

    books = load_playbooks()
    book = books["monitoring"]
    steps = []
    for step in book.steps:
        if step.kind == "monitoring_jobs":
            params = dict(step.params, imap_host=box.address, imap_port=box.port, imap_user=user,
                          imap_password_ref="env:MF_LAB_MONITORING_IMAP_PASSWORD", imap_cafile=CA_ON_MON1)
            step = dataclasses.replace(step, params=params)
        steps.append(step)
    books["monitoring"] = dataclasses.replace(book, steps=tuple(steps))
    return books


def _on_mon1(inventory: Path, script: str, timeout: int = 300) -> str:
    from mailfleet.deploy.remote import SshRemote
    from mailfleet.inventory import load_valid_inventory
    from mailfleet.ssh import open_connection

    inv = load_valid_inventory(inventory)
    host = inv.fleet.hosts["mon1"]
    conn = open_connection(host, inv.fleet, inv.base_dir)
    try:
        result = SshRemote(conn, host, inv.fleet, "").run(script, timeout=timeout)
    finally:
        conn.close()
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr[-2000:]} {result.stdout[-2000:]}"
    return result.stdout


def test_monitoring_role_schedules_jobs_that_fill_the_stores(lab_fleet: Path, report_mailbox: Mailbox,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mailfleet.deploy.plan_steps import write_file_script
    from mailfleet.deploy.run import deploy_fleet
    from mailfleet.inventory import load_valid_inventory
    from mailfleet.monitoring.render_jobs import mail_hosts, parse_cron_jobs

    inv = load_valid_inventory(lab_fleet)
    user = inv.fleet.settings.dmarc_reports or "dmarc-reports@example.com"
    _deliver_reports(report_mailbox, user)
    monkeypatch.setenv("MF_LAB_MONITORING_IMAP_PASSWORD", PASSWORD)
    books = _monitoring_books(report_mailbox, user)
    mon1 = inv.fleet.hosts["mon1"]

    # The logs-pull job reads mx1's Mailcow: make sure it is installed whatever ran before
    # (a no-op when the deploy tests already converged it).
    mx1 = deploy_fleet(inv, [inv.fleet.hosts["mx1"]], check=False)["mx1"]
    assert mx1.ok, mx1.error
    outcome = deploy_fleet(inv, [mon1], check=False, books=books)["mon1"]
    assert outcome.ok, outcome.error
    _on_mon1(lab_fleet, "\n".join(write_file_script(CA_ON_MON1, report_mailbox.ca.read_text(), 0o644)))

    # The schedule: no systemd in a lab host, so cron, with a fetch and a pull per mail host.
    cron = _on_mon1(lab_fleet, "[ ! -d /run/systemd/system ] && cat /etc/cron.d/mailfleet")
    jobs = parse_cron_jobs(cron)
    assert jobs["dmarc-fetch"] == "*/15 * * * *"
    assert {f"logs-pull-{h}" for h in mail_hosts(inv.fleet)} <= set(jobs) and "logs-pull-mon1" not in jobs
    assert all(jobs[f"logs-pull-{h}"] == "*/5 * * * *" for h in mail_hosts(inv.fleet))
    modes = _on_mon1(lab_fleet, "stat -c '%a %U %n' /etc/mailfleet/secrets /etc/mailfleet/secrets/dmarc-imap.password "
                                "/opt/mailfleet/grafana/secrets/grafana_admin_password /var/lib/mailfleet")
    assert "700 root /etc/mailfleet/secrets\n" in modes and "600 root /etc/mailfleet/secrets/dmarc-imap.password" in modes
    assert "400 " in modes.splitlines()[2] and modes.splitlines()[3].startswith("2775 ")

    # Run the jobs as cron runs them: the runner, from the cron line, with cron's bare environment.
    for name in ("dmarc-fetch", "logs-pull-mx1"):
        _on_mon1(lab_fleet, f"env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root sh -c "
                            f"{shlex.quote('/opt/mailfleet/bin/mailfleet-job ' + name)}", timeout=600)
    counts = _on_mon1(lab_fleet, "sqlite3 /var/lib/mailfleet/dmarc.sqlite 'SELECT COUNT(*), SUM(message_count) FROM report'; "
                                 "sqlite3 /var/lib/mailfleet/logs.sqlite \"SELECT COUNT(*) FROM sources WHERE key = 'pull:mx1'\"; "
                                 "sqlite3 /var/lib/mailfleet/logs.sqlite 'SELECT SUM(lines) FROM ingests'; "
                                 "tail -n 3 /var/log/mailfleet/dmarc-fetch.log")
    lines = counts.splitlines()
    reports, messages = (int(x) for x in lines[0].split("|"))
    assert reports == len(REPORTS) and messages > 0, counts
    assert lines[1] == "1" and int(lines[2]) > 0, counts
    assert "exit 0" in lines[-1], counts

    # Grafana's project is up (recorded by the lab's docker emulator), its files in place.
    ps = _on_mon1(lab_fleet, "cd /opt/mailfleet/grafana && docker compose ps --format json && "
                             "test -s provisioning/datasources/mailfleet.yaml && test -s dashboards/dmarc.json")
    assert json.loads(ps.splitlines()[0])["State"] == "running"

    # A second deploy changes nothing in the jobs and Grafana (the wheel may differ if the tree did).
    again = deploy_fleet(inv, [mon1], check=False, books=books)["mon1"]
    assert again.ok, again.error
    by_name = {step.name: step for step in again.steps}
    assert by_name["jobs"].status == "ok" and by_name["grafana"].status == "ok", (by_name["jobs"], by_name["grafana"])
