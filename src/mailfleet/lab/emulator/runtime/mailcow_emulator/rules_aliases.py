"""Mailcow's alias rules (``functions.mailbox.inc.php``, ``add/edit/delete/get alias``)."""

from __future__ import annotations

from typing import Any

from .rules_common import (_LOCAL, Deps, Entry, State, _address_taken, _entry, _flag, _items, _masked, _split,
                           valid_domain)


def _valid_alias_address(address: str) -> bool:
    if address.startswith("@"):
        return valid_domain(address[1:])
    local, _, domain = address.rpartition("@")
    return bool(local) and bool(_LOCAL.match(local)) and valid_domain(domain)


def add_alias(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["mailbox", "add", "alias", _masked(attr), None]
    out = []
    gotos = _split(attr.get("goto", ""))
    special = next((g for g in ("goto_null", "goto_spam", "goto_ham") if _flag(attr.get(g)) == "1"), None)
    if not special and (not gotos or not all(_valid_alias_address(g) and not g.startswith("@") for g in gotos)):
        return [_entry("danger", log, "goto_invalid")]
    for address in _split(attr.get("address", "")):
        address = address.lower()
        if not _valid_alias_address(address):
            out.append(_entry("danger", log, ["alias_invalid", address]))
            continue
        domain = address.rpartition("@")[2]
        if domain not in db["domains"]:
            out.append(_entry("danger", log, ["domain_not_found", domain]))
            continue
        if _address_taken(db, address):
            out.append(_entry("danger", log, ["is_alias_or_mailbox", address]))
            continue
        alias_id = str(db["next_id"]["alias"])
        db["next_id"]["alias"] += 1
        goto = {"goto_null": "null@localhost", "goto_spam": "spam@localhost", "goto_ham": "ham@localhost"}.get(
            special or "", ",".join(gotos))
        db["aliases"][alias_id] = {"id": int(alias_id), "address": address, "goto": goto, "domain": domain,
                                   "active": _flag(attr.get("active"), "1"), "created": deps.now(), "modified": None}
        out.append(_entry("success", log, ["alias_added", address]))
    return out or [_entry("danger", log, "alias_invalid")]


def edit_alias(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for alias_id in _items(body.get("items")):
        record = db["aliases"].get(str(alias_id))
        log = ["mailbox", "edit", "alias", _masked({**attr, "id": alias_id}), None]
        if record is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        if "goto" in attr:
            gotos = _split(attr["goto"])
            if not gotos or not all(_valid_alias_address(g) for g in gotos):
                out.append(_entry("danger", log, "goto_invalid"))
                continue
            record["goto"] = ",".join(gotos)
        if "active" in attr:
            record["active"] = _flag(attr["active"])
        record["modified"] = deps.now()
        out.append(_entry("success", log, ["alias_modified", record["address"]]))
    return out


def delete_alias(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for alias_id in _items(items):
        record = db["aliases"].pop(str(alias_id), None)
        log = ["mailbox", "delete", "alias", {"id": alias_id}, None]
        if record is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        out.append(_entry("success", log, ["alias_removed", record["address"]]))
    return out


def _alias_view(db: State, record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record["id"], "domain": record["domain"], "public_comment": "", "private_comment": "",
            "in_primary_domain": record["domain"], "address": record["address"], "goto": record["goto"],
            "is_catch_all": 1 if record["address"].startswith("@") else 0, "active": int(record["active"]),
            "active_int": int(record["active"]), "sogo_visible": 1, "sogo_visible_int": 1,
            "created": record["created"], "modified": record["modified"]}


def get_alias(db: State, redis: State, name: str, deps: Deps) -> Any:
    if name in ("", "all"):
        rows = [_alias_view(db, a) for _, a in sorted(db["aliases"].items(), key=lambda kv: int(kv[0]))]
        return rows or {}
    record = db["aliases"].get(name)
    return _alias_view(db, record) if record else {}
