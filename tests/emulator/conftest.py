"""Fixtures for the Mailcow emulator's tests that need no lab (helpers in emulator_support)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator_support import EMULATOR, HOST_PYTHON, ApiServer, make_cert, start_api, stop_api, write_conf


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "mailcow-dockerized"
    make_cert(directory / "data/assets/ssl")
    write_conf(directory)
    return directory


@pytest.fixture()
def api(project: Path, tmp_path: Path) -> Iterator[ApiServer]:
    if not Path(HOST_PYTHON).exists():
        pytest.skip("the lab hosts' /usr/bin/python3 is absent")
    log = tmp_path / "postfix.log"
    server = start_api(project, tmp_path / "docker", log)
    try:
        yield server
    finally:
        stop_api(server)


@pytest.fixture(scope="session")
def emulated_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mailfleet.lab.emulator import build_mailcow_repository

    dest = tmp_path_factory.mktemp("repo") / "mailcow-dockerized.git"
    assert build_mailcow_repository(dest) == ["2026-07a", "2026-09"]
    return dest


@pytest.fixture()
def shim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PATH with the emulator's docker first; Docker root under tmp; never touch host services."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(EMULATOR / "docker")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", MAILCOW_EMULATOR_DOCKER_ROOT=str(tmp_path / "docker"),
               MAILCOW_EMULATOR_HOST_SERVICES="0", MAILCOW_EMULATOR_PROMPT_TIMEOUT="2")
    return env


