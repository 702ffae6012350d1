"""Fakes for the Mailcow API client tests: a requests adapter that answers from a table."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.models import PreparedRequest, Response

Handler = Callable[[PreparedRequest], tuple[int, Any]]


class FakeMailcow(BaseAdapter):
    """Answers ``(method, path)`` from ``routes``; records every request it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], Handler | tuple[int, Any]] = {}
        self.requests: list[PreparedRequest] = []

    def on(self, method: str, path: str, answer: Handler | tuple[int, Any]) -> None:
        self.routes[(method, path)] = answer

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        self.requests.append(request)
        path = requests.utils.urlparse(request.url).path
        answer = self.routes.get((request.method or "", path), (404, {"type": "error", "msg": "route not found"}))
        status, body = answer(request) if callable(answer) else answer
        response = Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> FakeMailcow:
    return FakeMailcow()


@pytest.fixture
def client(fake: FakeMailcow):
    from mailfleet.mailcow.client import MailcowClient

    session = requests.Session()
    session.mount("https://", fake)
    return MailcowClient("https://127.0.0.1:8443", "sekrit-Key-123", label="mx1", session=session)
