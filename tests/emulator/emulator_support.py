"""Helpers for the Mailcow emulator's tests that need no lab: the runtime on sys.path, a
project directory with mailcow.conf and a certificate, an API server on 127.0.0.1 with a free
port (stopped by PID), and the docker shim first on PATH with host services disabled."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


EMULATOR = Path(__file__).resolve().parents[2] / "src" / "mailfleet" / "lab" / "emulator"
RUNTIME = EMULATOR / "runtime"
HOST_PYTHON = "/usr/bin/python3"
RW_KEY = "rw-Key-0123456789"
RO_KEY = "ro-Key-9876543210"

if str(RUNTIME) not in sys.path:
    sys.path.insert(0, str(RUNTIME))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_cert(directory: Path, cn: str = "mail.lab.test") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "key.pem"),
                    "-out", str(directory / "cert.pem"), "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
                   check=True, capture_output=True)


def write_conf(project: Path, **overrides: str) -> None:
    values = {"MAILCOW_HOSTNAME": "mail.lab.test", "IPV4_NETWORK": "172.22.1",
              "COMPOSE_PROJECT_NAME": "mailcowdockerized", "API_KEY": RW_KEY, "API_KEY_READ_ONLY": RO_KEY,
              "API_ALLOW_FROM": "172.22.1.1,127.0.0.1", "HTTPS_BIND": "127.0.0.1"}
    values.update(overrides)
    (project / "mailcow.conf").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


@dataclass
class ApiServer:
    base: str
    project: Path
    root: Path
    postfix_log: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"{self.base}/api/v1/{path}"


def start_api(project: Path, root: Path, postfix_log: Path) -> ApiServer:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(RUNTIME), MAILCOW_EMULATOR_HOST_SERVICES="0")
    process = subprocess.Popen([HOST_PYTHON, "-m", "mailcow_emulator.api_server", "--project-dir", str(project),
                                "--bind", "127.0.0.1", "--port", str(port), "--docker-root", str(root),
                                "--postfix-log", str(postfix_log)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stdout.read().decode() if process.stdout else "API server died")
            time.sleep(0.05)
    return ApiServer(f"https://127.0.0.1:{port}", project, root, postfix_log, process)


def stop_api(server: ApiServer) -> None:
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()


def clone(repo: Path, dest: Path, tag: str | None, env: dict[str, str]) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True, env=env)
    if tag:
        subprocess.run(["git", "-C", str(dest), "checkout", "-q", tag], check=True, env=env)
    return dest


def generate_config(checkout: Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    run_env = dict(env, MAILCOW_HOSTNAME="mail.lab.test", MAILCOW_TZ="UTC", **extra)
    return subprocess.run(["./generate_config.sh", "--dev"], cwd=checkout, env=run_env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)


def configure_api(checkout: Path, port: int) -> None:
    text = (checkout / "mailcow.conf").read_text()
    text = text.replace("HTTPS_PORT=443", f"HTTPS_PORT={port}").replace("HTTPS_BIND=\n", "HTTPS_BIND=127.0.0.1\n")
    text = text.replace("#API_KEY=\n", f"API_KEY={RW_KEY}\n").replace(
        "#API_ALLOW_FROM=172.22.1.1,127.0.0.1", "API_ALLOW_FROM=172.22.1.1,127.0.0.1")
    (checkout / "mailcow.conf").write_text(text)


def docker(checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)


def compose_down(checkout: Path, env: dict[str, str]) -> None:
    if (checkout / "mailcow.conf").exists() and shutil.which("git"):
        docker(checkout, env, "compose", "down")
