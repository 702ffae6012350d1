"""The rendered configuration passes the real Postfix's checks, and the hook is idempotent.

A temporary Postfix configuration directory (copies of this machine's main.cf and master.cf
with their own queue and data directories) stands in for postfix-mailcow: the maps land in a
directory that plays ``/opt/postfix/conf``, Mailcow's MySQL sender map (no MySQL here) becomes
an empty texthash table, and master.cf gets Mailcow's ``smtp_sender_cleanup`` service. Nothing
outside the temporary directory is touched, and no Postfix is started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mailfleet.priority import render_extra_cf, render_files
from mailfleet.priority.render import HEADERS_PATH, HOOK_PATH, MAILCOW_SENDER_MAP, SENDERS_PATH

pytestmark = pytest.mark.skipif(not (shutil.which("postfix") and shutil.which("postconf")
                                     and Path("/etc/postfix/main.cf").exists()),
                                reason="needs Postfix (apt-get install postfix) for `postfix check`")

MAILCOW_SUBMISSION_CLEANUP = "smtp_sender_cleanup unix n - y - 0 cleanup\n  -o header_checks=$smtp_header_checks\n"


def build_config(tmp_path: Path, fleet, host: str) -> tuple[Path, Path, Path]:
    etc, conf = tmp_path / "etc", tmp_path / "conf"
    for d in (etc, conf, tmp_path / "spool", tmp_path / "data"):
        d.mkdir()
    shutil.copyfile("/etc/postfix/main.cf", etc / "main.cf")
    shutil.copyfile("/etc/postfix/master.cf", etc / "master.cf")
    for rel, text in render_files(fleet, host).items():
        target = conf / Path(rel).name
        target.write_text(text)
        target.chmod(0o755 if rel == HOOK_PATH else 0o644)
    (conf / "mailcow_sender_map").write_text("")
    extra = render_extra_cf(fleet, host).replace(MAILCOW_SENDER_MAP, f"texthash:{conf}/mailcow_sender_map")
    extra = extra.replace("/opt/postfix/conf", str(conf))
    with open(etc / "main.cf", "a") as main:
        main.write(f"\nqueue_directory = {tmp_path}/spool\ndata_directory = {tmp_path}/data\n"
                   "smtp_header_checks =\n# User Overrides\n" + extra)
    with open(etc / "master.cf", "a") as master:
        master.write(MAILCOW_SUBMISSION_CLEANUP)
    return etc, conf, conf / Path(HOOK_PATH).name


def run(cmd: list[str], etc: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=dict(os.environ, MAIL_CONFIG=str(etc)), capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("host", ["mx1", "relay1", "tx1"])
def test_rendered_config_passes_postfix_check_and_hook_is_idempotent(tmp_path, example_fleet, host):
    etc, conf, hook = build_config(tmp_path, example_fleet, host)
    first = run([str(hook)], etc)
    assert first.returncode == 0, first.stderr
    master_once = (etc / "master.cf").read_text()
    second = run([str(hook)], etc)
    assert second.returncode == 0, second.stderr
    assert (etc / "master.cf").read_text() == master_once, "a second run of the hook changed master.cf"

    check = run(["postfix", "-c", str(etc), "check"], etc)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "warning" not in check.stderr.lower(), check.stderr
    listing = run(["postconf", "-c", str(etc), "-n"], etc)
    assert listing.returncode == 0 and "warning" not in listing.stderr.lower(), listing.stderr

    service = run(["postconf", "-c", str(etc), "-M", "bulk/unix"], etc).stdout
    assert service.split()[:3] == ["bulk", "unix", "-"] and service.split()[7] == "smtp"
    params = run(["postconf", "-c", str(etc), "-P"], etc).stdout
    assert "bulk/unix/syslog_name = postfix/bulk" in params
    assert "smtp_sender_cleanup/unix/header_checks = $smtp_header_checks,$mailfleet_bulk_header_checks" in params
    effective = run(["postconf", "-c", str(etc), "-h", "bulk_destination_concurrency_limit",
                     "sender_dependent_default_transport_maps"], etc).stdout.splitlines()
    assert effective[0] == "12"  # the example inventory's bulk window
    assert effective[1].startswith(f"regexp:{conf}/mailfleet_bulk_senders.regexp")


def test_real_postfix_classifies_with_the_rendered_tables(tmp_path, example_fleet):
    etc, conf, _ = build_config(tmp_path, example_fleet, "mx1")
    senders = f"regexp:{conf}/{Path(SENDERS_PATH).name}"
    headers = f"regexp:{conf}/{Path(HEADERS_PATH).name}"
    relay = f"[{example_fleet.hosts['relay1'].address}]:25"

    def query(key: str, table: str) -> str:
        result = run(["postmap", "-q", key, table], etc)
        assert result.returncode in (0, 1), result.stderr
        assert "warning" not in result.stderr.lower(), result.stderr
        return result.stdout.strip()

    assert query("newsletter@example.com", senders) == f"bulk:{relay}"
    assert query("NewsLetter+c42@EXAMPLE.com", senders) == f"bulk:{relay}"
    assert query("anyone@news.example.com", senders) == f"bulk:{relay}"
    assert query("reset@example.com", senders) == ""
    assert query("newsletter@example.com.evil.test", senders) == ""
    assert query("Precedence: bulk", headers) == f"FILTER bulk:{relay}"
    assert query("List-Unsubscribe: <mailto:unsub@example.com>", headers) == f"FILTER bulk:{relay}"
    assert query("Precedence: bulky", headers) == ""
    assert query("Subject: your password reset", headers) == ""
