"""Mailcow's sender-dependent relayhost rules (``functions.transports.inc.php``, ``relayhost``).

Domains and mailboxes point at a relayhost by id; deleting one resets them to ``"0"``.
"""

from __future__ import annotations

from typing import Any

from .rules_common import Deps, Entry, State, _entry, _flag, _items, _masked


def add_relayhost(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["relayhost", "add", _masked(attr)]
    hostname = str(attr.get("hostname", "") or "").strip()
    if not hostname:
        return [_entry("danger", log, "invalid_host")]
    rid = str(db["next_id"]["relayhost"])
    db["next_id"]["relayhost"] += 1
    db["relayhosts"][rid] = {"id": int(rid), "hostname": hostname, "username": str(attr.get("username", "") or ""),
                             "password": str(attr.get("password", "") or ""), "active": "1"}
    return [_entry("success", log, ["relayhost_added", ""])]


def edit_relayhost(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for rid in _items(body.get("items")):
        record = db["relayhosts"].get(str(rid))
        log = ["relayhost", "edit", _masked({**attr, "id": rid})]
        if record is None:
            out.append(_entry("danger", log, ["relayhost_invalid", str(rid)]))
            continue
        for key in ("hostname", "username", "password"):
            if key in attr:
                record[key] = str(attr[key] or "")
        if "active" in attr:
            record["active"] = _flag(attr["active"])
        out.append(_entry("success", log, ["object_modified", record["hostname"]]))
    return out


def delete_relayhost(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for rid in _items(items):
        log = ["relayhost", "delete", {"id": rid}]
        if db["relayhosts"].pop(str(rid), None) is None:
            out.append(_entry("danger", log, ["relayhost_invalid", str(rid)]))
            continue
        for record in list(db["domains"].values()) + list(db["mailboxes"].values()):
            if record.get("relayhost") == str(rid):
                record["relayhost"] = "0"
        out.append(_entry("success", log, ["relayhost_removed", str(rid)]))
    return out


def _relayhost_view(db: State, record: dict[str, Any]) -> dict[str, Any]:
    rid = str(record["id"])
    return {"id": record["id"], "hostname": record["hostname"], "username": record["username"],
            "password": record["password"], "password_short": record["password"][:3] + "…" if record["password"] else "",
            "active": int(record["active"]),
            "used_by_domains": ",".join(d for d, r in sorted(db["domains"].items()) if r["relayhost"] == rid),
            "used_by_mailboxes": ",".join(m for m, r in sorted(db["mailboxes"].items()) if r["relayhost"] == rid)}


def get_relayhost(db: State, redis: State, name: str, deps: Deps) -> Any:
    if name in ("", "all"):
        rows = [_relayhost_view(db, r) for _, r in sorted(db["relayhosts"].items(), key=lambda kv: int(kv[0]))]
        return rows or {}
    record = db["relayhosts"].get(name)
    return _relayhost_view(db, record) if record else {}
