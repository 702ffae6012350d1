"""A fleet of in-process Mailcow APIs for domain-push tests.

Each host's API is the lab emulator's Mailcow logic (``mailcow_emulator.logic``: Mailcow's
semantics, ``danger`` bodies, ``{}`` for empty results, ids that must be read back) behind a
requests adapter, reached through the real ``MailcowClient``. No SSH, no network.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

from mailfleet.inventory import load_valid_inventory
from mailfleet.lab.emulator.runtime.mailcow_emulator import logic
from mailfleet.lab.emulator.runtime.mailcow_emulator.secrets_host import dkim_public_key, generate_dkim_key
from mailfleet.mailcow.client import MailcowClient

REPO = Path(__file__).resolve().parents[2]


class FakeMailcow(BaseAdapter):
    def __init__(self, hostname: str) -> None:
        super().__init__()
        self.db, self.redis = logic.new_state()
        self.deps = logic.Deps(hostname=hostname, now=lambda: "2026-11-29 00:00:00", generate_dkim=generate_dkim_key,
                               dkim_public=dkim_public_key, hash_password=lambda p: "{SSHA256}x")
        self.writes: list[tuple[str, str, Any]] = []
        self.fail_after_writes: int | None = None  # answer HTTP 500 once this many writes were made
        self.mta_sts_supported = True  # False: answer like a Mailcow before 2025-09 (no such route)
        self.down = False

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.removeprefix("/api/v1/").split("/") if p]
        action, category, rest = parts[0], parts[1], parts[2:]
        obj = rest[0] if rest else ""
        if action == "get":
            if category == "domain":
                data = logic.get_domain(self.db, self.redis, obj, {}, self.deps)
            elif category == "dkim":
                data = logic.get_dkim(self.db, self.redis, obj, self.deps)
            elif category == "mailbox":
                data = logic.get_mailbox(self.db, self.redis, obj, "/".join(rest[1:]), self.deps)
            elif category == "alias":
                data = logic.get_alias(self.db, self.redis, obj, self.deps)
            elif category == "relayhost":
                data = logic.get_relayhost(self.db, self.redis, obj, self.deps)
            else:
                return 404, {"type": "error", "msg": "route not found"}
            return 200, data if data not in ([], None) else {}
        if self.fail_after_writes is not None and len(self.writes) >= self.fail_after_writes:
            return 500, {"type": "error", "msg": "injected failure"}
        if category == "mta-sts" and not self.mta_sts_supported:
            return 404, {"type": "error", "msg": "route not found"}  # Mailcow before 2025-09
        entries = logic.run_write(action, category, self.db, self.redis, body, self.deps)
        if entries is None:
            return 404, {"type": "error", "msg": "route not found"}
        self.writes.append((action, category, body))
        return 200, entries or {"type": "success", "msg": "Task completed"}

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        if self.down:
            raise requests.ConnectionError("connection refused (host down)")
        body = json.loads(request.body) if request.body else None
        status, data = self.answer(request.method or "GET", urlsplit(request.url).path, body)
        response = Response()
        response.status_code = status
        response._content = json.dumps(data).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass

    # what tests look at
    def domain_names(self) -> set[str]:
        return set(self.db["domains"])

    def dkim_public(self, domain: str) -> str | None:
        return self.redis["DKIM_PUB_KEYS"].get(domain)


class FakeFleet:
    def __init__(self, fleet) -> None:
        self.apis = {name: FakeMailcow(h.hostname) for name, h in fleet.hosts.items() if h.runs_mailcow}
        self.opened: list[str] = []

    @contextlib.contextmanager
    def opener(self, host, inventory) -> Iterator[MailcowClient]:
        self.opened.append(host.name)
        session = requests.Session()
        session.mount("https://", self.apis[host.name])
        client = MailcowClient("https://mailcow.invalid", "test-key", label=host.name, session=session)
        try:
            yield client
        finally:
            client.close()

    def total_writes(self) -> int:
        return sum(len(api.writes) for api in self.apis.values())


@pytest.fixture
def inventory_path(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    shutil.copy(REPO / "inventory" / "example.yaml", path)
    return path


@pytest.fixture
def fake_fleet(inventory_path: Path) -> FakeFleet:
    inv = load_valid_inventory(inventory_path)
    return FakeFleet(inv.fleet)
