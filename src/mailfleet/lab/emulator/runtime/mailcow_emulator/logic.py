"""Mailcow's business logic for the endpoints mailfleet uses, on a plain-dict state.

Each handler takes the database state (``db``: what MariaDB holds), the Redis state
(``redis``: DKIM keys) and the request, mutates the state in place and returns what
``json_api.php`` would print. The semantics follow ``functions.mailbox.inc.php``,
``functions.dkim.inc.php`` and ``functions.transports.inc.php`` (see
shared/reference/mailcow.md §1): business errors are entries with ``"type": "danger"`` (HTTP
200), empty GET results are ``{}``, add/relayhost/alias/transport return no id.

No I/O: key generation, password hashing and the clock are injected through ``Deps``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Entry = dict[str, Any]
State = dict[str, Any]

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
MIB = 1024 * 1024
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_LOCAL = re.compile(r"^[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_SPLIT = re.compile(r"[\s,;]+")
SECRET_FIELDS = ("password", "password2", "private_key_file")


@dataclass(frozen=True)
class Deps:
    """What the logic needs from the outside world."""

    hostname: str
    now: Callable[[], str]  # "YYYY-MM-DD HH:MM:SS"
    generate_dkim: Callable[[int], str]  # bits -> PEM private key
    dkim_public: Callable[[str], tuple[str, int]]  # PEM -> (base64 SPKI DER, bits); ValueError if bad
    hash_password: Callable[[str], str]  # -> "{SSHA256}..."
    show_dkim_priv_keys: bool = False


def new_state() -> tuple[State, State]:
    db: State = {"domains": {}, "mailboxes": {}, "aliases": {}, "relayhosts": {}, "transports": {}, "mta_sts": {},
                 "next_id": {"alias": 1, "relayhost": 1, "transport": 1}}
    redis: State = {"DKIM_PUB_KEYS": {}, "DKIM_SELECTORS": {}, "DKIM_PRIV_KEYS": {}}
    return db, redis


# ---------------------------------------------------------------- helpers

def _masked(attr: Any) -> Any:
    if isinstance(attr, dict):
        return {k: ("*" if k in SECRET_FIELDS and v else v) for k, v in attr.items()}
    return attr


def _entry(kind: str, log: list[Any], msg: Any) -> Entry:
    return {"type": kind, "log": log, "msg": msg}


def _flag(value: Any, default: str = "0") -> str:
    """Mailcow stores flags as 0/1 whatever the client sent (true, 1, "1", "on")."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return "1" if int(value) else "0"
    return "1" if str(value).strip().lower() in ("1", "true", "on", "yes") else "0"


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def valid_domain(name: Any) -> bool:
    return isinstance(name, str) and bool(_DOMAIN.match(name.lower()))


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v for v in _SPLIT.split(str(value or "").strip()) if v]


# ---------------------------------------------------------------- DKIM

def _dkim_store(redis: State, domain: str, selector: str, pem: str, deps: Deps) -> None:
    pub, _bits = deps.dkim_public(pem)
    redis["DKIM_PUB_KEYS"][domain] = pub
    redis["DKIM_SELECTORS"][domain] = selector
    redis["DKIM_PRIV_KEYS"][f"{selector}.{domain}"] = pem


def _dkim_delete(redis: State, domain: str) -> None:
    selector = redis["DKIM_SELECTORS"].pop(domain, None)
    redis["DKIM_PUB_KEYS"].pop(domain, None)
    if selector is not None:
        redis["DKIM_PRIV_KEYS"].pop(f"{selector}.{domain}", None)


def _valid_selector(selector: Any) -> bool:
    return isinstance(selector, str) and selector != "" and re.sub(r"[-_.]", "", selector).isalnum()


def add_dkim(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    log = ["dkim", "add", _masked(attr)]
    selector = attr.get("dkim_selector", "dkim")
    key_size = _int(attr.get("key_size"), 2048)
    out: list[Entry] = []
    domains = _split(attr.get("domains", ""))
    if not domains:
        return [_entry("danger", log, ["dkim_domain_or_sel_invalid", ""])]
    for domain in domains:
        domain = domain.lower()
        if not _valid_selector(selector) or key_size not in (1024, 2048, 3072, 4096):
            out.append(_entry("danger", log, ["dkim_domain_or_sel_invalid", domain]))
            continue
        if domain not in db["domains"]:
            out.append(_entry("danger", log, "access_denied"))
            continue
        if domain in redis["DKIM_PUB_KEYS"]:
            out.append(_entry("danger", log, ["dkim_domain_or_sel_invalid", domain]))
            continue
        _dkim_store(redis, domain, selector, deps.generate_dkim(key_size), deps)
        out.append(_entry("success", log, ["dkim_added", domain]))
    return out


def import_dkim(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    """``add/dkim_import``: undocumented in openapi.yaml, implemented since 2017.

    The domain need not exist (a "blind" key, used by outbound relays); an existing key is
    kept unless ``overwrite_existing`` is set.
    """
    log = ["dkim", "import", _masked(attr)]
    domain = str(attr.get("domain", "")).lower()
    selector = attr.get("dkim_selector", "")
    pem = str(attr.get("private_key_file", "")).replace("\r\n", "\n").strip()
    if not valid_domain(domain) or not _valid_selector(selector):
        return [_entry("danger", log, ["dkim_domain_or_sel_invalid", domain])]
    try:
        deps.dkim_public(pem)
    except ValueError:
        return [_entry("danger", log, "dkim_private_key_invalid")]
    if domain in redis["DKIM_PUB_KEYS"] and _flag(attr.get("overwrite_existing")) != "1":
        return [_entry("danger", log, ["dkim_domain_or_sel_exists", domain])]
    _dkim_delete(redis, domain)
    _dkim_store(redis, domain, selector, pem + "\n", deps)
    return [_entry("success", log, ["dkim_added", domain])]


def delete_dkim(db: State, redis: State, items: Any, deps: Deps) -> list[Entry]:
    out = []
    for domain in _items(items):
        domain = str(domain).lower()
        log = ["dkim", "delete", {"domains": domain}]
        if not valid_domain(domain):
            out.append(_entry("danger", log, ["dkim_domain_or_sel_invalid", domain]))
            continue
        _dkim_delete(redis, domain)
        out.append(_entry("success", log, ["dkim_removed", domain]))
    return out


def get_dkim(db: State, redis: State, domain: str, deps: Deps) -> Any:
    domain = domain.lower()
    pub = redis["DKIM_PUB_KEYS"].get(domain)
    if not pub:
        return {}
    selector = redis["DKIM_SELECTORS"].get(domain, "dkim")
    pem = redis["DKIM_PRIV_KEYS"].get(f"{selector}.{domain}", "")
    bits = deps.dkim_public(pem)[1] if pem else 0
    return {
        "pubkey": pub,
        "length": str(bits),
        "dkim_txt": f"v=DKIM1;k=rsa;t=s;s=email;p={pub}",
        "dkim_selector": selector,
        "privkey": base64.b64encode(pem.encode()).decode() if deps.show_dkim_priv_keys and pem else "",
    }


# ---------------------------------------------------------------- domains

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


# ---------------------------------------------------------------- mailboxes

def _address_taken(db: State, address: str) -> bool:
    return address in db["mailboxes"] or any(a["address"] == address for a in db["aliases"].values())


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


# ---------------------------------------------------------------- aliases

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


# ---------------------------------------------------------------- relayhosts & transports

def _bracket(nexthop: str) -> str:
    """Mailcow brackets an IP nexthop so Postfix skips the MX lookup."""
    host, sep, port = nexthop.rpartition(":") if nexthop.count(":") == 1 else (nexthop, "", "")
    host = host or nexthop
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", host):
        host = f"[{host}]"
    return f"{host}{sep}{port}" if sep else host


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


# ---------------------------------------------------------------- MTA-STS (2025-09+, not in the spec)

_MX_NAME = re.compile(r"^(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def _mta_sts_problem(attr: dict[str, Any]) -> str | None:
    if str(attr.get("version", "STSv1")) != "STSv1":
        return "mta_sts_version_invalid"
    if str(attr.get("mode", "")) not in ("enforce", "testing", "none"):
        return "mta_sts_mode_invalid"
    if not 1 <= _int(attr.get("max_age"), 0) <= 31536000:
        return "mta_sts_max_age_invalid"
    mx = _split(attr.get("mx", ""))
    if not mx or not all(_MX_NAME.match(m.lower()) for m in mx):
        return "mta_sts_mx_invalid"
    return None


def _policy_id(deps: Deps) -> str:
    """Mailcow stores ``id = date('YmdHis')`` on every add and edit."""
    return re.sub(r"\D", "", deps.now())[:14]


def add_mta_sts(db: State, redis: State, attr: dict[str, Any], deps: Deps) -> list[Entry]:
    """``add/mta-sts``: one policy per existing domain; the message keys are the emulator's
    (Mailcow's exact wording for these errors is not documented)."""
    log = ["mta_sts", "add", _masked(attr)]
    domain = str(attr.get("domain", "")).lower()
    policies = db.setdefault("mta_sts", {})
    if domain not in db["domains"]:
        return [_entry("danger", log, "access_denied")]
    if domain in policies:
        return [_entry("danger", log, ["object_exists", domain])]
    problem = _mta_sts_problem(attr)
    if problem:
        return [_entry("danger", log, [problem, domain])]
    policies[domain] = {"version": "STSv1", "mode": str(attr["mode"]), "mx": ",".join(_split(attr["mx"])),
                        "max_age": _int(attr.get("max_age"), 86400), "active": _flag(attr.get("active"), "1"),
                        "id": _policy_id(deps)}
    return [_entry("success", log, ["mta_sts_added", domain])]


def edit_mta_sts(db: State, redis: State, body: Any, deps: Deps) -> list[Entry]:
    body = body if isinstance(body, dict) else {}
    attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
    out = []
    for domain in _items(body.get("items")):
        domain = str(domain).lower()
        log = ["mta_sts", "edit", _masked({**attr, "domain": domain})]
        policy = db.setdefault("mta_sts", {}).get(domain)
        if policy is None:
            out.append(_entry("danger", log, "access_denied"))
            continue
        merged = {**policy, **attr}
        problem = _mta_sts_problem(merged)
        if problem:
            out.append(_entry("danger", log, [problem, domain]))
            continue
        policy.update(mode=str(merged["mode"]), mx=",".join(_split(merged["mx"])),
                      max_age=_int(merged.get("max_age"), 86400), active=_flag(merged.get("active"), "1"),
                      id=_policy_id(deps))
        out.append(_entry("success", log, ["mta_sts_edited", domain]))
    return out


# ---------------------------------------------------------------- dispatch tables

WRITE_HANDLERS: dict[tuple[str, str], Callable[..., list[Entry]]] = {
    ("add", "domain"): add_domain,
    ("edit", "domain"): edit_domain,
    ("delete", "domain"): delete_domain,
    ("add", "dkim"): add_dkim,
    ("add", "dkim_import"): import_dkim,
    ("delete", "dkim"): delete_dkim,
    ("add", "mailbox"): add_mailbox,
    ("edit", "mailbox"): edit_mailbox,
    ("delete", "mailbox"): delete_mailbox,
    ("add", "alias"): add_alias,
    ("edit", "alias"): edit_alias,
    ("delete", "alias"): delete_alias,
    ("add", "relayhost"): add_relayhost,
    ("edit", "relayhost"): edit_relayhost,
    ("delete", "relayhost"): delete_relayhost,
    ("add", "transport"): add_transport,
    ("edit", "transport"): edit_transport,
    ("delete", "transport"): delete_transport,
    ("add", "mta-sts"): add_mta_sts,
    ("edit", "mta-sts"): edit_mta_sts,
}


def run_write(action: str, category: str, db: State, redis: State, body: Any, deps: Deps) -> list[Entry] | None:
    """Run an add/edit/delete; None when Mailcow has no such route."""
    handler = WRITE_HANDLERS.get((action, category))
    if handler is None:
        return None
    if action == "add" and not isinstance(body, dict):
        return [_entry("danger", [category, action, body], "Cannot add item")]
    return handler(db, redis, body, deps)
