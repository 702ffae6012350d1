"""Mailcow's domain rules (``functions.mailbox.inc.php``, ``add/edit/delete/get domain``).

Adding a domain also creates its DKIM key (``rules_dkim``); deleting one removes its aliases,
DKIM key and MTA-STS policy.
"""

from __future__ import annotations

from typing import Any

from .rules_common import MIB, Deps, Entry, State, _entry, _flag, _int, _items, _masked, _split, valid_domain
from .rules_dkim import _dkim_delete, add_dkim

DOMAIN_TEMPLATE = {
    "max_num_aliases_for_domain": 400,
    "max_num_mboxes_for_domain": 10,
    "def_quota_for_mbox": 3072,
    "max_quota_for_mbox": 10240,
    "max_quota_for_domain": 10240,
    "rl_frame": "s",
    "rl_value": "",
    "active": "1",
    "gal": "1",
    "backupmx": "0",
    "relay_all_recipients": "0",
    "relay_unknown_only": "0",
    "dkim_selector": "dkim",
    "key_size": 2048,
}


def add_domain(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["mailbox", "add", "domain", _masked(attr), None]
    domain = str(attr.get("domain", "")).strip().lower()
    if not valid_domain(domain):
        return [_entry("danger", log, ["domain_invalid", domain])]
    if domain == deps.hostname.lower():
        return [_entry("danger", log, ["domain_cannot_match_hostname", domain])]
    if domain in db["domains"]:
        return [_entry("danger", log, ["domain_exists", domain])]
    t = DOMAIN_TEMPLATE
    defquota = _int(attr.get("defquota"), t["def_quota_for_mbox"])
    maxquota = _int(attr.get("maxquota"), t["max_quota_for_mbox"])
    quota = _int(attr.get("quota"), t["max_quota_for_domain"])
    if maxquota == 0:
        return [_entry("danger", log, "maxquota_empty")]
    if defquota == 0:
        return [_entry("danger", log, "defquota_empty")]
    if maxquota > quota:
        return [_entry("danger", log, "mailbox_quota_exceeds_domain_quota")]
    if defquota > maxquota:
        return [_entry("danger", log, "mailbox_defquota_exceeds_mailbox_maxquota")]
    out: list[Entry] = []
    rl_value = str(attr.get("rl_value", "") or "")
    rl_frame = str(attr.get("rl_frame", "s") or "s")
    now = deps.now()
    db["domains"][domain] = {
        "domain_name": domain,
        "description": str(attr.get("description", "") or ""),
        "active": _flag(attr.get("active"), t["active"]),
        "backupmx": _flag(attr.get("backupmx"), t["backupmx"]),
        "gal": _flag(attr.get("gal"), t["gal"]),
        "relay_all_recipients": _flag(attr.get("relay_all_recipients"), "0"),
        "relay_unknown_only": _flag(attr.get("relay_unknown_only"), "0"),
        "relayhost": "0",
        "max_num_aliases_for_domain": _int(attr.get("aliases"), t["max_num_aliases_for_domain"]),
        "max_num_mboxes_for_domain": _int(attr.get("mailboxes"), t["max_num_mboxes_for_domain"]),
        "defquota_mib": defquota,
        "maxquota_mib": maxquota,
        "quota_mib": quota,
        "rl_value": rl_value,
        "rl_frame": rl_frame,
        "tags": [str(x) for x in _items(attr.get("tags"))],
        "created": now,
        "modified": None,
    }
    if rl_value not in ("", "0"):
        out.append(_entry("success", ["ratelimit", "edit", "domain",
                                      {"object": domain, "rl_frame": rl_frame, "rl_value": rl_value}],
                          ["rl_saved", domain]))
    key_size = _int(attr.get("key_size"), t["key_size"])
    selector = attr.get("dkim_selector", t["dkim_selector"])
    if key_size and selector:
        if domain in redis["DKIM_PUB_KEYS"]:
            out.append(_entry("success", ["dkim", "add", {"domains": domain}], ["domain_add_dkim_available", domain]))
        else:
            out.extend(add_dkim(db, redis, {"domains": domain, "dkim_selector": selector, "key_size": key_size}, deps))
    out.append(_entry("success", log, ["domain_added", domain]))
    return out


def edit_domain(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for domain in _items(body.get("items")):
        domain = str(domain).lower()
        log = ["mailbox", "edit", "domain", _masked({**attr, "domain": domain}), None]
        record = db["domains"].get(domain)
        if record is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        if "relayhost" in attr:
            rid = str(_int(attr["relayhost"], 0))
            if rid != "0" and rid not in db["relayhosts"]:
                out.append(_entry("danger", log, "relayhost_invalid"))
                continue
            record["relayhost"] = rid
        for flag in ("active", "backupmx", "gal", "relay_all_recipients", "relay_unknown_only"):
            if flag in attr:
                record[flag] = _flag(attr[flag])
        if "description" in attr:
            record["description"] = str(attr["description"])
        for key, field in (("aliases", "max_num_aliases_for_domain"), ("mailboxes", "max_num_mboxes_for_domain"),
                           ("defquota", "defquota_mib"), ("maxquota", "maxquota_mib"), ("quota", "quota_mib")):
            if key in attr:
                record[field] = _int(attr[key], record[field])
        if "rl_value" in attr:
            record["rl_value"] = str(attr["rl_value"] or "")
        if "rl_frame" in attr:
            record["rl_frame"] = str(attr["rl_frame"] or "s")
        if "tags" in attr:  # issue #4681: tags are added, never replaced
            for tag in _items(attr["tags"]):
                if str(tag) not in record["tags"]:
                    record["tags"].append(str(tag))
        record["modified"] = deps.now()
        out.append(_entry("success", log, ["domain_modified", domain]))
    return out


def delete_domain(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for domain in _items(items):
        domain = str(domain).lower()
        log = ["mailbox", "delete", "domain", {"domain": domain}, None]
        if domain not in db["domains"]:
            out.append(_entry("danger", log, ["domain_not_found", domain]))
            continue
        if any(m["domain"] == domain for m in db["mailboxes"].values()):
            out.append(_entry("danger", log, ["domain_not_empty", domain]))
            continue
        del db["domains"][domain]
        for alias_id in [i for i, a in db["aliases"].items() if a["domain"] == domain]:
            del db["aliases"][alias_id]
        _dkim_delete(redis, domain)
        db.setdefault("mta_sts", {}).pop(domain, None)
        out.append(_entry("success", log, ["domain_removed", domain]))
    return out


def _domain_view(db: State, record: dict[str, Any]) -> dict[str, Any]:
    domain = record["domain_name"]
    mailboxes = [m for m in db["mailboxes"].values() if m["domain"] == domain]
    aliases = [a for a in db["aliases"].values() if a["domain"] == domain]
    used = sum(m["quota_mib"] for m in mailboxes)
    return {
        "max_new_mailbox_quota": min(record["maxquota_mib"], record["quota_mib"] - used) * MIB,
        "def_new_mailbox_quota": min(record["defquota_mib"], record["quota_mib"] - used) * MIB,
        "quota_used_in_domain": str(used * MIB),
        "bytes_total": "0",
        "msgs_total": "0",
        "mboxes_in_domain": len(mailboxes),
        "mboxes_left": record["max_num_mboxes_for_domain"] - len(mailboxes),
        "domain_name": domain,
        "domain_h_name": domain,
        "description": record["description"],
        "max_num_aliases_for_domain": record["max_num_aliases_for_domain"],
        "max_num_mboxes_for_domain": record["max_num_mboxes_for_domain"],
        "def_quota_for_mbox": record["defquota_mib"] * MIB,
        "max_quota_for_mbox": record["maxquota_mib"] * MIB,
        "max_quota_for_domain": record["quota_mib"] * MIB,
        "relayhost": record["relayhost"],
        "backupmx": record["backupmx"],
        "gal": record["gal"],
        "active": record["active"],
        "relay_all_recipients": record["relay_all_recipients"],
        "relay_unknown_only": record["relay_unknown_only"],
        "aliases_in_domain": len(aliases),
        "aliases_left": record["max_num_aliases_for_domain"] - len(aliases),
        "created": record["created"],
        "modified": record["modified"],
        "rl": {"value": record["rl_value"], "frame": record["rl_frame"]} if record["rl_value"] not in ("", "0") else False,
        "tags": list(record["tags"]),
    }


def get_domain(db: State, redis: State, name: str, query: dict[str, str], deps: Deps) -> Any:
    if name in ("", "all"):
        wanted = set(_split(query.get("tags", "")))
        rows = [_domain_view(db, r) for _, r in sorted(db["domains"].items())
                if not wanted or wanted & set(r["tags"])]
        return rows or {}
    record = db["domains"].get(name.lower())
    return _domain_view(db, record) if record else {}
