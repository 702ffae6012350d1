"""Pure edits of the round-trip inventory document that keep the user's comments and order.

``add-domain`` and ``trust-host`` change one entry each; everything else in the file stays
byte for byte as the user wrote it (the round-trip test proves it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq


def _flow_map(items: Mapping[str, Any]) -> CommentedMap:
    node = CommentedMap(items)
    node.fa.set_flow_style()
    return node


def _flow_seq(items: list[Any]) -> CommentedSeq:
    node = CommentedSeq(items)
    node.fa.set_flow_style()
    return node


def merge_domain(doc: Any, name: str, entry: Mapping[str, Any]) -> None:
    """Append domain ``name`` with ``entry`` at the end of ``domains`` (created if missing).

    Small mappings and lists are written in flow style (``{mx1: 10}``) like the example file.
    """
    if doc.get("domains") is None:
        doc["domains"] = CommentedMap()
    domains = doc["domains"]
    if name in domains:
        raise KeyError(name)
    node = CommentedMap()
    for key, value in entry.items():
        if isinstance(value, Mapping):
            node[key] = _flow_map(dict(value)) if all(not isinstance(v, (Mapping, list)) for v in value.values()) \
                else CommentedMap({k: (_flow_map(v) if isinstance(v, Mapping) else v) for k, v in value.items()})
        elif isinstance(value, list):
            node[key] = _flow_seq(list(value))
        else:
            node[key] = value
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
