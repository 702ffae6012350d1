"""Mailcow's mailbox rules (``functions.mailbox.inc.php``, ``add/edit/delete/get mailbox``)."""

from __future__ import annotations

from typing import Any

from .rules_common import (_LOCAL, MIB, Deps, Entry, State, _address_taken, _entry, _flag, _int, _items, _masked,
                           valid_domain)


def add_mailbox(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["mailbox", "add", "mailbox", _masked(attr), None]
    local = str(attr.get("local_part", "")).strip().lower()
    domain = str(attr.get("domain", "")).strip().lower()
    username = f"{local}@{domain}"
    record = db["domains"].get(domain)
    if not _LOCAL.match(local) or not valid_domain(domain):
        return [_entry("danger", log, ["mailbox_invalid", username])]
    if record is None:
        return [_entry("danger", log, ["domain_not_found", domain])]
    if _address_taken(db, username):
        return [_entry("danger", log, ["object_exists", username])]
    password = str(attr.get("password", "") or "")
    if not password:
        return [_entry("danger", log, "password_empty")]
    if password != str(attr.get("password2", password)):
        return [_entry("danger", log, "password_mismatch")]
    quota = _int(attr.get("quota"), record["defquota_mib"])
    if quota > record["maxquota_mib"]:
        return [_entry("danger", log, ["mailbox_quota_exceeded", record["maxquota_mib"]])]
    if sum(1 for m in db["mailboxes"].values() if m["domain"] == domain) >= record["max_num_mboxes_for_domain"]:
        return [_entry("danger", log, ["max_mailbox_exceeded", 0, record["max_num_mboxes_for_domain"]])]
    db["mailboxes"][username] = {
        "username": username, "local_part": local, "domain": domain,
        "name": str(attr.get("name", "") or ""), "password_hash": deps.hash_password(password),
        "quota_mib": quota, "active": _flag(attr.get("active"), "1"),
        "tags": [str(x) for x in _items(attr.get("tags"))], "sender_acl": [], "relayhost": "0",
        "created": deps.now(), "modified": None,
    }
    return [_entry("success", log, ["mailbox_added", username])]


def edit_mailbox(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for username in _items(body.get("items")):
        username = str(username).lower()
        log = ["mailbox", "edit", "mailbox", _masked({**attr, "username": username}), None]
        record = db["mailboxes"].get(username)
        if record is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        if attr.get("password"):
            if str(attr["password"]) != str(attr.get("password2", attr["password"])):
                out.append(_entry("danger", log, "password_mismatch"))
                continue
            record["password_hash"] = deps.hash_password(str(attr["password"]))
        if "active" in attr:
            record["active"] = _flag(attr["active"])
        if "name" in attr:
            record["name"] = str(attr["name"])
        if "quota" in attr:
            record["quota_mib"] = _int(attr["quota"], record["quota_mib"])
        if "sender_acl" in attr:
            record["sender_acl"] = [str(x) for x in _items(attr["sender_acl"]) if str(x) != "default"]
        if "relayhost" in attr:
            record["relayhost"] = str(_int(attr["relayhost"], 0))
        if "tags" in attr:
            for tag in _items(attr["tags"]):
                if str(tag) not in record["tags"]:
                    record["tags"].append(str(tag))
        record["modified"] = deps.now()
        out.append(_entry("success", log, ["mailbox_modified", username]))
    return out


def delete_mailbox(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for username in _items(items):
        username = str(username).lower()
        log = ["mailbox", "delete", "mailbox", {"username": username}, None]
        if db["mailboxes"].pop(username, None) is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        out.append(_entry("success", log, ["mailbox_removed", username]))
    return out


def _mailbox_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "username": record["username"], "active": int(record["active"]), "active_int": int(record["active"]),
        "domain": record["domain"], "name": record["name"], "local_part": record["local_part"],
        "quota": record["quota_mib"] * MIB, "messages": 0, "quota_used": 0, "percent_in_use": 0,
        "percent_class": "success", "created": record["created"], "modified": record["modified"],
        "tags": list(record["tags"]),
        "attributes": {"force_pw_update": "0", "tls_enforce_in": "0", "tls_enforce_out": "0",
                       "sogo_access": "1", "imap_access": "1", "pop3_access": "1", "smtp_access": "1",
                       "relayhost": record["relayhost"], "quarantine_notification": "hourly"},
    }


def get_mailbox(db: State, redis: State, name: str, extra: str, deps: Deps) -> Any:
    if name in ("", "all"):
        rows = [_mailbox_view(m) for _, m in sorted(db["mailboxes"].items())
                if not extra or m["domain"] == extra.lower()]
        return rows or {}
    record = db["mailboxes"].get(name.lower())
    return _mailbox_view(record) if record else {}
