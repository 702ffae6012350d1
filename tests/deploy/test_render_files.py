"""What deploy places into Mailcow, rendered for each host of the test fleet."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import KEYS, load_test_inventory, make_job

from mailfleet.deploy.render_files import TemplateError, postfix_network, render_conf_overrides


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("host", ["mx1", "relay1", "tx1"])
def test_extra_cf_never_sets_myhostname(host: str) -> None:
    files = make_job(load_test_inventory(), host).sources.files["role files"]
    assert "myhostname" not in files["data/conf/postfix/extra.cf"]


def test_relay_trusts_exactly_the_fleet_networks_and_its_inbound_hosts() -> None:
    job = make_job(load_test_inventory(), "relay1")
    extra = job.sources.files["role files"]["data/conf/postfix/extra.cf"]
    line = next(x for x in extra.splitlines() if x.startswith("mynetworks"))
    assert line == ("mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128 [fe80::]/10 172.22.1.0/24 "
                    "[fd4d:6169:6c63:6f77::]/64 10.90.0.0/24 192.0.2.11/32")
    options = job.sources.files["relay trust"]["data/conf/rspamd/local.d/options.inc"]
    assert re.search(r"^local_addrs = \[.*10\.90\.0\.0/24, 192\.0\.2\.11/32\];$", options, re.M)


def test_inbound_extra_cf_has_no_mynetworks_and_includes_the_bulk_block() -> None:
    extra = make_job(load_test_inventory(), "mx1").sources.files["role files"]["data/conf/postfix/extra.cf"]
    assert "mynetworks" not in extra
    assert "mailfleet priority (bulk transport)" in extra


def test_conf_overrides_layer_all_then_role_then_host() -> None:
    inv = load_test_inventory()
    relay = make_job(inv, "relay1").sources.conf_overrides
    assert relay["SKIP_FTS"] == "y" and relay["SKIP_CLAMD"] == "y"  # role, then the host's own
    assert relay["API_KEY"] == KEYS["MF_TEST_RELAY1_KEY"]
    assert relay["SNAT_TO_SOURCE"] == "198.51.100.21"
    assert "SNAT_TO_SOURCE" not in make_job(inv, "mx1").sources.conf_overrides


def test_a_template_typo_is_an_error_not_an_empty_value() -> None:
    inv = load_test_inventory()
    assert inv.fleet is not None
    with pytest.raises(TemplateError, match="hostnme"):
        render_conf_overrides("all:\n  X: '{{ host.hostnme }}'\n", "o.yaml", inv.fleet.hosts["mx1"], inv.fleet, "k")
    with pytest.raises(TemplateError, match="unknown section"):
        render_conf_overrides("inbund: {}\n", "o.yaml", inv.fleet.hosts["mx1"], inv.fleet, "k")


def test_postfix_network() -> None:
    assert postfix_network("fe80::/10") == "[fe80::]/10"
    assert postfix_network("10.0.0.0/8") == "10.0.0.0/8"
    with pytest.raises(ValueError):
        postfix_network("not-a-net")
