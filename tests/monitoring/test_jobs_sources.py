"""What the monitoring host gets from this machine: the inventory copy, secrets, the env file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from deploy_helpers import KEYS

from mailfleet.deploy.sources import load_playbooks
from mailfleet.errors import MailfleetError
from mailfleet.inventory.load import parse_inventory_text
from mailfleet.monitoring.load_deploy import load_jobs_sources

FLEET = Path(__file__).resolve().parents[1] / "deploy" / "fleet.yaml"
HOSTILE = "k3y $(touch {marker}) `id` 'quoted' \"double\" ; rm -rf /nonexistent"


def _inventory(tmp_path: Path, identity: str, extra: str = ""):  # type: ignore[no-untyped-def]
    text = FLEET.read_text().replace("  trusted_networks: [10.90.0.0/24]\n",
                                     f"  trusted_networks: [10.90.0.0/24]\n  ssh_identity: {identity}\n{extra}")
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return parse_inventory_text(text, str(path), path)


def _jobs_step():  # type: ignore[no-untyped-def]
    return next(s for s in load_playbooks()["monitoring"].steps if s.kind == "monitoring_jobs")


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def test_env_secret_is_quoted_data_in_the_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("MF_TEST_SSH_KEY", HOSTILE.format(marker=marker))
    inv = _inventory(tmp_path, "env:MF_TEST_SSH_KEY")
    files = load_jobs_sources(_jobs_step(), inv.fleet.hosts["mon1"], inv)
    env_file = tmp_path / "mailfleet.env"
    env_file.write_text(files["host:/etc/mailfleet/mailfleet.env"])
    done = subprocess.run(["sh", "-c", f'set -a; . {env_file}; set +a; printf %s "$MF_TEST_SSH_KEY"'],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0 and done.stdout == HOSTILE.format(marker=marker)
    assert not marker.exists(), "a secret's value was executed"
    assert files["host:/etc/mailfleet/inventory.yaml"] == (tmp_path / "fleet.yaml").read_text()


def test_file_secret_is_copied_under_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    inv = _inventory(tmp_path, "file:secrets/id_ed25519")
    files = load_jobs_sources(_jobs_step(), inv.fleet.hosts["mon1"], inv)
    assert files["host:/etc/mailfleet/secrets/id_ed25519"].startswith("-----BEGIN OPENSSH")
    assert "note:dmarc" in files  # no report mailbox in this fleet: said, not scheduled
    assert "dmarc-fetch" not in files["host:/etc/cron.d/mailfleet"]


def test_secret_outside_a_secrets_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "id").write_text("k\n")
    inv = _inventory(tmp_path, "file:keys/id")
    assert inv.fleet is not None
    with pytest.raises(MailfleetError, match="not under a secrets/ folder"):
        load_jobs_sources(_jobs_step(), inv.fleet.hosts["mon1"], inv)


def test_report_mailbox_without_its_password_yet_names_add_domain(tmp_path: Path) -> None:
    """The password file appears when add-domain creates the report mailbox: the note says that,
    not "create it with mode 0600" (which would invite a password the mailbox does not have)."""
    inv = _inventory(tmp_path, "file:secrets/id_ed25519", extra="  dmarc_reports: dmarc-reports@example.com\n")
    text = inv.path.read_text().replace("    transactional_relay: tx1\n", "    transactional_relay: tx1\n"
                                        "    mailboxes: {dmarc-reports: {}}\n", 1)
    inv = parse_inventory_text(text, str(inv.path), inv.path)
    assert not inv.problems, inv.problems
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    files = load_jobs_sources(_jobs_step(), inv.fleet.hosts["mon1"], inv)
    assert "password is unknown" in files["note:dmarc"]
    assert "`mailfleet add-domain --domain example.com` creates the mailbox and its password" in files["note:dmarc"]
    assert "dmarc-fetch" not in files["host:/etc/cron.d/mailfleet"]
