"""Start a lab host's process tree and wait until it answers; stop it again.

A host is ``ip netns exec NS unshare --mount --uts --pid --fork --mount-proc --propagation
private --kill-child sh boot.sh``: the boot script becomes PID 1 of a fresh PID namespace and
then ``tini``, supervising ``sshd``. The launcher is detached with ``setsid --fork``, so the host
belongs to no terminal and to no caller (a test process, an Invoke run) and outlives it.
Killing the init (``tini``) ends every process of the host at once, like a crash.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from mailfleet.lab.model import HostRecord, LabHost
from mailfleet.lab.system import (
    TOOL_DIRS,
    LabError,
    kill,
    netns_inode,
    pids_in_netns,
    proc_alive,
    proc_children,
    proc_netns_inode,
    proc_start_time,
    wait_until,
)

START_TIMEOUT = 10.0
READY_TIMEOUT = 45.0


def apply_host_start(host: LabHost, host_dir: Path) -> HostRecord:
    """Launch the host's init; return its record once the init runs inside the namespace."""
    pid_file = host_dir / "launcher.pid"
    pid_file.unlink(missing_ok=True)
    console = host_dir / "console.log"
    script = 'echo $$ > "$0"; exec "$@"'
    args = ["setsid", "--fork", "sh", "-c", script, str(pid_file),
            "ip", "netns", "exec", host.netns,
            "unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc", "--propagation", "private",
            "--kill-child", "/bin/sh", str(host_dir / "boot.sh")]
    env = {"PATH": ":".join(TOOL_DIRS), "LANG": "C.UTF-8"}
    with open(console, "ab") as log:
        subprocess.run(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, check=True, timeout=10)
    if not wait_until(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), START_TIMEOUT):
        raise LabError(f"{host.name}: the host's launcher did not start; see {console}")
    launcher = int(pid_file.read_text())
    inode = netns_inode(host.netns)
    found: list[int] = []

    def init_running() -> bool:
        children = [c for c in proc_children(launcher) if proc_netns_inode(c) == inode]
        if children:
            found.append(children[0])
            return True
        return False

    if not wait_until(init_running, START_TIMEOUT):
        raise LabError(f"{host.name}: the host's init did not start in namespace {host.netns}; see {console}")
    init = found[0]
    start = proc_start_time(init) or 0
    return HostRecord(name=host.name, netns=host.netns, veth=host.veth, address=host.address, fqdn=host.fqdn,
                      roles=host.roles, launcher_pid=launcher, init_pid=init, init_start=start)


def host_running(record: HostRecord) -> bool:
    """The recorded init is alive (same start time, so not a reused PID) and in the host's namespace."""
    if not proc_alive(record.init_pid, record.init_start):
        return False
    inode = netns_inode(record.netns)
    return inode is not None and proc_netns_inode(record.init_pid) == inode


def apply_host_stop(record: HostRecord, timeout: float = 10.0) -> None:
    """Kill the host's init (its whole PID namespace dies with it), its launcher, and anything
    else that entered its network namespace; wait until none is left."""
    if proc_alive(record.init_pid, record.init_start):
        kill(record.init_pid)
    for pid in pids_in_netns(record.netns):
        kill(pid)
    if not wait_until(lambda: not pids_in_netns(record.netns), timeout):
        left = pids_in_netns(record.netns)
        raise LabError(f"{record.name}: processes {left} in namespace {record.netns} did not exit after SIGKILL")


def stop_netns_processes(netns: str, timeout: float = 10.0) -> None:
    for pid in pids_in_netns(netns):
        kill(pid)
    if not wait_until(lambda: not pids_in_netns(netns), timeout):
        raise LabError(f"processes {pids_in_netns(netns)} in namespace {netns} did not exit after SIGKILL")


def _banner(address: str, port: int, expect: bytes, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


def service_ports(host: LabHost | HostRecord) -> list[tuple[str, int, bytes]]:
    ports = [("ssh", 22, b"SSH-2.0-"), ("postfix", 25, b"220 ")]
    if "inbound" in host.roles:
        ports.append(("dovecot", 143, b"* OK"))
    return ports


def _connects(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def mailcow_https_port(host_dir: Path, install_dir: str) -> int | None:
    """The HTTPS port of an emulated Mailcow installed on the host (its mailcow.conf, read from
    the machine side of the host's /opt), or None when none is installed there."""
    if not install_dir.startswith("/opt/"):
        return None
    conf = host_dir / "opt" / install_dir.removeprefix("/opt/") / "mailcow.conf"
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "HTTPS_PORT" and value.strip().isdigit():
            return int(value.strip())
    return 443


def wait_host_ready(host: LabHost | HostRecord, host_dir: Path, deadline: float, install_dir: str = "") -> None:
    """Wait until sshd, Postfix and (on inbound hosts) Dovecot greet on the host's address, and
    an installed (emulated) Mailcow's HTTPS port accepts connections."""
    https = mailcow_https_port(host_dir, install_dir) if install_dir else None
    if https is not None:
        remaining = max(0.1, deadline - time.monotonic())
        if not wait_until(lambda: _connects(host.address, https), remaining, 0.1):
            raise LabError(
                f"{host.name}: the emulated Mailcow does not accept connections on {host.address}:{https} after "
                f"booting; see {host_dir / 'log' / 'lab-boot.log'}")
    for service, port, expect in service_ports(host):
        remaining = max(0.1, deadline - time.monotonic())
        if not wait_until(lambda: _banner(host.address, port, expect, 1.0), remaining, 0.1):
            raise LabError(
                f"{host.name}: {service} does not answer on {host.address}:{port} after {READY_TIMEOUT:.0f} s; "
                f"see {host_dir / 'log' / 'lab-boot.log'} and {host_dir / 'console.log'}; "
                "run `mailfleet lab.up` again to retry, or `mailfleet lab.down` to remove the lab"
            )
