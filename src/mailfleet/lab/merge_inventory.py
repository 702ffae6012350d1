"""Turn ``inventory/example.yaml`` into the lab's inventory, keeping the example's shape.

Fleet settings, each host's roles, windows and ``mailcow_conf`` come from the example; what
differs on the lab replaces it: addresses, pinned host keys, FQDNs, public IPs, API key
references, the emulated Mailcow repository (pinned to its older tag, so ``upgrade`` has work),
the lab's secrets folder and SSH key, its trusted network, and no domains yet (the README's main
job adds the example's domains with ``add-domain``). Pure: text in, text out.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from mailfleet.lab.model import LabHost

HEADER = """\
# The lab's inventory, written by `mailfleet lab.up` from inventory/example.yaml.
# Do not edit: `mailfleet lab.down` removes it and `lab.up` writes it again. The hosts are
# network namespaces on this machine (bridge {bridge}, {subnet}); their host keys are pinned
# below; secrets are in secrets/lab/ (mode 0600). Mailcow on these hosts is the lab's EMULATOR
# (mailfleet.lab.emulator), not the real Mailcow.

"""


@dataclass(frozen=True)
class LabInventoryInput:
    hosts: Sequence[LabHost]
    host_keys: Mapping[str, str]
    repository_url: str
    version: str | None
    subnet: str
    bridge: str


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _strip_leading_comments(text: str) -> str:
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines) and (lines[index].startswith("#") or not lines[index].strip()):
        index += 1
    return "".join(lines[index:])


def _flow(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _set(entry: CommentedMap, key: str, value: object, after: str | None = None) -> None:
    if key in entry:
        entry[key] = value
    elif after is not None and after in entry:
        entry.insert(list(entry).index(after) + 1, key, value)
    else:
        entry[key] = value


def merge_lab_inventory(example_text: str, data: LabInventoryInput) -> str:
    """The lab inventory's text."""
    yaml = _yaml()
    doc = yaml.load(_strip_leading_comments(example_text))
    fleet = doc["fleet"]
    fleet["name"] = "lab"
    mailcow = fleet.setdefault("mailcow", CommentedMap())
    mailcow["repository"] = data.repository_url
    if data.version:
        mailcow["version"] = data.version
    fleet["secrets_dir"] = "secrets/lab"
    fleet["ssh_identity"] = "file:secrets/lab/id_ed25519"
    fleet["trusted_networks"] = _flow([data.subnet])

    example_hosts = doc["hosts"]
    new_hosts = CommentedMap()
    for host in data.hosts:
        entry = copy.deepcopy(example_hosts[host.template]) if host.template in example_hosts else CommentedMap()
        _set(entry, "address", host.address)
        _set(entry, "host_key", data.host_keys[host.name], after="ssh_user" if "ssh_user" in entry else "address")
        _set(entry, "hostname", host.fqdn, after="host_key")
        _set(entry, "roles", _flow(list(host.roles)), after="hostname")
        _set(entry, "public_ips", _flow([host.address]), after="roles")
        if "inbound" in host.roles or "outbound-relay" in host.roles:
            _set(entry, "api_key", f"file:secrets/lab/{host.name}.api-key", after="public_ips")
        else:
            entry.pop("api_key", None)
        new_hosts[host.name] = entry
    doc["hosts"] = new_hosts
    doc["domains"] = CommentedMap()
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    return HEADER.format(bridge=data.bridge, subnet=data.subnet) + buffer.getvalue()
