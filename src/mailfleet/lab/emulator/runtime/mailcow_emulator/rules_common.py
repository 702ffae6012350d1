"""What every Mailcow business rule shares: the state's shape, ``Deps`` and the small helpers.

The ``rules_*`` modules hold Mailcow's business logic by object kind; ``logic.py`` dispatches
to them. This module is the one place for what more than one of them needs (answer entries,
Mailcow's flag and number coercion, list splitting, name checks), so nothing is duplicated.

No I/O: key generation, password hashing and the clock are injected through ``Deps``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Entry = dict[str, Any]
State = dict[str, Any]

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


def _address_taken(db: State, address: str) -> bool:
    return address in db["mailboxes"] or any(a["address"] == address for a in db["aliases"].values())
