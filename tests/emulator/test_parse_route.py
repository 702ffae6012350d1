"""The routing quirks of json_api.php: methods, 404 bodies, body decoding."""

from __future__ import annotations

from mailcow_emulator.parse_route import BAD_JSON, ROUTE_NOT_FOUND, HttpAnswer, Route, parse_body, parse_route


def test_get_route_with_object_extra_and_query() -> None:
    route = parse_route("GET", "/api/v1/get/mailbox/all/example.org?tags=a,b")
    assert route == Route("get", "mailbox", "all", "example.org", {"tags": "a,b"})


def test_write_actions_are_post_only_and_get_is_get_only() -> None:
    assert parse_route("GET", "/api/v1/add/domain") == HttpAnswer(405, {"type": "error", "msg": "only POST method is allowed"})
    assert parse_route("POST", "/api/v1/get/domain/all") == HttpAnswer(405, {"type": "error", "msg": "only GET method is allowed"})


def test_unknown_actions_and_paths_are_route_not_found() -> None:
    assert parse_route("GET", "/api/v1/frobnicate/domain") == ROUTE_NOT_FOUND
    assert parse_route("GET", "/api/v2/get/domain/all") == ROUTE_NOT_FOUND
    assert parse_route("GET", "/api/v1/get") == ROUTE_NOT_FOUND
    assert ROUTE_NOT_FOUND.status == 404 and ROUTE_NOT_FOUND.body == {"type": "error", "msg": "route not found"}


def test_body_needs_json_content_type_and_valid_json() -> None:
    assert parse_body("add", None, b'{"a": 1}') == BAD_JSON
    assert parse_body("add", "text/plain", b'{"a": 1}') == BAD_JSON
    assert parse_body("add", "application/json", b"{") == BAD_JSON
    assert parse_body("delete", "application/json; charset=utf-8", b'["a.org"]') == ["a.org"]
    assert BAD_JSON.status == 400
