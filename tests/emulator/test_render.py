"""postfix-mailcow's main.cf and maps, dovecot-mailcow's config: rendered, and accepted by the
real Postfix (``postfix -c DIR check``) and Dovecot (``doveconf -c FILE``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from emulator_support import EMULATOR, make_cert
from mailcow_emulator.render_dovecot import render_dovecot_conf, render_passwd_file
from mailcow_emulator.render_postfix import render_main_cf, render_maps, strip_myhostname

BASE = (EMULATOR / "tree/data/conf/postfix/main.cf").read_text()
MASTER = EMULATOR / "tree/data/conf/postfix/master.cf"

DB = {
    "domains": {
        "example.org": {"active": "1", "backupmx": "0", "relayhost": "1"},
        "backup.org": {"active": "1", "backupmx": "1", "relayhost": "0"},
        "off.org": {"active": "0", "backupmx": "0", "relayhost": "0"},
    },
    "mailboxes": {"alice@example.org": {"active": "1", "domain": "example.org", "local_part": "alice",
                                         "password_hash": "{SSHA256}x", "relayhost": "0"},
                  "bob@off.org": {"active": "1", "domain": "off.org", "local_part": "bob",
                                  "password_hash": "{SSHA256}y", "relayhost": "0"}},
    "aliases": {"1": {"address": "@example.org", "goto": "alice@example.org", "active": "1"}},
    "relayhosts": {"1": {"hostname": "[10.77.0.13]:587", "username": "relay", "password": "pw", "active": "1"}},
    "transports": {"1": {"id": 1, "destination": "partner.org", "nexthop": "[10.77.0.14]:25", "username": "",
                         "password": "", "active": "1"}},
}


def test_myhostname_lines_are_stripped_unless_they_reference_myhostname() -> None:
    extra = "myhostname = evil.example\nsmtp_helo_name = $myhostname\n  myhostname=x\nmyhostname = mx.$myhostname\n"
    assert strip_myhostname(extra) == "smtp_helo_name = $myhostname\nmyhostname = mx.$myhostname"


def test_main_cf_paths_marker_and_overrides() -> None:
    text = render_main_cf(BASE, hostname="mx1.lab.test", extra_cf="myhostname = no\nmynetworks = 127.0.0.0/8 10.77.0.0/24\n",
                          maps_dir="/maps", vmail_dir="/vmail", ssl_dir="/ssl", conf_dir="/conf")
    assert "/opt/postfix/conf" not in text and "texthash:/maps/virtual_mailbox_maps" in text
    assert "virtual_mailbox_base = /vmail" in text and "smtpd_tls_cert_file = /ssl/cert.pem" in text
    assert text.endswith("# User Overrides\nmyhostname = mx1.lab.test\nmynetworks = 127.0.0.0/8 10.77.0.0/24\n")
    assert "maillog_file = /var/log/postfix.log" in text
    assert "mysql:" not in "".join(l for l in text.splitlines() if not l.startswith("#"))


def test_extra_cf_written_for_mailcow_gets_the_lab_paths() -> None:
    """extra.cf names Mailcow's container paths (the priority block re-states the SQL map)."""
    extra = ("sender_dependent_default_transport_maps = regexp:/opt/postfix/conf/bulk.regexp,\n"
             "  proxy:mysql:/opt/postfix/conf/sql/mysql_sender_dependent_default_transport_maps.cf\n"
             "x_maps = proxy:mysql:/opt/postfix/conf/sql/mysql_something_new.cf\n")
    text = render_main_cf(BASE, hostname="mx1.lab.test", extra_cf=extra, maps_dir="/maps", vmail_dir="/vmail",
                          ssl_dir="/ssl", conf_dir="/checkout/data/conf/postfix")
    tail = text.split("# User Overrides\n", 1)[1]
    assert "regexp:/checkout/data/conf/postfix/bulk.regexp," in tail
    assert "  texthash:/maps/sender_dependent_default_transport_maps\n" in tail
    assert "x_maps = texthash:/maps/empty\n" in tail


def test_maps_from_the_database() -> None:
    maps = render_maps(DB)
    assert "example.org OK" in maps["virtual_mailbox_domains"] and "off.org" not in maps["virtual_mailbox_domains"]
    assert "backup.org OK" in maps["relay_domains"]
    assert "alice@example.org example.org/alice/Maildir/" in maps["virtual_mailbox_maps"]
    assert "bob@off.org" not in maps["virtual_mailbox_maps"]
    assert "@example.org alice@example.org" in maps["virtual_alias_maps"]
    assert "alice@example.org alice@example.org" in maps["virtual_alias_maps"]  # catch-all spares mailboxes
    assert "@example.org smtp:[10.77.0.13]:587" in maps["sender_dependent_default_transport_maps"]
    assert "@example.org relay:pw" in maps["sasl_passwd"]
    assert "partner.org smtp:[10.77.0.14]:25" in maps["transport_maps"]


def test_real_postfix_accepts_the_rendered_config(tmp_path: Path) -> None:
    if not shutil.which("postfix"):
        pytest.skip("postfix is not installed")
    if os.geteuid() != 0:
        pytest.skip("postfix check needs root")
    maps_dir, config_dir = tmp_path / "maps", tmp_path / "etc"
    maps_dir.mkdir()
    config_dir.mkdir()
    for name, text in render_maps(DB).items():
        (maps_dir / name).write_text(text)
    make_cert(tmp_path / "ssl")
    (config_dir / "main.cf").write_text(render_main_cf(BASE, hostname="mx1.lab.test", extra_cf="", maps_dir=str(maps_dir),
                                                       vmail_dir=str(tmp_path / "vmail"), ssl_dir=str(tmp_path / "ssl"),
                                                       conf_dir=str(tmp_path / "conf")))
    shutil.copyfile(MASTER, config_dir / "master.cf")
    (tmp_path / "spool").mkdir()
    with open(config_dir / "main.cf", "a") as handle:  # keep `postfix check` off this machine's spool
        handle.write(f"queue_directory = {tmp_path / 'spool'}\ndata_directory = {tmp_path / 'spool'}\n")
    check = subprocess.run(["postfix", "-c", str(config_dir), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    query = subprocess.run(["postmap", "-c", str(config_dir), "-q", "alice@example.org",
                            f"texthash:{maps_dir}/virtual_mailbox_maps"], capture_output=True, text=True)
    assert query.stdout.strip() == "example.org/alice/Maildir/"
    (config_dir / "main.cf").write_text("inet_interfaces = no-such-host.invalid\n")
    assert subprocess.run(["postfix", "-c", str(config_dir), "check"], capture_output=True).returncode != 0


def test_dovecot_config_parses_and_passwd_file_lists_active_mailboxes(tmp_path: Path) -> None:
    passwd = render_passwd_file(DB, "/vmail")
    assert passwd == "alice@example.org:{SSHA256}x:5000:5000::/vmail/example.org/alice::\n"
    if not shutil.which("doveconf"):
        pytest.skip("dovecot is not installed")
    make_cert(tmp_path / "ssl")
    (tmp_path / "passwd").write_text(passwd)
    conf = tmp_path / "dovecot.conf"
    conf.write_text(render_dovecot_conf(base_dir=str(tmp_path / "run"), passwd_file=str(tmp_path / "passwd"),
                                        vmail_dir="/vmail", cert=str(tmp_path / "ssl/cert.pem"),
                                        key=str(tmp_path / "ssl/key.pem"), log_path=str(tmp_path / "dovecot.log"),
                                        dh_file="/usr/share/dovecot/dh.pem" if Path("/usr/share/dovecot/dh.pem").exists() else None))
    result = subprocess.run(["doveconf", "-c", str(conf), "-n"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mail_location = maildir:/vmail/%d/%n/Maildir" in result.stdout
