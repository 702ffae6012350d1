"""Route an API request the way Mailcow's nginx + ``json_api.php`` do, before any business logic.

Pure. ``/api/v1/<action>/<category>/<object>/<extra>``: add/edit/delete are POST only, get is
GET only; anything else is ``route not found``. The status codes and bodies here are the ones
Mailcow really sends, including its quirks (HTTP 200 for business errors is decided later).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

ACTIONS = ("add", "edit", "delete", "get")
PREFIX = "/api/v1/"


@dataclass(frozen=True)
class Route:
    action: str
    category: str
    object: str = ""
    extra: str = ""
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpAnswer:
    """A finished answer: status code and JSON body."""

    status: int
    body: object


def error(status: int, msg: str) -> HttpAnswer:
    return HttpAnswer(status, {"type": "error", "msg": msg})


ROUTE_NOT_FOUND = error(404, "route not found")
AUTH_FAILED = error(401, "authentication failed")
RO_DENIED = error(403, "API read/write access denied")
BAD_JSON = error(400, "Request body doesn't contain valid json!")


def parse_route(method: str, target: str) -> Route | HttpAnswer:
    """Split the request target into a Route, or answer 404/405 like Mailcow."""
    parts = urlsplit(target)
    if not parts.path.startswith(PREFIX):
        return ROUTE_NOT_FOUND
    segments = [unquote(s) for s in parts.path[len(PREFIX):].split("/")]
    while segments and segments[-1] == "":
        segments.pop()
    if len(segments) < 2 or segments[0] not in ACTIONS:
        return ROUTE_NOT_FOUND
    action = segments[0]
    if action == "get" and method != "GET":
        return error(405, "only GET method is allowed")
    if action != "get" and method != "POST":
        return error(405, "only POST method is allowed")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    rest = segments[2:]
    return Route(
        action=action,
        category=segments[1],
        object=rest[0] if rest else "",
        extra="/".join(rest[1:]),
        query=query,
    )


def parse_body(action: str, content_type: str | None, raw: bytes) -> object | HttpAnswer:
    """Decode a POST body; Mailcow needs ``Content-Type: application/json`` and valid JSON.

    Returns the decoded value (add: the attribute object; edit: ``{"items", "attr"}``;
    delete: the items list) or the 400 answer.
    """
    if action == "get":
        return None
    if not content_type or "application/json" not in content_type:
        return BAD_JSON
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return BAD_JSON
