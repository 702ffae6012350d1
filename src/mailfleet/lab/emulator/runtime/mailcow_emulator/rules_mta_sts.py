"""Mailcow's MTA-STS policy rules (2025-09+, not in the spec): ``add/edit mta-sts``."""

from __future__ import annotations

import re
from typing import Any

from .rules_common import Deps, Entry, State, _entry, _flag, _int, _items, _masked, _split

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
