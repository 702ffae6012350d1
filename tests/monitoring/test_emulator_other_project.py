"""The lab's ``docker`` shim records a non-Mailcow compose project (Grafana on mon1) as running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SHIM = Path(__file__).resolve().parents[2] / "src" / "mailfleet" / "lab" / "emulator" / "docker"


def _docker(tmp_path: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "MAILCOW_EMULATOR_DOCKER_ROOT": str(tmp_path / "docker")}
    return subprocess.run([sys.executable, str(SHIM), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=30)


def test_other_project_up_ps_down(tmp_path: Path) -> None:
    project = tmp_path / "grafana"
    project.mkdir()
    (project / "docker-compose.yml").write_text("name: mailfleet-grafana\nservices:\n  grafana:\n    image: g\n"
                                                "    ports: ['127.0.0.1:3000:3000']\nvolumes:\n  data: {}\n")
    assert _docker(tmp_path, project, "compose", "ps", "--format", "json").stdout == ""
    assert _docker(tmp_path, project, "compose", "pull", "-q").returncode == 0
    assert _docker(tmp_path, project, "compose", "up", "-d").returncode == 0
    rows = [json.loads(line) for line in _docker(tmp_path, project, "compose", "ps", "--format", "json").stdout.splitlines()]
    assert [(r["Service"], r["State"], r["Project"]) for r in rows] == [("grafana", "running", "mailfleet-grafana")]
    assert _docker(tmp_path, tmp_path, "compose", "-f", str(project / "docker-compose.yml"), "ps").stdout.strip()
    assert _docker(tmp_path, project, "compose", "down").returncode == 0
    assert _docker(tmp_path, project, "compose", "ps", "--format", "json").stdout == ""
    refused = _docker(tmp_path, project, "compose", "logs")
    assert refused.returncode == 1 and "not emulated" in refused.stderr


def test_a_mailcow_checkout_is_not_an_other_project(tmp_path: Path) -> None:
    checkout = tmp_path / "mailcow"
    checkout.mkdir()
    (checkout / "docker-compose.yml").write_text("services:\n  postfix-mailcow:\n    image: p\n")
    (checkout / "generate_config.sh").write_text("#!/bin/sh\n")
    done = _docker(tmp_path, checkout, "compose", "up", "-d")
    assert "recorded by the mailcow emulator, no process" not in done.stderr
