"""The lab's pure core: which hosts, which files, which inventory. No root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.inventory.load import parse_inventory_text
from mailfleet.lab.merge_inventory import LabInventoryInput, merge_lab_inventory
from mailfleet.lab.model import LabSpace
from mailfleet.lab.parse_probe import parse_probe_output, render_probe_command
from mailfleet.lab.plan_hosts import LabPlanError, plan_host_names, plan_lab_hosts
from mailfleet.lab import render_host

REPO = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfojNMbOQl/QRb6NKV1s7OHmY5+JRMYoxNgTtT7Ys8l"


@pytest.mark.parametrize(("count", "names"), [
    (1, ["mx1"]),
    (2, ["mx1", "relay1"]),
    (3, ["mx1", "mx2", "relay1"]),
    (4, ["mx1", "mx2", "relay1", "mon1"]),
    (6, ["mx1", "mx2", "relay1", "relay2", "tx1", "mon1"]),
    (8, ["mx1", "mx2", "relay1", "relay2", "tx1", "relay3", "mx3", "mon1"]),
])
def test_host_mix_keeps_the_example_roles_with_monitoring_last(count: int, names: list[str]) -> None:
    planned = plan_host_names(count)
    assert [name for name, _, _ in planned] == names
    roles = dict((name, roles) for name, roles, _ in planned)
    assert roles["mx1"] == ("inbound",)
    if "mon1" in roles:
        assert planned[-1][1] == ("monitoring",)


@pytest.mark.parametrize("count", [0, -1, 33, True, "6"])
def test_bad_host_counts_are_refused_with_the_range(count: object) -> None:
    with pytest.raises(LabPlanError, match="1 to 32 hosts"):
        plan_host_names(count)  # type: ignore[arg-type]


def test_hosts_get_addresses_names_and_short_link_names() -> None:
    hosts = plan_lab_hosts(6, LabSpace())
    assert [h.address for h in hosts] == [f"10.77.0.{i}" for i in range(11, 17)]
    assert hosts[0].fqdn == "mx1.lab.mailfleet.test" and hosts[0].netns == "mflab-mx1"
    assert all(len(h.veth) <= 15 for h in hosts)
    assert [h.runs_dovecot for h in hosts] == [True, True, False, False, False, False]
    other = plan_lab_hosts(2, LabSpace(prefix="mflt", subnet="10.79.0.0/24"))
    assert [(h.address, h.netns, h.veth) for h in other] == [("10.79.0.11", "mflt-mx1", "mfltv11"),
                                                             ("10.79.0.12", "mflt-relay1", "mfltv12")]
    with pytest.raises(LabPlanError, match="room for"):
        plan_lab_hosts(8, LabSpace(subnet="10.77.0.0/28"))


def _lab_inventory(count: int = 6, version: str | None = "2026-07a") -> str:
    hosts = plan_lab_hosts(count, LabSpace())
    return merge_lab_inventory((REPO / "inventory" / "example.yaml").read_text(), LabInventoryInput(
        hosts=hosts, host_keys={h.name: KEY for h in hosts}, repository_url="file:///lab/mailcow-dockerized.git",
        version=version, subnet="10.77.0.0/24", bridge="mflab0"))


def test_lab_inventory_is_valid_and_carries_the_lab_settings() -> None:
    text = _lab_inventory()
    loaded = parse_inventory_text(text, "lab.yaml")
    assert loaded.problems == []
    fleet = loaded.fleet
    assert fleet is not None
    assert fleet.settings.mailcow.repository == "file:///lab/mailcow-dockerized.git"
    assert fleet.settings.mailcow.version == "2026-07a"
    assert fleet.settings.secrets_dir == "secrets/lab"
    assert str(fleet.settings.ssh_identity) == "file:secrets/lab/id_ed25519"
    assert fleet.settings.trusted_networks == ("10.77.0.0/24",)
    assert fleet.domains == {}
    mx2 = fleet.hosts["mx2"]
    assert (mx2.address, mx2.hostname, mx2.host_key, mx2.public_ips) == \
        ("10.77.0.12", "mx2.lab.mailfleet.test", KEY, ("10.77.0.12",))
    assert str(mx2.api_key) == "file:secrets/lab/mx2.api-key"
    assert str(mx2.maintenance_window) == "Sun 04:00-06:00 Europe/Berlin"  # kept from the example
    assert fleet.hosts["relay1"].mailcow_conf == {"SKIP_CLAMD": "y", "SKIP_SOGO": "y"}
    assert fleet.hosts["mon1"].api_key is None
    assert "203.0.113" not in text and "EMULATOR" in text.splitlines()[3]


def test_smaller_and_larger_labs_give_valid_inventories() -> None:
    for count in (1, 2, 8):
        loaded = parse_inventory_text(_lab_inventory(count), "lab.yaml")
        assert loaded.problems == [], count
        assert loaded.fleet is not None and len(loaded.fleet.hosts) == count
    larger = parse_inventory_text(_lab_inventory(8), "lab.yaml").fleet
    assert larger is not None and larger.hosts["relay3"].roles == ("outbound-relay",)


def test_without_emulator_tags_the_example_version_stays() -> None:
    fleet = parse_inventory_text(_lab_inventory(version=None), "lab.yaml").fleet
    assert fleet is not None and fleet.settings.mailcow.version == "2026-07a"


def test_boot_script_mounts_the_host_view_then_becomes_tini_with_sshd() -> None:
    mx1, relay1 = plan_lab_hosts(2, LabSpace())
    script = render_host.render_boot_script(mx1, "/lab/hosts/mx1", "/opt/mailcow-dockerized")
    lines = script.splitlines()
    assert lines[-1] == "exec tini -s -- /usr/sbin/sshd -D -E /var/log/sshd.log"
    for target in ("/etc", "/var", "/usr/local/bin"):
        assert any(line.startswith("mount -t overlay") and line.endswith(f" {target}") for line in lines)
    for folder, target in render_host.BIND_MOUNTS:
        assert f'mount --bind "$H/{folder}" {target}' in lines
    # /var is mounted before anything is bound below it.
    assert lines.index(next(line for line in lines if line.endswith(" /var"))) < \
        lines.index('mount --bind "$H/log" /var/log')
    assert "hostname mx1" in lines and "  dovecot || echo 'boot: dovecot failed to start'" in lines
    assert "dovecot" not in render_host.render_boot_script(relay1, "/lab/hosts/relay1", "/opt/m")
    assert "/opt/mailcow-dockerized/mailcow.conf" in script and "docker compose up -d" in script
    odd = render_host.render_boot_script(mx1, "/lab/it's here", "/opt/m c")
    assert "H='/lab/it'\"'\"'s here'" in odd and "'/opt/m c/mailcow.conf'" in odd


def test_sshd_config_is_key_only_with_its_own_host_key() -> None:
    config = render_host.render_sshd_config(plan_lab_hosts(1, LabSpace())[0]).splitlines()
    for line in ("PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                 "PermitRootLogin prohibit-password", "HostKey /etc/ssh/ssh_host_ed25519_key", "StrictModes yes"):
        assert line in config


def test_main_cf_resolves_lab_names_without_dns_and_trusts_the_lab() -> None:
    mx1 = plan_lab_hosts(1, LabSpace())[0]
    main_cf = render_host.render_main_cf(mx1, LabSpace(), tls=False).splitlines()
    assert "myhostname = mx1.lab.mailfleet.test" in main_cf
    assert "mynetworks = 127.0.0.0/8 10.77.0.0/24" in main_cf
    assert "smtp_dns_support_level = disabled" in main_cf and "inet_interfaces = all" in main_cf
    hosts = render_host.render_etc_hosts(plan_lab_hosts(3, LabSpace()), LabSpace())
    assert "10.77.0.13\trelay1.lab.mailfleet.test relay1" in hosts


def test_dovecot_password_hash_is_salted_sha512() -> None:
    import base64
    import hashlib
    line = render_host.render_dovecot_users("labuser", "s3cret", b"12345678")
    user, scheme_hash = line.strip().split(":", 1)
    assert user == "labuser" and scheme_hash.startswith("{SSHA512}")
    raw = base64.b64decode(scheme_hash.removeprefix("{SSHA512}"))
    assert raw == hashlib.sha512(b"s3cret" + b"12345678").digest() + b"12345678"


def test_probe_output_is_parsed_and_missing_lines_read_as_unknown() -> None:
    assert parse_probe_output("mx1\npostfix=up\ndovecot=down\nmailcow_api=none\n") == \
        {"hostname": "mx1", "postfix": "up", "dovecot": "down", "mailcow_api": "none"}
    assert parse_probe_output("") == {"hostname": "", "postfix": "unknown", "dovecot": "unknown",
                                      "mailcow_api": "unknown"}
    assert parse_probe_output("mx1\npostfix=maybe\nweird\n")["postfix"] == "unknown"
    command = render_probe_command("/opt/mailcow dir", 8443)
    assert "'/opt/mailcow dir/mailcow.conf'" in command and "/dev/tcp/127.0.0.1/8443" in command
