"""The command line: `mailfleet` and `invoke` are one namespace; inventory.check's exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def task_names(listing: str) -> list[str]:
    return sorted(re.findall(r"^  (\S+)", listing, flags=re.M))


def test_mailfleet_and_invoke_list_the_same_tasks() -> None:
    mailfleet = run(str(BIN / "mailfleet"), "--list")
    invoke = run(str(BIN / "invoke"), "--list")
    assert mailfleet.returncode == 0 and invoke.returncode == 0, mailfleet.stderr + invoke.stderr
    names = task_names(mailfleet.stdout)
    assert names == task_names(invoke.stdout)
    assert "inventory.check" in names and "trust-host" in names


def test_inventory_check_example_passes() -> None:
    result = run(str(BIN / "mailfleet"), "inventory.check", "--inventory", "inventory/example.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 hosts, 12 domains" in result.stdout


def test_inventory_check_reports_five_mistakes_with_lines(tmp_path: Path) -> None:
    text = (REPO / "inventory" / "example.yaml").read_text()
    bad = (text.replace("    roles: [monitoring]", "    roles: [monitorin]")
               .replace("  example.net:\n    inbound: {mx1: 10, mx2: 20}", "  example.net:\n    inbound: {mx1: 10, mx9: 20}")
               .replace("public_ips: [198.51.100.22]", "public_ips: [198.51.100.300]")
               .replace("maintenance_window: Sat 04:00-05:00 Europe/Berlin", "maintenance_window: Saturday 4 to 5")
               .replace("    dkim: {selector: s2026, key_size: 3072}", "    dkim: {selector: s2026, key_size: 3000}"))
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = run(str(BIN / "mailfleet"), "inventory.check", "--inventory", str(path))
    assert result.returncode == 1
    located = re.findall(rf"^{re.escape(str(path))}:(\d+):(\d+): (.*)$", result.stdout, flags=re.M)
    assert len(located) == 5, result.stdout
    lines = {int(line) for line, _, _ in located}
    expected_lines = {i + 1 for i, line in enumerate(bad.splitlines())
                      if any(s in line for s in ("monitorin]", "mx9", "198.51.100.300", "Saturday 4", "3000"))}
    assert lines == expected_lines
    assert "5 problems" in result.stderr


def test_other_tasks_refuse_an_invalid_inventory(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text((REPO / "inventory" / "example.yaml").read_text().replace("roles: [inbound]", "roles: [inbond]", 1))
    result = run(str(BIN / "mailfleet"), "trust-host", "--host", "mx1", "--inventory", str(path))
    assert result.returncode == 1
    assert "unknown role 'inbond'" in result.stderr
