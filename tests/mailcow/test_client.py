"""The Mailcow API client against a fake API: headers, typed errors, ids read back, no key leaks."""

from __future__ import annotations

import json
import logging

import pytest

from mailfleet.errors import MailcowApiError
from mailfleet.mailcow.client import MailcowClient

KEY = "sekrit-Key-123"


def test_requests_carry_key_and_json_content_type(client: MailcowClient, fake) -> None:
    fake.on("GET", "/api/v1/get/domain/all", (200, {}))
    assert client.get_domains() == []
    sent = fake.requests[-1]
    assert sent.headers["X-API-Key"] == KEY
    assert sent.headers["Content-Type"] == "application/json"


def test_add_domain_posts_the_attribute_object(client: MailcowClient, fake) -> None:
    fake.on("POST", "/api/v1/add/domain", (200, [{"type": "success", "msg": ["domain_added", "a.tld"]}]))
    client.add_domain("a.tld", key_size=0, restart_sogo=0)
    assert json.loads(fake.requests[-1].body) == {"domain": "a.tld", "key_size": 0, "restart_sogo": 0}


def test_danger_in_a_200_body_raises(client: MailcowClient, fake) -> None:
    fake.on("POST", "/api/v1/add/domain", (200, [{"type": "danger", "msg": ["domain_exists", "a.tld"]}]))
    with pytest.raises(MailcowApiError, match="mx1: add/domain was refused by Mailcow: domain_exists"):
        client.add_domain("a.tld")


@pytest.mark.parametrize(("status", "hint"), [(401, "API_ALLOW_FROM"), (403, "read-only"), (404, "endpoint"),
                                              (500, "HTTP 500")])
def test_http_errors_raise_with_what_to_do(client: MailcowClient, fake, status: int, hint: str) -> None:
    fake.on("GET", "/api/v1/get/domain/all", (status, {"type": "error", "msg": "authentication failed"}))
    with pytest.raises(MailcowApiError, match=hint) as info:
        client.get_domains()
    assert KEY not in str(info.value)


def test_edit_and_delete_bodies(client: MailcowClient, fake) -> None:
    ok = (200, [{"type": "success", "msg": "ok"}])
    fake.on("POST", "/api/v1/edit/domain", ok)
    fake.on("POST", "/api/v1/delete/relayhost", ok)
    client.edit_domain("a.tld", relayhost="3")
    assert json.loads(fake.requests[-1].body) == {"items": ["a.tld"], "attr": {"relayhost": "3"}}
    client.delete_relayhost(3, 4)
    assert json.loads(fake.requests[-1].body) == ["3", "4"]


def test_add_relayhost_reads_the_id_back(client: MailcowClient, fake) -> None:
    rows: list[dict] = [{"id": 1, "hostname": "[other]:25", "username": ""}]

    def add(request):
        attr = json.loads(request.body)
        rows.append({"id": 5, "hostname": attr["hostname"], "username": attr["username"], "active": "1"})
        return 200, [{"type": "success", "msg": ["relayhost_added", ""]}]

    fake.on("POST", "/api/v1/add/relayhost", add)
    fake.on("GET", "/api/v1/get/relayhost/all", lambda r: (200, rows))
    assert client.add_relayhost("[10.77.0.21]:25") == 5


def test_added_but_not_listed_is_an_error(client: MailcowClient, fake) -> None:
    fake.on("POST", "/api/v1/add/alias", (200, [{"type": "success", "msg": "alias_added"}]))
    fake.on("GET", "/api/v1/get/alias/all", (200, {}))
    with pytest.raises(MailcowApiError, match="does not list it"):
        client.add_alias("abuse@a.tld", ["postmaster@a.tld"])


def test_add_alias_and_transport_return_ids(client: MailcowClient, fake) -> None:
    ok = (200, [{"type": "success", "msg": "ok"}])
    fake.on("POST", "/api/v1/add/alias", ok)
    fake.on("GET", "/api/v1/get/alias/all", (200, [{"id": "9", "address": "abuse@a.tld", "goto": "p@a.tld"}]))
    assert client.add_alias("abuse@a.tld", ["p@a.tld"]) == 9
    assert json.loads(fake.requests[-2].body)["goto"] == "p@a.tld"
    fake.on("POST", "/api/v1/add/transport", ok)
    fake.on("GET", "/api/v1/get/transport/all", (200, [{"id": 2, "destination": "b.tld", "nexthop": "[x]:25"}]))
    assert client.add_transport("b.tld", "[x]:25") == 2


def test_dkim_import_uses_the_undocumented_endpoint(client: MailcowClient, fake) -> None:
    fake.on("POST", "/api/v1/add/dkim_import", (200, [{"type": "success", "msg": "dkim_added"}]))
    client.import_dkim("a.tld", selector="s2026", private_key_pem="-----BEGIN PRIVATE KEY-----\n", overwrite=True)
    body = json.loads(fake.requests[-1].body)
    assert body == {"domain": "a.tld", "dkim_selector": "s2026",
                    "private_key_file": "-----BEGIN PRIVATE KEY-----\n", "overwrite_existing": 1}
    fake.on("GET", "/api/v1/get/dkim/nope.tld", (200, {}))
    assert client.get_dkim("nope.tld") is None


def test_containers_and_version(client: MailcowClient, fake) -> None:
    fake.on("GET", "/api/v1/get/status/containers", (200, {"postfix-mailcow": {"state": "running"}}))
    assert client.get_containers() == {"postfix-mailcow": {"state": "running"}}
    fake.on("GET", "/api/v1/get/status/version", (200, {"version": "2026-07a"}))
    assert client.get_version() == "2026-07a"
    fake.on("GET", "/api/v1/get/status/version", (200, {}))
    with pytest.raises(MailcowApiError, match="#4947"):
        client.get_version()


def test_non_json_answer_is_an_error(client: MailcowClient, fake) -> None:
    fake.on("GET", "/api/v1/get/domain/all", (200, b"<html>nginx</html>"))
    with pytest.raises(MailcowApiError, match="not JSON"):
        client.get_domains()


def test_path_segments_are_quoted(client: MailcowClient, fake) -> None:
    fake.on("GET", "/api/v1/get/domain/a.tld%2F..%2Fx", (200, {}))
    client.get_domain("a.tld/../x")
    assert fake.requests[-1].path_url == "/api/v1/get/domain/a.tld%2F..%2Fx"


def test_the_key_never_appears_in_repr_or_logs(client: MailcowClient, fake, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.on("POST", "/api/v1/add/domain", (200, [{"type": "danger", "msg": "access_denied"}]))
    with pytest.raises(MailcowApiError) as info:
        client.add_domain("a.tld")
    assert KEY not in repr(client)
    assert KEY not in str(info.value)
    assert KEY not in caplog.text


def test_a_client_without_key_is_refused() -> None:
    with pytest.raises(MailcowApiError, match="no API key"):
        MailcowClient("https://127.0.0.1:1", "", label="mx1")
