"""The lab's network on the machine: one bridge, and per host a namespace and a veth pair.

Hosts get an address on the lab's own subnet and no default route, and the machine does not
forward for them (``ip_forward`` is left as it is, off on a fresh machine): nothing leaves.
Where br_netfilter passes bridged frames through iptables and a FORWARD policy of DROP (which
dockerd sets) would silently drop host-to-host traffic, the lab adds one ACCEPT rule for its
bridge, records it, and removes exactly that rule on ``lab.down``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

from mailfleet.lab.model import LabHost, LabSpace
from mailfleet.lab.system import LabError, run

RULE_COMMENT = "mailfleet-lab"


def link_exists(name: str) -> bool:
    return bool(name) and Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    return bool(name) and Path(f"/run/netns/{name}").exists()


def run_netns_is_mount() -> bool:
    """Whether /run/netns is a mount point (``ip netns add`` makes it one the first time)."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[4] == "/run/netns" for line in mounts)


def machine_addresses() -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address on the machine's interfaces, with the interface's name."""
    out = run(["ip", "-o", "-4", "addr", "show"]).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == "inet":
            found.append((parts[1], ipaddress.IPv4Interface(parts[3]).ip))
    return found


def apply_bridge(space: LabSpace) -> None:
    if not link_exists(space.bridge):
        run(["ip", "link", "add", space.bridge, "type", "bridge"])
    addr = run(["ip", "-o", "-4", "addr", "show", "dev", space.bridge]).stdout
    if f" {space.gateway}/{space.prefixlen} " not in addr:
        run(["ip", "addr", "add", f"{space.gateway}/{space.prefixlen}", "dev", space.bridge])
    run(["ip", "link", "set", space.bridge, "up"])


def apply_host_network(host: LabHost, space: LabSpace) -> None:
    """Create (or complete) the host's namespace and link; safe to repeat."""
    if not netns_exists(host.netns):
        run(["ip", "netns", "add", host.netns])
    if not link_exists(host.veth):
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", space.bridge, "up"])
    ns = ["ip", "-n", host.netns]
    run(ns + ["link", "set", "lo", "up"])
    addr = run(ns + ["-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    if f" {host.address}/{space.prefixlen} " not in addr:
        run(ns + ["addr", "add", f"{host.address}/{space.prefixlen}", "dev", "eth0"])
    run(ns + ["link", "set", "eth0", "up"])


def attached_to(veth: str, bridge: str) -> bool:
    """Whether the host's link exists and is a port of the lab's bridge."""
    try:
        return Path(f"/sys/class/net/{veth}/master").resolve().name == bridge
    except OSError:
        return False


def apply_attach(veth: str, bridge: str) -> None:
    """Put a running host's link back on the bridge (after the bridge was recreated); its
    up/down state is left alone, so a partition fault stays."""
    if link_exists(veth) and not attached_to(veth, bridge):
        run(["ip", "link", "set", veth, "master", bridge])


def set_link(host_veth: str, up: bool) -> None:
    if not link_exists(host_veth):
        raise LabError(f"link {host_veth} does not exist; is the lab up? Run `mailfleet lab.status`")
    run(["ip", "link", "set", host_veth, "up" if up else "down"])


def link_is_up(host_veth: str) -> bool:
    try:
        flags = int(Path(f"/sys/class/net/{host_veth}/flags").read_text(), 16)
    except (FileNotFoundError, ValueError):
        return False
    return bool(flags & 0x1)


def remove_host_network(netns: str, veth: str) -> None:
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if netns_exists(netns):
        run(["ip", "netns", "del", netns])


def remove_bridge(space: LabSpace) -> None:
    if link_exists(space.bridge):
        run(["ip", "link", "del", space.bridge])


def lab_link_names(space: LabSpace) -> list[str]:
    """Links on the machine that belong to this lab by name (for cleaning up without state)."""
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(f"{space.prefix}v") and n[len(space.prefix) + 1:].isdigit())


def lab_netns_names(space: LabSpace) -> list[str]:
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(f"{space.prefix}-"))


def _bridge_netfilter_active() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except FileNotFoundError:
        return False


def apply_forward_rule(space: LabSpace) -> tuple[tuple[str, ...], ...]:
    """Let frames between lab hosts through iptables' FORWARD chain; returns the rules added."""
    iptables = shutil.which("iptables", path="/usr/sbin:/sbin:/usr/bin")
    if iptables is None or not _bridge_netfilter_active():
        return ()
    rule = ("FORWARD", "-i", space.bridge, "-o", space.bridge, "-m", "comment", "--comment", RULE_COMMENT,
            "-j", "ACCEPT")
    if run(["iptables", "-C", *rule], check=False).returncode != 0:
        run(["iptables", "-I", *rule])
    return (rule,)


def remove_forward_rules(space: LabSpace, recorded: tuple[tuple[str, ...], ...]) -> None:
    if shutil.which("iptables", path="/usr/sbin:/sbin:/usr/bin") is None:
        return
    rules = list(recorded) or [("FORWARD", "-i", space.bridge, "-o", space.bridge, "-m", "comment", "--comment",
                                 RULE_COMMENT, "-j", "ACCEPT")]
    for rule in rules:
        for _ in range(10):  # a rule inserted twice by an interrupted run is removed twice
            if run(["iptables", "-D", *rule], check=False).returncode != 0:
                break


def remove_run_netns_mount() -> None:
    """Undo the /run/netns mount ``ip netns add`` made, once no namespace is left in it."""
    try:
        if os.listdir("/run/netns"):
            return
    except FileNotFoundError:
        return
    if run_netns_is_mount():
        run(["umount", "/run/netns"], check=False)
        if run_netns_is_mount():  # ip makes it a shared bind of itself; there can be two layers
            run(["umount", "/run/netns"], check=False)
    try:
        os.rmdir("/run/netns")
    except OSError:
        pass
