"""Thin wrappers over the machine's tools (``ip``, ``kill``, ``/proc``) used by the lab.

Commands are argument lists, never shell strings. A failing command becomes a ``LabError``
naming the command and its output, so the user sees what the machine said.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from mailfleet.errors import MailfleetError


class LabError(MailfleetError):
    """The lab could not be built, changed or removed."""


REQUIRED_TOOLS = {
    "ip": "iproute2", "unshare": "util-linux", "nsenter": "util-linux", "setsid": "util-linux",
    "tini": "tini", "sshd": "openssh-server", "ssh-keygen": "openssh-client", "postfix": "postfix",
    "dovecot": "dovecot-imapd",
}
TOOL_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def gather_missing_tools() -> list[str]:
    missing = []
    search = os.pathsep.join([os.environ.get("PATH", ""), *TOOL_DIRS])
    for tool, package in REQUIRED_TOOLS.items():
        if shutil.which(tool, path=search) is None:
            missing.append(f"{tool} (Debian package {package})")
    return missing


def require_lab_machine() -> None:
    """The lab needs root (namespaces, mounts, links) and a handful of Debian packages."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root: it creates network namespaces, links and mounts; run it as root")
    missing = gather_missing_tools()
    if missing:
        raise LabError(
            "the lab needs these tools, which are missing: " + ", ".join(missing)
            + "; install them with apt-get install and run the command again"
        )


def run(args: Sequence[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.pathsep.join(TOOL_DIRS + ("/usr/local/bin",)), "LANG": "C"}
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed; install it and run the command again") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(args)}` did not finish within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise LabError(f"`{' '.join(args)}` failed (exit {result.returncode}): {output}")
    return result


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses; fields restart after ')'.
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def proc_alive(pid: int, start_time: int) -> bool:
    return pid > 0 and start_time > 0 and proc_start_time(pid) == start_time


def proc_children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [int(x) for x in text.split()]


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def proc_netns_inode(pid: int) -> int | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return int(link[link.index("[") + 1:-1])


def pids_in_netns(name: str) -> list[int]:
    """Every live process whose network namespace is the named one (what ``ip netns pids`` does)."""
    inode = netns_inode(name)
    if inode is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and proc_netns_inode(int(entry)) == inode and proc_start_time(int(entry)) is not None:
            found.append(int(entry))
    return found


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
