"""``dmarc.fetch`` against a real Dovecot (IMAPS with a private CA) started for the test.

Reports are delivered into the report mailbox (IMAP APPEND), fetched, ingested once and moved;
a second fetch ingests nothing; a crash between storing and moving neither loses nor
double-counts a report. Needs root (Dovecot drops privileges to its own users)."""

from __future__ import annotations

import gzip
import imaplib
import io
import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from lab_helpers import make_server_certificates, stop_by_pid_file

from mailfleet.dmarc import fetch as fetch_module
from mailfleet.dmarc.fetch import ImapSettings, fetch_reports
from mailfleet.dmarc.store import load_store

pytestmark = pytest.mark.lab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dmarc"
MAILFLEET = Path(sys.executable).parent / "mailfleet"
PASSWORD = "s3cret-report-box"


@dataclass
class Dovecot:
    port: int  # implicit TLS (IMAPS)
    cafile: Path
    folder: Path
    starttls_port: int = 0  # plain IMAP that requires STARTTLS before login


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if os.geteuid() != 0:
        pytest.skip("Dovecot needs root to start and drop privileges; run as root, as CI does")
    if not shutil.which("dovecot"):
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    # Dovecot's unprivileged processes must reach the folder, so it is not under pytest's 0700 tmp.
    folder = Path(tempfile.mkdtemp(prefix="mailfleet-dovecot-"))
    os.chmod(folder, 0o755)
    mail = folder / "mail"
    mail.mkdir()
    shutil.chown(mail, "nobody", "nogroup")
    ca, cert, key = make_server_certificates(folder, "127.0.0.1")
    port = _free_port()
    starttls_port = _free_port()
    config = folder / "dovecot.conf"
    config.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
instance_name = mailfleet-dmarc-{port}
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
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
    pid_file = folder / "run" / "master.pid"
    # dovecot daemonizes; its output goes to files so no pipe keeps this test waiting
    with open(folder / "start.log", "wb") as log:
        started = subprocess.run(["dovecot", "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, timeout=30)
    if started.returncode != 0:
        message = (folder / "start.log").read_text()
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"dovecot did not start: {message}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield Dovecot(port, ca, folder, starttls_port)
    finally:
        stop_by_pid_file(pid_file)
        shutil.rmtree(folder, ignore_errors=True)


def _imap(server: Dovecot) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.port,
                             ssl_context=ssl.create_default_context(cafile=str(server.cafile)), timeout=10)
    imap.login("dmarc", PASSWORD)
    return imap


def _deliver(server: Dovecot, *messages: bytes) -> None:
    imap = _imap(server)
    for message in messages:
        typ, data = imap.append("INBOX", None, None, message)
        assert typ == "OK", data
    imap.logout()


def _count(server: Dovecot, folder: str) -> int:
    imap = _imap(server)
    typ, data = imap.select(f'"{folder}"', readonly=True)
    count = int(data[0]) if typ == "OK" else -1
    imap.logout()
    return count


def _email(subject: str, *attachments: tuple[bytes, str, str, str]) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = "dmarc@example.com"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@test>"
    message.set_content("Aggregate report attached.")
    for data, maintype, subtype, filename in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(message)


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def _fetch_cli(server: Dovecot, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DMARC_BOX_PASSWORD": PASSWORD}
    return subprocess.run([str(MAILFLEET), "dmarc.fetch", "--db", str(db), "--imap-host", "127.0.0.1",
                           "--imap-port", str(server.port), "--user", "dmarc", "--password-ref",
                           "env:DMARC_BOX_PASSWORD", "--cafile", str(server.cafile), "--json", *extra],
                          capture_output=True, text=True, timeout=120, env=env)


def test_fetch_ingests_once_and_moves(dovecot: Dovecot, tmp_path: Path) -> None:
    google = (FIXTURES / "cry-inc" / "google.xml").read_bytes()
    outlook = (FIXTURES / "cry-inc" / "outlook.xml").read_bytes()
    tls = (FIXTURES / "parsedmarc" / "rfc8460.json").read_bytes()
    _deliver(dovecot,
             _email("Report google", (_zip("google.xml", google), "application", "zip", "google.zip")),
             _email("Report outlook", (gzip.compress(outlook), "application", "gzip", "outlook.xml.gz"),
                    (gzip.compress(tls), "application", "tlsrpt+gzip", "tls.json.gz")),
             _email("Report google again via a second mailbox",
                    (_zip("google.xml", google), "application", "zip", "google.zip")),
             _email("Out of office", (b"I am away", "text", "plain", "note.txt")))
    db = tmp_path / "dmarc.sqlite"

    first = _fetch_cli(dovecot, db)
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)
    assert (result["messages"], result["ingested"], result["reports"], result["rejected"]) == (4, 3, 3, 1)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT org_name, SUM(message_count) FROM report GROUP BY org_name ORDER BY 1").fetchall() == [
        ("Outlook.com", 3), ("google.com", 1)]
    assert conn.execute("SELECT COUNT(*) FROM tls_report").fetchone()[0] == 1
    assert (_count(dovecot, "INBOX"), _count(dovecot, "Processed"), _count(dovecot, "Rejected")) == (0, 3, 1)
    quarantined = list(Path(str(db) + ".quarantine").glob("*.reason.txt"))
    assert len(quarantined) == 1 and "no DMARC aggregate or SMTP TLS report" in quarantined[0].read_text()

    second = _fetch_cli(dovecot, db)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["messages"] == 0
    assert conn.execute("SELECT COUNT(*), SUM(message_count) FROM report").fetchone() == (2, 4)
    conn.close()


def test_crash_between_storing_and_moving_neither_loses_nor_double_counts(
        dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outlook = (FIXTURES / "cry-inc" / "outlook.xml").read_bytes()
    _deliver(dovecot, _email("Report outlook", (gzip.compress(outlook), "application", "gzip", "o.xml.gz")))
    db = tmp_path / "dmarc.sqlite"
    settings = ImapSettings(host="127.0.0.1", port=dovecot.port, user="dmarc", password=PASSWORD,
                            cafile=str(dovecot.cafile))

    def crash(*args: object) -> None:
        raise ConnectionResetError("simulated crash before the move")

    monkeypatch.setattr(fetch_module, "_move", crash)
    conn = load_store(db)
    with pytest.raises(ConnectionResetError):
        fetch_reports(conn, settings)
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 1  # stored...
    assert _count(dovecot, "INBOX") == 1  # ...but not moved
    monkeypatch.undo()

    again = fetch_reports(conn, settings)
    assert (again.messages, again.ingested, again.duplicates) == (1, 0, 1)
    assert again.details[0]["outcome"] == "already-ingested"
    assert conn.execute("SELECT COUNT(*), SUM(message_count) FROM report").fetchone() == (1, 3)
    assert (_count(dovecot, "INBOX"), _count(dovecot, "Processed")) == (0, 1)
    conn.close()


def test_wrong_password_and_unknown_ca_are_clear_errors(dovecot: Dovecot, tmp_path: Path) -> None:
    env = {**os.environ, "DMARC_BOX_PASSWORD": "wrong"}
    bad = subprocess.run([str(MAILFLEET), "dmarc.fetch", "--db", str(tmp_path / "d.sqlite"), "--imap-host",
                          "127.0.0.1", "--imap-port", str(dovecot.port), "--user", "dmarc", "--password-ref",
                          "env:DMARC_BOX_PASSWORD", "--cafile", str(dovecot.cafile)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 1 and "login as 'dmarc'" in bad.stderr and "Traceback" not in bad.stderr
    assert "wrong" not in bad.stderr  # the secret is never printed
    untrusted = subprocess.run([str(MAILFLEET), "dmarc.fetch", "--db", str(tmp_path / "d.sqlite"), "--imap-host",
                                "127.0.0.1", "--imap-port", str(dovecot.port), "--user", "dmarc", "--password-ref",
                                "env:DMARC_BOX_PASSWORD"], capture_output=True, text=True, timeout=60, env=env)
    assert untrusted.returncode == 1 and "--cafile" in untrusted.stderr


def test_oversized_message_is_rejected_unread(dovecot: Dovecot, tmp_path: Path) -> None:
    from mailfleet.dmarc.model import Limits

    google = (FIXTURES / "cry-inc" / "google.xml").read_bytes()
    _deliver(dovecot, _email("Huge", (google + b"<!-- " + b"x" * 50_000 + b" -->", "text", "xml", "big.xml")))
    conn = load_store(tmp_path / "dmarc.sqlite")
    settings = ImapSettings(host="127.0.0.1", port=dovecot.port, user="dmarc", password=PASSWORD,
                            cafile=str(dovecot.cafile))
    result = fetch_reports(conn, settings, limits=Limits(max_email_bytes=20_000))
    assert (result.messages, result.rejected) == (1, 1)
    assert "over the cap of 20000" in str(result.details[0]["reason"])
    assert (_count(dovecot, "INBOX"), _count(dovecot, "Rejected")) == (0, 1)
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 0
    conn.close()


def test_starttls_and_plaintext_refusal(dovecot: Dovecot, tmp_path: Path) -> None:
    google = (FIXTURES / "cry-inc" / "google.xml").read_bytes()
    _deliver(dovecot, _email("Report google", (gzip.compress(google), "application", "gzip", "g.xml.gz")))
    db = tmp_path / "dmarc.sqlite"
    env = {**os.environ, "DMARC_BOX_PASSWORD": PASSWORD}
    run = subprocess.run([str(MAILFLEET), "dmarc.fetch", "--db", str(db), "--imap-host", "127.0.0.1",
                          "--imap-port", str(dovecot.starttls_port), "--starttls", "--user", "dmarc",
                          "--password-ref", "env:DMARC_BOX_PASSWORD", "--cafile", str(dovecot.cafile), "--json"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["reports"] == 1
    # implicit TLS against the plain port fails cleanly: there is no way to log in without TLS
    wrong = subprocess.run([str(MAILFLEET), "dmarc.fetch", "--db", str(db), "--imap-host", "127.0.0.1",
                            "--imap-port", str(dovecot.starttls_port), "--user", "dmarc", "--password-ref",
                            "env:DMARC_BOX_PASSWORD", "--cafile", str(dovecot.cafile)],
                           capture_output=True, text=True, timeout=120, env=env)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
