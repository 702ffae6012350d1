"""The emulated mailcow-dockerized scripts: generate_config.sh, update.sh, backup_and_restore.sh.

Runs as root (update.sh refuses otherwise) on a clone of the emulator's repository, with the
docker shim first on PATH, the Docker root under tmp and host services disabled.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import pytest
from emulator_support import (RW_KEY, clone, compose_down, configure_api, docker, free_port, generate_config)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="update.sh and backups need root, as on a Mailcow host")


def run(checkout: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=checkout, env=env, capture_output=True, text=True, timeout=180,
                          input=stdin if stdin is not None else "")


@pytest.fixture()
def checkout(emulated_repo: Path, tmp_path: Path, shim_env: dict[str, str]):
    directory = clone(emulated_repo, tmp_path / "mailcow-dockerized", "2026-07a", shim_env)
    yield directory
    compose_down(directory, shim_env)


def test_repository_has_two_tags_master_at_newest_and_the_real_layout(emulated_repo: Path) -> None:
    git = ["git", "--git-dir", str(emulated_repo)]
    assert subprocess.run([*git, "tag"], capture_output=True, text=True).stdout.split() == ["2026-07a", "2026-09"]
    master = subprocess.run([*git, "rev-parse", "master"], capture_output=True, text=True).stdout
    assert master == subprocess.run([*git, "rev-parse", "2026-09^{commit}"], capture_output=True, text=True).stdout
    tree = subprocess.run([*git, "ls-tree", "-r", "master"], capture_output=True, text=True).stdout
    assert "120000 blob" in next(line for line in tree.splitlines() if line.endswith("\t.env"))
    names = {line.split("\t")[1] for line in tree.splitlines()}
    assert {"generate_config.sh", "update.sh", "helper-scripts/backup_and_restore.sh", "docker-compose.yml",
            "data/conf/postfix/main.cf", "data/conf/postfix/master.cf", ".gitignore",
            "data/Dockerfiles/emulator/VERSION"} <= names
    ignore = subprocess.run([*git, "show", "master:.gitignore"], capture_output=True, text=True).stdout
    for entry in ("mailcow.conf", "docker-compose.override.yml", "data/conf/postfix/extra.cf",
                  "data/conf/rspamd/override.d/", "data/hooks/*/*.sh"):
        assert entry in ignore.splitlines()
    compose = subprocess.run([*git, "show", "2026-07a:docker-compose.yml"], capture_output=True, text=True).stdout
    assert "ghcr.io/mailcow/postfix:3.10.12-1" in compose and "ofelia-mailcow:" in compose


def test_build_is_idempotent(emulated_repo: Path) -> None:
    from mailfleet.lab.emulator import build_mailcow_repository

    before = subprocess.run(["git", "--git-dir", str(emulated_repo), "rev-parse", "master"], capture_output=True).stdout
    assert build_mailcow_repository(emulated_repo) == ["2026-07a", "2026-09"]
    after = subprocess.run(["git", "--git-dir", str(emulated_repo), "rev-parse", "master"], capture_output=True).stdout
    assert before == after


def test_generate_config_non_interactive(checkout: Path, shim_env: dict[str, str]) -> None:
    result = generate_config(checkout, shim_env, MAILCOW_DBPASS="fixedDbPass123", SKIP_CLAMD="y")
    assert result.returncode == 0, result.stdout + result.stderr
    conf = (checkout / "mailcow.conf").read_text()
    assert stat.S_IMODE((checkout / "mailcow.conf").stat().st_mode) == 0o600
    assert "MAILCOW_HOSTNAME=mail.lab.test\n" in conf and "DBPASS=fixedDbPass123\n" in conf
    assert "SKIP_CLAMD=y\n" in conf and "IPV4_NETWORK=172.22.1\n" in conf and "TZ=UTC\n" in conf
    for line in ("#API_KEY=", "#API_KEY_READ_ONLY=", "#API_ALLOW_FROM=172.22.1.1,127.0.0.1"):
        assert line in conf.splitlines()
    dbroot = next(l for l in conf.splitlines() if l.startswith("DBROOT="))
    assert len(dbroot) == len("DBROOT=") + 28
    assert (checkout / "data/assets/ssl/cert.pem").exists() and (checkout / "data/assets/ssl/key.pem").exists()
    assert '$MAILCOW_GIT_VERSION="2026-07a";' in (checkout / "data/web/inc/app_info.inc.php").read_text()
    assert subprocess.run(["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True).stdout == ""


def test_generate_config_refuses_to_overwrite_without_an_answer(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    before = (checkout / "mailcow.conf").read_text()
    again = generate_config(checkout, shim_env)
    assert again.returncode != 0 and "A config file exists and will be overwritten" in again.stderr
    assert (checkout / "mailcow.conf").read_text() == before


def test_generate_config_hostname_rules(checkout: Path, shim_env: dict[str, str]) -> None:
    no_dot = subprocess.run(["./generate_config.sh", "--dev"], cwd=checkout, capture_output=True, text=True,
                            env=dict(shim_env, MAILCOW_HOSTNAME="localhost", MAILCOW_TZ="UTC"), stdin=subprocess.DEVNULL)
    assert no_dot.returncode == 1 and "is not a FQDN" in no_dot.stdout
    one_dot = subprocess.run(["./generate_config.sh", "--dev"], cwd=checkout, capture_output=True, text=True,
                             env=dict(shim_env, MAILCOW_HOSTNAME="example.com", MAILCOW_TZ="UTC"), stdin=subprocess.DEVNULL)
    assert one_dot.returncode == 1 and "does not contain a Subdomain" in one_dot.stdout
    assert not (checkout / "mailcow.conf").exists()


def test_update_check_exit_codes_exit_2_then_update_to_the_next_tag(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    configure_api(checkout, free_port())
    assert docker(checkout, shim_env, "compose", "up", "-d").returncode == 0
    check = run(checkout, shim_env, "./update.sh", "--check")
    assert check.returncode == 0 and "Updated code is available." in check.stdout
    assert run(checkout, shim_env, "./update.sh", "--check-tags").returncode == 0

    first = run(checkout, shim_env, "./update.sh", "--force", "--skip-ping-check")
    assert first.returncode == 2, first.stdout + first.stderr
    assert "_modules have been updated. Please restart the update script." in first.stdout
    second = run(checkout, shim_env, "./update.sh", "--force", "--skip-ping-check")
    assert second.returncode == 0, second.stdout + second.stderr

    log = subprocess.run(["git", "log", "--format=%s"], cwd=checkout, capture_output=True, text=True).stdout
    assert log.splitlines()[1].startswith("Before update on ")
    assert (checkout / "data/Dockerfiles/emulator/VERSION").read_text().strip() == "2026-09"
    assert run(checkout, shim_env, "./update.sh", "--check").returncode == 3
    ps = [json.loads(l) for l in docker(checkout, shim_env, "compose", "ps", "--format", "json").stdout.splitlines()]
    postfix = next(row for row in ps if row["Service"] == "postfix-mailcow")
    assert postfix["Image"] == "ghcr.io/mailcow/postfix:3.10.14-1" and postfix["State"] == "running"
    import requests

    port = next(l for l in (checkout / "mailcow.conf").read_text().splitlines() if l.startswith("HTTPS_PORT="))[11:]
    with warnings.catch_warnings():  # the snake-oil certificate names mail.lab.test, not 127.0.0.1
        warnings.simplefilter("ignore")
        version = requests.get(f"https://127.0.0.1:{port}/api/v1/get/status/version", headers={"X-API-Key": RW_KEY},
                               verify=False, timeout=30)
    assert version.json() == {"version": "2026-09"}


def test_update_check_on_fetch_failure_is_99(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    subprocess.run(["git", "remote", "set-url", "origin", str(checkout.parent / "missing.git")], cwd=checkout, check=True)
    assert run(checkout, shim_env, "./update.sh", "--check").returncode == 99


def test_update_must_run_from_the_install_dir(checkout: Path, shim_env: dict[str, str]) -> None:
    result = run(checkout / "data", shim_env, str(checkout / "update.sh"), "--check")
    assert result.returncode == 1 and "mailcow.conf" in result.stdout


def test_injected_update_failure_leaves_the_stack_down(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    configure_api(checkout, free_port())
    assert docker(checkout, shim_env, "compose", "up", "-d").returncode == 0
    faults = Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"]) / "mailcow-emulator/faults.json"
    faults.parent.mkdir(parents=True, exist_ok=True)
    faults.write_text(json.dumps({"update-fails": True}))
    assert run(checkout, shim_env, "./update.sh", "--force", "--skip-ping-check").returncode == 2
    failed = run(checkout, shim_env, "./update.sh", "--force", "--skip-ping-check")
    assert failed.returncode == 1 and "injected fault update-fails" in failed.stdout
    assert docker(checkout, shim_env, "compose", "ps", "--format", "json").stdout.strip() == ""
    log = subprocess.run(["git", "log", "--format=%s"], cwd=checkout, capture_output=True, text=True).stdout
    assert "Before update on" in log


def test_update_without_an_answer_changes_nothing(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    subprocess.run(["git", "checkout", "-q", "origin/master", "--", "_modules", "update.sh"], cwd=checkout, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout
    result = run(checkout, shim_env, "./update.sh", "--skip-ping-check")
    assert result.returncode == 0 and "OK, exiting." in result.stdout
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout == head


def test_backup_contents_include_the_dkim_store(checkout: Path, shim_env: dict[str, str], tmp_path: Path) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    root = Path(shim_env["MAILCOW_EMULATOR_DOCKER_ROOT"])
    redis = root / "volumes/mailcowdockerized_redis-vol-1/_data"
    redis.mkdir(parents=True)
    (redis / "dkim.json").write_text('{"DKIM_SELECTORS": {"example.org": "dkim"}}')
    location = tmp_path / "backups"
    location.mkdir(mode=0o700)
    location.chmod(0o700)
    env = dict(shim_env, MAILCOW_BACKUP_LOCATION=str(location), THREADS="2")
    refused = run(checkout, env, "./helper-scripts/backup_and_restore.sh", "backup", "all")
    assert refused.returncode == 1 and "not write-able for others" in refused.stdout
    location.chmod(0o755)
    assert run(checkout, env, "./helper-scripts/backup_and_restore.sh", "backup", "nope").returncode == 1
    done = run(checkout, env, "./helper-scripts/backup_and_restore.sh", "backup", "all", "--delete-days", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    [folder] = list(location.glob("mailcow-*"))
    assert len(folder.name) == len("mailcow-YYYY-MM-DD-HH-MM-SS")
    names = {p.name for p in folder.iterdir()}
    ext, flag = ("zst", "--zstd") if shutil.which("zstd") else ("gz", "--gzip")  # the script says which
    assert {"mailcow.conf", f"backup_vmail.tar.{ext}", f"backup_redis.tar.{ext}", f"backup_mariadb.tar.{ext}",
            f"backup_crypt.tar.{ext}", f"backup_rspamd.tar.{ext}", f"backup_postfix.tar.{ext}"} <= names
    listing = subprocess.run(["tar", flag, "-tf", str(folder / f"backup_redis.tar.{ext}")], capture_output=True,
                             text=True, check=True).stdout.split()
    assert "redis/dkim.json" in listing
    relative = run(checkout, dict(env, MAILCOW_BACKUP_LOCATION="backups"), "./helper-scripts/backup_and_restore.sh",
                   "backup", "redis")
    assert relative.returncode == 1 and "absolute path" in relative.stdout


def test_update_hooks_prefetch_and_skip_start(checkout: Path, shim_env: dict[str, str]) -> None:
    assert generate_config(checkout, shim_env).returncode == 0
    configure_api(checkout, free_port())
    (checkout / "pre_update_hook.sh").write_text("#!/bin/sh\necho pre >> hooks.log\n")
    (checkout / "post_update_hook.sh").write_text("#!/bin/sh\necho post >> hooks.log\n")
    for hook in ("pre_update_hook.sh", "post_update_hook.sh"):
        (checkout / hook).chmod(0o755)
    subprocess.run(["git", "checkout", "-q", "origin/master", "--", "_modules", "update.sh"], cwd=checkout, check=True)
    prefetch = run(checkout, shim_env, "./update.sh", "--prefetch")
    assert prefetch.returncode == 0 and "ghcr.io/mailcow/postfix:3.10.14-1" in prefetch.stdout
    assert (checkout / "hooks.log").read_text() == "pre\n"
    done = run(checkout, shim_env, "./update.sh", "--force", "--skip-ping-check", "--skip-start")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (checkout / "hooks.log").read_text() == "pre\npre\npost\n"
    assert docker(checkout, shim_env, "compose", "ps", "--format", "json").stdout.strip() == ""
