"""What a lab is made of, as plain data: its address space, its hosts and their recorded state.

A ``LabSpace`` names everything the lab creates on the machine (bridge, namespaces, veth links)
from one prefix, so a second, independent lab (the tests' own) can run beside the shared one
without touching it, and so ``lab.down`` can find leftovers by name even without a state file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mailfleet.errors import MailfleetError

LAB_DOMAIN = "lab.mailfleet.test"
MAILBOX_USER = "labuser"


class LabPlanError(MailfleetError, ValueError):
    """A lab that cannot be built as asked (size, names, addresses)."""


@dataclass(frozen=True)
class LabSpace:
    """The names and addresses of one lab instance."""

    prefix: str = "mflab"
    subnet: str = "10.77.0.0/24"
    first_host_octet: int = 11
    domain: str = LAB_DOMAIN

    @property
    def bridge(self) -> str:
        return f"{self.prefix}0"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def gateway(self) -> str:
        """The machine's own address on the bridge (first address of the subnet)."""
        return str(self.network.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def netns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def veth(self, octet: int) -> str:
        """Machine-side end of a host's link; short, because Linux caps link names at 15 bytes."""
        return f"{self.prefix}v{octet}"

    def address(self, index: int) -> str:
        return str(self.network.network_address + self.first_host_octet + index)


def parse_lab_space(prefix: str | None, subnet: str | None) -> LabSpace:
    """Check ``--prefix`` and ``--subnet``: short link names, a private IPv4 range with room."""
    import re
    prefix = prefix or LabSpace.prefix
    subnet = subnet or LabSpace.subnet
    if not re.fullmatch(r"[a-z][a-z0-9]{1,9}", prefix):
        raise LabPlanError(f"--prefix {prefix!r} must be 2-10 lower-case letters and digits, starting with a letter "
                         "(Linux caps link names at 15 characters)")
    try:
        network = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise LabPlanError(f"--subnet {subnet!r} is not an IPv4 network such as 10.78.0.0/24 ({exc})") from None
    if not network.is_private or network.prefixlen > 24:
        raise LabPlanError(f"--subnet {subnet} must be a private range of at least /24, e.g. 10.78.0.0/24, "
                         "so the lab never takes addresses of a real network")
    return LabSpace(prefix=prefix, subnet=str(network))


@dataclass(frozen=True)
class LabHost:
    """One planned lab host."""

    name: str
    roles: tuple[str, ...]
    address: str
    fqdn: str
    netns: str
    veth: str
    # Name of the example inventory's host whose settings (windows, mailcow_conf) this one takes.
    template: str

    @property
    def octet(self) -> int:
        return int(self.address.rsplit(".", 1)[1])

    @property
    def runs_dovecot(self) -> bool:
        """Inbound hosts keep mailboxes, so they serve IMAP."""
        return "inbound" in self.roles


@dataclass(frozen=True)
class HostRecord:
    """What ``lab.up`` recorded about a running host, to find (and stop) it again later."""

    name: str
    netns: str
    veth: str
    address: str
    fqdn: str
    roles: tuple[str, ...]
    launcher_pid: int = 0
    init_pid: int = 0
    init_start: int = 0  # the init's start time in clock ticks (/proc/PID/stat field 22): guards against PID reuse


@dataclass(frozen=True)
class LabState:
    """The lab's own record under its state folder; ``lab.down`` works from it without lab.yaml."""

    prefix: str
    subnet: str
    bridge: str
    inventory: str
    hosts: tuple[HostRecord, ...] = ()
    complete: bool = False
    iptables_rules: tuple[tuple[str, ...], ...] = ()
    created_run_netns_mount: bool = False
    install_dir: str = "/opt/mailcow-dockerized"
    mailcow_tags: tuple[str, ...] = ()
    faults: dict[str, tuple[str, ...]] = field(default_factory=dict)
