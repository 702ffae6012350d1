"""A never-deployed host, from nothing to a running Mailcow in one `deploy`, on a private lab.

The shared lab is usually deployed already, so its tests see the second run; this module builds
a two-host lab of its own (mx1, relay1; its own prefix and subnet, removed at the end whatever
happens) and proves the first run: clone, generate_config.sh without a prompt, mailcow.conf
merged, files placed, Compose up, containers running, in several rounds; then zero changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_helpers import private_lab, run_on

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(Path(sys.executable).with_name("mailfleet"))
SUBNETS = ("10.87.0.0/24", "10.88.0.0/24", "10.89.0.0/24")


@pytest.fixture(scope="module")
def fresh_lab() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    with private_lab("deploy-fresh", "mfdf", SUBNETS) as paths:
        yield paths.inventory


def test_first_deploy_installs_mailcow_and_the_second_changes_nothing(fresh_lab: Path) -> None:
    first = subprocess.run([MAILFLEET, "deploy", "--all", "--json", "--inventory", str(fresh_lab)], cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)["hosts"]
    assert set(report) == {"mx1", "relay1"}
    for name, host in report.items():
        changed = {step["name"] for step in host["steps"] if step["changed"]}
        assert {"mailcow checkout", "generate config", "mailcow.conf", "role files", "compose"} <= changed, (name, changed)
        # mailcow.conf was merged in a later round, once generate_config.sh had written it
        merged = next(step for step in host["steps"] if step["name"] == "mailcow.conf")["changes"]
        assert "API_KEY: set (value hidden)" in merged
    conf = run_on(fresh_lab, "relay1", "cat /opt/mailcow-dockerized/mailcow.conf")
    assert "SKIP_SOGO=y" in conf and "DBPASS=" in conf and "API_KEY=" in conf
    second = subprocess.run([MAILFLEET, "deploy", "--all", "--json", "--inventory", str(fresh_lab)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert all(host["changes"] == 0 for host in json.loads(second.stdout)["hosts"].values())
