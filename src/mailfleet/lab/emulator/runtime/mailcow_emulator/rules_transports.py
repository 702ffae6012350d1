"""Mailcow's transport-map rules (``functions.transports.inc.php``, ``transport``)."""

from __future__ import annotations

import re
from typing import Any

from .rules_common import Deps, Entry, State, _entry, _flag, _items, _masked, _split


def _bracket(nexthop: str) -> str:
    """Mailcow brackets an IP nexthop so Postfix skips the MX lookup."""
    host, sep, port = nexthop.rpartition(":") if nexthop.count(":") == 1 else (nexthop, "", "")
    host = host or nexthop
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host):
        host = f"[{host}]"
    return f"{host}{sep}{port}" if sep else host


def add_transport(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["transport", "add", _masked(attr)]
    nexthop = _bracket(str(attr.get("nexthop", "") or "").strip())
    destinations = _split(attr.get("destination", ""))
    username = str(attr.get("username", "") or "")
    password = str(attr.get("password", "") or "")
    if not nexthop or not destinations:
        return [_entry("danger", log, "invalid_nexthop")]
    for other in db["transports"].values():
        if other["nexthop"] == nexthop and username and (other["username"], other["password"]) != (username, password):
            return [_entry("danger", log, "invalid_nexthop_authenticated")]
    out = []
    for destination in destinations:
        destination = destination.lower()
        if any(t["destination"] == destination for t in db["transports"].values()):
            out.append(_entry("danger", log, ["transport_dest_exists", destination]))
            continue
        tid = str(db["next_id"]["transport"])
        db["next_id"]["transport"] += 1
        db["transports"][tid] = {"id": int(tid), "destination": destination, "nexthop": nexthop,
                                 "username": username, "password": password,
                                 "active": _flag(attr.get("active"), "1"),
                                 "is_mx_based": _flag(attr.get("is_mx_based"), "0")}
        out.append(_entry("success", log, ["relayhost_added", destination]))
    return out


def edit_transport(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for tid in _items(body.get("items")):
        record = db["transports"].get(str(tid))
        log = ["transport", "edit", _masked({**attr, "id": tid})]
        if record is None:
            out.append(_entry("danger", log, ["relayhost_invalid", str(tid)]))
            continue
        if "nexthop" in attr:
            record["nexthop"] = _bracket(str(attr["nexthop"]))
        for key in ("destination", "username", "password"):
            if key in attr:
                record[key] = str(attr[key] or "")
        for key in ("active", "is_mx_based"):
            if key in attr:
                record[key] = _flag(attr[key])
        out.append(_entry("success", log, ["object_modified", record["destination"]]))
    return out


def delete_transport(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for tid in _items(items):
        log = ["transport", "delete", {"id": tid}]
        if db["transports"].pop(str(tid), None) is None:
            out.append(_entry("danger", log, ["relayhost_invalid", str(tid)]))
            continue
        out.append(_entry("success", log, ["relayhost_removed", str(tid)]))
    return out


def _transport_view(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "destination": record["destination"], "nexthop": record["nexthop"],
            "username": record["username"], "password": record["password"],
            "password_short": record["password"][:3] + "…" if record["password"] else "",
            "active": int(record["active"]), "is_mx_based": int(record["is_mx_based"])}


def get_transport(db: State, redis: State, name: str, deps: Deps) -> Any:
    if name in ("", "all"):
        rows = [_transport_view(t) for _, t in sorted(db["transports"].items(), key=lambda kv: int(kv[0]))]
        return rows or {}
    record = db["transports"].get(name)
    return _transport_view(record) if record else {}
