"""Mailcow's DKIM rules (``functions.dkim.inc.php``): keys live in Redis, not in the domain row.

``add/dkim``, ``add/dkim_import``, ``delete/dkim``, ``get/dkim``; adding and deleting a domain
uses the helpers here too.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .rules_common import Deps, Entry, State, _entry, _flag, _int, _items, _masked, _split, valid_domain


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
