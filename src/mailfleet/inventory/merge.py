"""Pure edits of the round-trip inventory document that keep the user's comments and order.

``add-domain`` and ``trust-host`` change one entry each; everything else in the file stays
byte for byte as the user wrote it (the round-trip test proves it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq


FLOW_WIDTH = 72


def _flow_length(value: Any) -> int:
    if isinstance(value, Mapping):
        return 2 + sum(len(str(k)) + 2 + _flow_length(v) + 2 for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(_flow_length(v) + 2 for v in value)
    return len(str(value))


def _node(value: Any) -> Any:
    """Flow style (``{mx1: 10}``) where it fits on a line, block style otherwise, like example.yaml."""
    if isinstance(value, Mapping):
        node = CommentedMap((k, _node(v)) for k, v in value.items())
        if _flow_length(value) <= FLOW_WIDTH:
            _set_flow(node)
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_node(v) for v in value)
        if _flow_length(value) <= FLOW_WIDTH:
            _set_flow(seq)
        return seq
    return value


def _set_flow(node: Any) -> None:
    node.fa.set_flow_style()
    for child in (node.values() if isinstance(node, Mapping) else node):
        if isinstance(child, (CommentedMap, CommentedSeq)):
            _set_flow(child)


def merge_domain(doc: Any, name: str, entry: Mapping[str, Any]) -> None:
    """Append domain ``name`` with ``entry`` at the end of ``domains`` (created if missing)."""
    if not doc.get("domains"):
        doc["domains"] = CommentedMap()  # block style, even where the file said `domains: {}`
    domains = doc["domains"]
    if name in domains:
        raise KeyError(name)
    node = CommentedMap()
    for key, value in entry.items():
        node[key] = _node(value)
    domains[name] = node


def merge_host_key(doc: Any, host: str, host_key: str) -> bool:
    """Set (or replace) ``hosts.<host>.host_key``; return whether the document changed."""
    entry = doc["hosts"][host]
    if entry.get("host_key") == host_key:
        return False
    if "host_key" in entry:
        entry["host_key"] = host_key
    else:
        position = list(entry).index("ssh_user") + 1 if "ssh_user" in entry else \
            list(entry).index("address") + 1 if "address" in entry else 0
        entry.insert(position, "host_key", host_key)
    return True
