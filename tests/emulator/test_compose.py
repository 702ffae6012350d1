"""The lab host's ``docker``: compose subcommands on an emulated checkout, refusals, logs format,
and postfix-mailcow's main.cf checked by the real Postfix (``postfix -c DIR check``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from emulator_support import EMULATOR, clone, compose_down, configure_api, docker, free_port, generate_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="postfix check of the rendered config needs root")


@pytest.fixture()
def stack(emulated_repo: Path, tmp_path: Path, shim_env: dict[str, str]):
    checkout = clone(emulated_repo, tmp_path / "mailcow-dockerized", None, shim_env)
    assert generate_config(checkout, shim_env).returncode == 0
    configure_api(checkout, free_port())
    yield checkout
    compose_down(checkout, shim_env)


def rows(checkout: Path, env: dict[str, str], *extra: str) -> list[dict]:
    out = docker(checkout, env, "compose", "ps", "--format", "json", *extra).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_version_commands_and_refusals(tmp_path: Path, shim_env: dict[str, str]) -> None:
    assert "mailcow emulator" in docker(tmp_path, shim_env, "compose", "version").stdout
    assert docker(tmp_path, shim_env, "version", "--format", "{{.Server.Version}}").stdout.strip() == "24.0.9"
    refused = docker(tmp_path, shim_env, "run", "busybox")
    assert refused.returncode == 1 and "mailcow emulator" in refused.stderr and "docker compose" in refused.stderr
    not_a_checkout = docker(tmp_path, shim_env, "compose", "ps")
    assert not_a_checkout.returncode == 1


def test_up_without_mailcow_conf_says_to_run_generate_config(emulated_repo: Path, tmp_path: Path,
                                                              shim_env: dict[str, str]) -> None:
    checkout = clone(emulated_repo, tmp_path / "fresh", None, shim_env)
    result = docker(checkout, shim_env, "compose", "up", "-d")
    assert result.returncode == 1 and "generate_config.sh" in result.stderr


def test_up_ps_status_restart_down(stack: Path, shim_env: dict[str, str]) -> None:
    assert docker(stack, shim_env, "compose", "config", "-q").returncode == 0
    assert docker(stack, shim_env, "compose", "pull", "-q").returncode == 0
    up = docker(stack, shim_env, "compose", "up", "-d")
    assert up.returncode == 0, up.stderr
    running = rows(stack, shim_env)
    assert len(running) == 17 and {r["State"] for r in running} == {"running"}
    postfix = next(r for r in running if r["Service"] == "postfix-mailcow")
    assert postfix["Name"] == "mailcowdockerized-postfix-mailcow-1" and postfix["Project"] == "mailcowdockerized"
    assert postfix["Image"] == "ghcr.io/mailcow/postfix:3.10.14-1"
    again = docker(stack, shim_env, "compose", "up", "-d")
    assert again.returncode == 0 and "Started" not in again.stderr  # nothing changed, nothing restarted
    assert docker(stack, shim_env, "compose", "restart", "postfix-mailcow").returncode == 0
    assert docker(stack, shim_env, "compose", "build").returncode == 1
    unknown = docker(stack, shim_env, "compose", "restart", "no-such-mailcow")
    assert unknown.returncode == 1 and "no such service" in unknown.stderr
    assert docker(stack, shim_env, "compose", "down").returncode == 0
    assert rows(stack, shim_env, "-a") == []
    pid_file = Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"]) / "mailcow-emulator/mailcowdockerized/api.pid"
    assert not pid_file.exists()


def test_override_with_a_yaml_error_fails_config(stack: Path, shim_env: dict[str, str]) -> None:
    (stack / "docker-compose.override.yml").write_text("services:\n  postfix-mailcow:\n    image: [unclosed\n")
    result = docker(stack, shim_env, "compose", "config", "-q")
    assert result.returncode == 1 and "yaml" in result.stderr
    (stack / "docker-compose.override.yml").write_text("services:\n  postfix-mailcow:\n    logging:\n      driver: json-file\n")
    assert docker(stack, shim_env, "compose", "config", "-q").returncode == 0
    merged = docker(stack, shim_env, "compose", "config").stdout
    assert "json-file" in merged and "ghcr.io/mailcow/postfix" in merged


def test_bad_extra_cf_leaves_postfix_not_running_with_its_error_in_the_logs(stack: Path, shim_env: dict[str, str]) -> None:
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    (stack / "data/conf/postfix/extra.cf").write_text("inet_interfaces = no-such-host-xyz.invalid\n")
    restart = docker(stack, shim_env, "compose", "restart", "postfix-mailcow")
    assert restart.returncode == 1
    [postfix] = rows(stack, shim_env, "-a", "postfix-mailcow")
    assert postfix["State"] == "restarting"
    logs = docker(stack, shim_env, "compose", "logs", "--no-color", "--timestamps", "postfix-mailcow").stdout
    assert "fatal" in logs and "no-such-host-xyz.invalid" in logs
    line = logs.splitlines()[-1]
    assert re.match(r"^postfix-mailcow-1  \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", line), line
    (stack / "data/conf/postfix/extra.cf").write_text("mynetworks = 127.0.0.0/8 10.77.0.0/24\nmyhostname = other.example\n")
    assert docker(stack, shim_env, "compose", "restart", "postfix-mailcow").returncode == 0
    main_cf = (Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"]) /
               "mailcow-emulator/mailcowdockerized/postfix-etc/main.cf").read_text()
    overrides = main_cf.split("# User Overrides\n", 1)[1]
    assert overrides == "myhostname = mail.lab.test\nmynetworks = 127.0.0.0/8 10.77.0.0/24\n"
    tail = docker(stack, shim_env, "compose", "logs", "--tail", "1", "postfix-mailcow").stdout.splitlines()
    assert len(tail) == 1 and tail[0].startswith("postfix-mailcow-1  | ")
    assert docker(stack, shim_env, "compose", "logs", "--since", "1h", "postfix-mailcow").stdout
    assert docker(stack, shim_env, "compose", "logs", "--since", "nonsense").returncode == 1


def test_postfix_hooks_run_with_postconf_on_the_real_config(stack: Path, shim_env: dict[str, str]) -> None:
    hook = stack / "data/hooks/postfix/bulk.sh"
    hook.write_text("#!/bin/sh\npostconf -M bulk/unix='bulk unix - - n - - smtp'\necho hook ran\n")
    hook.chmod(0o755)
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    master = (Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"]) /
              "mailcow-emulator/mailcowdockerized/postfix-etc/master.cf").read_text()
    assert re.search(r"^bulk\s+unix\s", master, re.M)
    assert "hook ran" in docker(stack, shim_env, "compose", "logs", "postfix-mailcow").stdout
    assert subprocess.run(["git", "status", "--porcelain"], cwd=stack, capture_output=True, text=True).stdout == ""


def test_exec_runs_only_in_the_host_backed_services(stack: Path, shim_env: dict[str, str]) -> None:
    stopped = docker(stack, shim_env, "compose", "exec", "-T", "postfix-mailcow", "true")
    assert stopped.returncode == 1 and 'service "postfix-mailcow" is not running' in stopped.stderr
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    assert docker(stack, shim_env, "compose", "exec", "-T", "postfix-mailcow", "postconf", "-d", "mail_version").returncode == 0
    refused = docker(stack, shim_env, "compose", "exec", "-T", "redis-mailcow", "redis-cli", "ping")
    assert refused.returncode == 1 and "not emulated" in refused.stderr


def test_shim_is_stdlib_only_under_the_host_python() -> None:
    shim = EMULATOR / "docker"
    assert shim.read_text().startswith("#!/usr/bin/python3\n") and os.access(shim, os.X_OK)
    from mailfleet.lab.emulator import docker_shim_path

    assert docker_shim_path() == shim


def test_api_keys_are_reread_at_up_like_php_fpm(stack: Path, shim_env: dict[str, str]) -> None:
    import warnings

    import requests

    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    conf = (stack / "mailcow.conf").read_text()
    port = next(l for l in conf.splitlines() if l.startswith("HTTPS_PORT="))[11:]
    url = f"https://127.0.0.1:{port}/api/v1/get/status/version"

    def status(key: str) -> int:
        with warnings.catch_warnings():  # snake-oil certificate for mail.lab.test
            warnings.simplefilter("ignore")
            return requests.get(url, headers={"X-API-Key": key}, verify=False, timeout=30).status_code

    from emulator_support import RW_KEY

    assert status(RW_KEY) == 200
    (stack / "mailcow.conf").write_text(conf.replace(f"API_KEY={RW_KEY}", "API_KEY=rotated-Key-42"))
    assert status("rotated-Key-42") == 401  # the running php-fpm still has the old environment
    assert docker(stack, shim_env, "compose", "up", "-d").returncode == 0
    assert status("rotated-Key-42") == 200 and status(RW_KEY) == 401
