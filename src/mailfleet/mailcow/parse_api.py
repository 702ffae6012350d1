"""How to read what the Mailcow API answers: pure rules, no I/O.

Mailcow's ``json_api.php`` has habits a client must absorb (shared/reference/mailcow.md §1.3):

* business failures are HTTP 200 with ``"type": "danger"`` (or ``"error"``) in the body, either
  as one object or as one entry of a list of entries;
* an empty GET result is ``{}`` even where a list is expected, and a missing single object is
  ``{}`` too;
* flags come back as ``"1"``/``"0"`` strings, sometimes as ints, sometimes as booleans.

Everything here takes decoded JSON and returns plain data, so it is tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailfleet.errors import MailcowApiError

FAILURE_TYPES = frozenset({"danger", "error"})
_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n", ""})


def parse_entries(body: Any) -> list[dict[str, Any]]:
    """The entries of an add/edit/delete answer (a list of ``{type, log, msg}`` or one object)."""
    if isinstance(body, list):
        return [entry for entry in body if isinstance(entry, dict)]
    if isinstance(body, dict) and "type" in body:
        return [body]
    return []


def describe_msg(msg: Any) -> str:
    """``"domain_exists"`` or ``["domain_exists", "a.tld"]`` → ``"domain_exists (a.tld)"``."""
    if isinstance(msg, list) and msg:
        head, *args = (str(part) for part in msg)
        return f"{head} ({', '.join(args)})" if args else head
    return str(msg) if msg not in (None, "") else "no message"


def check_write(body: Any, action: str) -> list[dict[str, Any]]:
    """Raise ``MailcowApiError`` if any entry failed; return the entries otherwise.

    ``warning`` entries are not failures (Mailcow uses them for "nothing to do" cases). A body that
    is neither a list of entries nor an entry is a failure too: we cannot tell whether it worked.
    """
    entries = parse_entries(body)
    if not entries:
        raise MailcowApiError(f"{action}: Mailcow answered {_short(body)!r}, not a list of results; "
                              "cannot tell whether the change was made; check the Mailcow UI and its API log")
    failed = [entry for entry in entries if str(entry.get("type", "")).lower() in FAILURE_TYPES]
    if failed:
        reasons = "; ".join(describe_msg(entry.get("msg")) for entry in failed)
        raise MailcowApiError(f"{action} was refused by Mailcow: {reasons}")
    return entries


def check_read(body: Any, action: str) -> Any:
    """A GET body, unless it is an error object (``{"type": "error"|"danger", "msg": ...}``)."""
    if isinstance(body, dict) and str(body.get("type", "")).lower() in FAILURE_TYPES and "msg" in body:
        raise MailcowApiError(f"{action} was refused by Mailcow: {describe_msg(body.get('msg'))}")
    return body


def parse_list(body: Any) -> list[dict[str, Any]]:
    """A list endpoint's items: ``{}``/``None``/``[]`` → ``[]``; a lone object → ``[object]``."""
    if body in (None, {}, [], ""):
        return []
    if isinstance(body, list):
        return [item for item in body if isinstance(item, dict)]
    if isinstance(body, dict):
        return [body]
    return []


def parse_object(body: Any) -> dict[str, Any] | None:
    """A single-object endpoint's object, or ``None`` for Mailcow's ``{}``/``[]`` meaning "none"."""
    if isinstance(body, list):
        body = body[0] if len(body) == 1 and isinstance(body[0], dict) else None
    if not isinstance(body, dict) or not body:
        return None
    return body


def parse_flag(value: Any) -> bool:
    """Mailcow's flags (``"1"``, ``1``, ``True``, ``"0"``, ``""``, ``None``) as a bool."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a Mailcow flag: {value!r}")


def parse_id(value: Any) -> int | None:
    """An id (``"3"`` or ``3``) as int; ``None``, ``""`` and ``"0"`` (Mailcow's "none") as ``None``."""
    if value in (None, "", 0, "0", False):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def find_id(items: list[dict[str, Any]], match: Mapping[str, Any], *, key: str = "id") -> int | None:
    """The highest id among items whose fields equal ``match`` (Mailcow returns no id on add)."""
    found = [parse_id(item.get(key)) for item in items
             if all(str(item.get(field, "")) == str(value) for field, value in match.items())]
    ids = [i for i in found if i is not None]
    return max(ids) if ids else None


def _short(body: Any, limit: int = 200) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."
