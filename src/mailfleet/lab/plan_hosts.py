"""Which hosts a lab of N hosts has: the example fleet's roles, in a sensible mix for any N.

Six hosts reproduce ``inventory/example.yaml`` (mx1, mx2 inbound; relay1, relay2, tx1 outbound
relays; mon1 monitoring). Fewer hosts keep what matters most first: an MX, then a relay, a
second MX, the monitoring host, the transactional relay. More hosts add relays and MXs in turn.
The monitoring host always comes last in the list, like in the example.
"""

from __future__ import annotations

from mailfleet.lab.model import LabHost, LabPlanError, LabSpace

EXAMPLE_ORDER = ("mx1", "mx2", "relay1", "relay2", "tx1", "mon1")
EXAMPLE_ROLES = {
    "mx1": ("inbound",), "mx2": ("inbound",), "relay1": ("outbound-relay",),
    "relay2": ("outbound-relay",), "tx1": ("outbound-relay",), "mon1": ("monitoring",),
}
# The order in which hosts are kept when the lab is smaller than the example fleet.
KEEP_ORDER = ("mx1", "relay1", "mx2", "mon1", "tx1", "relay2")
MAX_HOSTS = 32
__all__ = ["LabPlanError", "plan_host_names", "plan_lab_hosts"]


def plan_host_names(count: int) -> list[tuple[str, tuple[str, ...], str]]:
    """``(name, roles, template)`` for a lab of ``count`` hosts, monitoring last."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_HOSTS:
        raise LabPlanError(
            f"a lab has 1 to {MAX_HOSTS} hosts, not {count!r}; --hosts 6 reproduces the example fleet"
        )
    kept = set(KEEP_ORDER[:count])
    names = [(n, EXAMPLE_ROLES[n], n) for n in EXAMPLE_ORDER if n in kept]
    extra = count - len(names)
    relay_no, mx_no = 3, 3
    for i in range(extra):
        if i % 2 == 0:
            names.append((f"relay{relay_no}", ("outbound-relay",), "relay2"))
            relay_no += 1
        else:
            names.append((f"mx{mx_no}", ("inbound",), "mx2"))
            mx_no += 1
    names.sort(key=lambda item: item[1] == ("monitoring",))
    return names


def plan_lab_hosts(count: int, space: LabSpace) -> list[LabHost]:
    """The hosts of a lab, each with its address, FQDN, namespace and link names."""
    usable = space.network.num_addresses - 2 - space.first_host_octet
    if count > usable:
        raise LabPlanError(f"{space.subnet} has room for {usable} lab hosts after .{space.first_host_octet}, not {count}")
    hosts = []
    for index, (name, roles, template) in enumerate(plan_host_names(count)):
        address = space.address(index)
        octet = int(address.rsplit(".", 1)[1])
        hosts.append(LabHost(name=name, roles=roles, address=address, fqdn=f"{name}.{space.domain}",
                             netns=space.netns(name), veth=space.veth(octet), template=template))
    return hosts
