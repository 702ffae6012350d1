"""``mailfleet upgrade`` on a lab of six hosts: inside a window, with a failing update.sh on the
third host and ``--resume``, and with the window closed.

Runs on a private lab (see upgrade_lab.py) so the shared lab keeps its pinned version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mailfleet.inventory import load_valid_inventory
from mailfleet.mailcow import open_api
from mailfleet.upgrade.journal import load_runs
from mailfleet.upgrade.rules import check_down_intervals
from lab_helpers import run_on
from upgrade_lab import MAILFLEET, REPO, downgrade_mailcow, install_mailcow

pytestmark = pytest.mark.lab

OLD, NEW = "2026-07a", "2026-09"


class Lab:
    def __init__(self, root: Path) -> None:
        from mailfleet.lab.model import LabSpace
        from mailfleet.lab.state import LabPaths

        self.root = root
        self.space = LabSpace(prefix="mfug", subnet="10.83.0.0/24")
        self.paths = LabPaths(state_dir=root / "lab", inventory=root / "inventory" / "lab.yaml",
                              example=REPO / "inventory" / "example.yaml")
        self.inventory = self.paths.inventory
        self.journal = root / "journal.jsonl"

    def mailfleet(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([MAILFLEET, *args, "--inventory", str(self.inventory)], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)

    def upgrade(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.mailfleet("upgrade", "--journal", str(self.journal), "--health-timeout", "60", *args)

    def lab(self, task: str, *args: str) -> None:
        result = subprocess.run([MAILFLEET, task, *args, "--dir", str(self.paths.state_dir), "--inventory",
                                 str(self.inventory)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr

    def reset(self, window: str | None) -> None:
        """Every Mailcow host back on OLD, the pin on OLD, one window for every host, no journal."""
        yaml = YAML(typ="rt")
        doc = yaml.load(self.inventory.read_text())
        doc["fleet"]["mailcow"]["version"] = OLD
        doc["fleet"]["maintenance_window"] = window
        for entry in doc["hosts"].values():
            entry.pop("maintenance_window", None)
        # A domain served by both MXs, so the journal's "two inbound hosts of one domain" rule
        # has something to check (the lab's inventory comes with no domains).
        doc["domains"] = {"upgrade.test": {"inbound": {"mx1": 10, "mx2": 20}, "relay": "relay1"}}
        with self.inventory.open("w") as handle:
            yaml.dump(doc, handle)
        self.journal.unlink(missing_ok=True)
        downgrade_mailcow(self.inventory, OLD)

    def mailcow_hosts(self) -> list[str]:
        inv = load_valid_inventory(self.inventory)
        return [h.name for h in inv.fleet.hosts.values() if h.runs_mailcow]

    def api_state(self, host: str) -> tuple[str, list[str]]:
        """(version the API reports, containers not running)."""
        inv = load_valid_inventory(self.inventory)
        with open_api(host, inv) as api:
            containers = api.get_containers()
            return api.get_version(), sorted(n for n, c in containers.items() if c.get("state") != "running")

    def head(self, host: str) -> str:
        return run_on(self.inventory, host, "git -C /opt/mailcow-dockerized rev-parse HEAD", timeout=30).strip()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root (network namespaces, mounts); run as root, as CI does")
    from mailfleet.lab.lifecycle import lab_down, lab_up

    the_lab = Lab(REPO / "var" / f"lab-upgrade-{os.getpid()}")
    try:
        lab_up(the_lab.paths, 6, the_lab.space, say=lambda _: None)
        print(f"lab-upgrade: Mailcow installed by {install_mailcow(the_lab.inventory, OLD)}")
        yield the_lab
    finally:
        lab_down(the_lab.paths, the_lab.space, say=lambda _: None)
        shutil.rmtree(the_lab.root, ignore_errors=True)


def _assert_inbound_never_down_together(run) -> None:
    inbound = sorted((iv for iv in run.down if iv.host in ("mx1", "mx2")), key=lambda iv: iv.start)
    assert [iv.host for iv in inbound].count("mx1") >= 1 and [iv.host for iv in inbound].count("mx2") >= 1
    for earlier, later in zip(inbound, inbound[1:]):
        assert earlier.end is not None and earlier.end <= later.start, (earlier, later)


def _window_around(now: datetime, before: timedelta, after: timedelta) -> str:
    start, end = now - before, now + after
    return f"daily {start:%H:%M}-{end:%H:%M} UTC"


def test_closed_window_changes_nothing_and_says_when(lab):
    now = datetime.now(timezone.utc)
    lab.reset(window=_window_around(now + timedelta(hours=6), timedelta(0), timedelta(hours=1)))
    heads = {h: lab.head(h) for h in lab.mailcow_hosts()}
    result = lab.upgrade("--yes", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout[: result.stdout.rindex("}") + 1])["plan"]
    assert not plan["starts_now"]
    first_start = datetime.fromisoformat(plan["hosts"][0]["start"])
    assert first_start > now + timedelta(hours=5)
    assert "window is closed: nothing was done" in result.stdout
    assert {h: lab.head(h) for h in heads} == heads
    assert not lab.journal.exists()
    # Prefetching is allowed outside the window and changes nothing else.
    prefetch = lab.upgrade("--prefetch")
    assert prefetch.returncode == 0, prefetch.stdout + prefetch.stderr
    assert all(f"{h}: images prefetched" in prefetch.stdout for h in heads)
    assert {h: lab.head(h) for h in heads} == heads
    assert all(lab.api_state(h) == (OLD, []) for h in heads)


def test_six_hosts_upgrade_inside_a_window(lab):
    now = datetime.now(timezone.utc)
    lab.reset(window=_window_around(now, timedelta(minutes=30), timedelta(hours=3)))
    result = lab.upgrade("--yes", "--host-minutes", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    hosts = lab.mailcow_hosts()
    for host in hosts:
        assert lab.api_state(host) == (NEW, []), host
    run = load_runs(lab.journal)[-1]
    assert run.status == "done" and sorted(run.order) == sorted(hosts)
    assert len(run.down) == len(hosts) and all(iv.end is not None for iv in run.down)
    assert check_down_intervals(load_valid_inventory(lab.inventory).fleet, run.down) == []
    _assert_inbound_never_down_together(run)
    assert load_valid_inventory(lab.inventory).fleet.settings.mailcow.version == NEW
    # A second run finds nothing to do.
    again = lab.upgrade("--yes")
    assert again.returncode == 0 and "Nothing to upgrade" in again.stdout


def test_failing_third_host_halts_rolls_back_and_resume_finishes(lab):
    lab.reset(window=None)
    plan = lab.upgrade("--plan", "--now", "--json")
    assert plan.returncode == 0, plan.stderr
    order = [h["name"] for h in json.loads(plan.stdout)["plan"]["hosts"]]
    third, later = order[2], order[3:]
    heads = {h: lab.head(h) for h in later}
    lab.lab("lab.fault", "--host", third, "--kind", "update-fails")

    failed = lab.upgrade("--now", "--yes")
    assert failed.returncode != 0
    assert f"{third}: update failed" in failed.stderr and "mailfleet upgrade --resume" in failed.stderr
    for host in order[:2]:
        assert lab.api_state(host) == (NEW, [])
    assert lab.api_state(third) == (OLD, [])            # rolled back, every container running
    assert run_on(lab.inventory, third, "git -C /opt/mailcow-dockerized rev-parse --abbrev-ref HEAD", timeout=30).strip() == "master"
    for host in later:
        assert lab.api_state(host) == (OLD, []) and lab.head(host) == heads[host]
    run = load_runs(lab.journal)[-1]
    assert run.status == "failed" and run.hosts[third].status == "rolled-back"
    assert all(run.hosts[h].status == "pending" and not run.hosts[h].steps for h in later)
    # A new rollout is refused while this one is unfinished.
    refused = lab.upgrade("--now", "--yes")
    assert refused.returncode != 0 and "unfinished rollout" in refused.stderr

    lab.lab("lab.heal")
    resumed = lab.upgrade("--resume", "--now", "--yes")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for host in order:
        assert lab.api_state(host) == (NEW, [])
    run = load_runs(lab.journal)[-1]
    assert run.status == "done"
    assert check_down_intervals(load_valid_inventory(lab.inventory).fleet, run.down) == []
    _assert_inbound_never_down_together(run)
