"""A thin, typed Mailcow API client over ``requests``.

Why hand-written: the published OpenAPI spec misses endpoints we need (``add/dkim_import``,
MTA-STS) and Mailcow reports business errors as HTTP 200, so generated clients would call a
failure a success. The rules for reading answers live in ``parse_api`` (pure); this module only
sends requests and applies those rules.

The API key travels in the ``X-API-Key`` header and nowhere else: it is not part of ``repr``,
of any error message or of any log line (requests' own debug logging never prints headers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from mailfleet.errors import MailcowApiError
from mailfleet.mailcow.parse_api import check_read, check_write, find_id, parse_list, parse_object

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read (seconds); add/domain may restart services


class MailcowClient:
    """Typed calls to one Mailcow host's API.

    ``base_url`` is where the API answers (through the SSH tunnel: ``https://127.0.0.1:PORT``);
    ``label`` names the host in error messages. ``session`` may be injected (tests mount a fake
    adapter; ``open_api`` mounts one that verifies the host's own certificate).
    """

    def __init__(self, base_url: str, api_key: str, *, label: str = "mailcow",
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        if not api_key:
            raise MailcowApiError(f"{label}: no API key; set the host's api_key secret in the inventory")
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"X-API-Key": api_key, "Content-Type": "application/json",
                                     "Accept": "application/json"})

    def __repr__(self) -> str:  # never the key
        return f"MailcowClient({self.label!r}, {self.base_url!r})"

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------ transport

    def _url(self, *segments: str) -> str:
        return f"{self.base_url}/api/v1/" + "/".join(quote(str(s), safe="") for s in segments if s != "")

    def _send(self, method: str, segments: tuple[str, ...], body: Any = None,
              params: Mapping[str, str] | None = None) -> Any:
        action = f"{self.label}: {method} /api/v1/{'/'.join(segments)}"
        try:
            response = self.session.request(method, self._url(*segments), json=body, params=params,
                                            timeout=self.timeout)
        except requests.Timeout:
            raise MailcowApiError(f"{action}: no answer within {self.timeout[1]:.0f} s; "
                                  "check that php-fpm-mailcow and nginx-mailcow are running") from None
        except requests.exceptions.SSLError as exc:
            raise MailcowApiError(f"{action}: TLS verification failed ({_reason(exc)}); the certificate "
                                  "does not match the host's own Mailcow certificate and hostname") from None
        except requests.RequestException as exc:
            raise MailcowApiError(f"{action}: cannot reach the API ({_reason(exc)})") from None
        log.debug("%s -> HTTP %s", action, response.status_code)
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        if response.status_code >= 400:
            msg = data.get("msg") if isinstance(data, dict) else response.text[:200]
            hint = {401: "the API key or API_ALLOW_FROM in mailcow.conf does not match (wrong keys are "
                         "counted by Mailcow's fail2ban)",
                    403: "the key is read-only or access is denied",
                    404: "this Mailcow version does not know this endpoint"}.get(response.status_code, "")
            raise MailcowApiError(f"{action}: HTTP {response.status_code}: {msg}" + (f"; {hint}" if hint else ""),
                                  ) from None
        if data is None and response.content:
            raise MailcowApiError(f"{action}: answer is not JSON: {response.text[:200]!r}")
        return data

    def get(self, *segments: str, params: Mapping[str, str] | None = None) -> Any:
        return check_read(self._send("GET", ("get", *segments), params=params), f"{self.label}: get/{'/'.join(segments)}")

    def post(self, action: str, category: str, body: Any, *extra: str) -> list[dict[str, Any]]:
        """``add``/``edit``/``delete``: raise on any ``danger``/``error`` entry."""
        segments = (action, category, *extra)
        return check_write(self._send("POST", segments, body=body), f"{self.label}: {'/'.join(segments)}")

    def edit(self, category: str, items: Any, attr: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.post("edit", category, {"items": items, "attr": dict(attr)})

    def delete(self, category: str, items: Iterable[Any]) -> list[dict[str, Any]]:
        return self.post("delete", category, list(items))

    # ------------------------------------------------------------ domains

    def get_domains(self) -> list[dict[str, Any]]:
        return parse_list(self.get("domain", "all"))

    def get_domain(self, domain: str) -> dict[str, Any] | None:
        return parse_object(self.get("domain", domain))

    def add_domain(self, domain: str, **attr: Any) -> None:
        self.post("add", "domain", {"domain": domain, **attr})

    def edit_domain(self, domain: str | list[str], **attr: Any) -> None:
        self.edit("domain", domain if isinstance(domain, list) else [domain], attr)

    def delete_domain(self, *domains: str) -> None:
        self.delete("domain", domains)

    # ------------------------------------------------------------ DKIM

    def get_dkim(self, domain: str) -> dict[str, Any] | None:
        return parse_object(self.get("dkim", domain))

    def add_dkim(self, domain: str, *, selector: str, key_size: int = 2048) -> None:
        self.post("add", "dkim", {"domains": domain, "dkim_selector": selector, "key_size": key_size})

    def import_dkim(self, domain: str, *, selector: str, private_key_pem: str, overwrite: bool = False) -> None:
        """``add/dkim_import`` (absent from the spec, implemented since 2017): our key, our selector."""
        self.post("add", "dkim_import", {"domain": domain, "dkim_selector": selector,
                                         "private_key_file": private_key_pem,
                                         "overwrite_existing": 1 if overwrite else 0})

    def delete_dkim(self, *domains: str) -> None:
        self.delete("dkim", domains)

    # ------------------------------------------------------------ mailboxes and aliases

    def get_mailboxes(self) -> list[dict[str, Any]]:
        return parse_list(self.get("mailbox", "all"))

    def get_mailbox(self, address: str) -> dict[str, Any] | None:
        return parse_object(self.get("mailbox", address))

    def add_mailbox(self, local_part: str, domain: str, *, password: str, quota_mb: int = 1024,
                    name: str = "", **attr: Any) -> None:
        self.post("add", "mailbox", {"local_part": local_part, "domain": domain, "name": name,
                                     "password": password, "password2": password, "quota": quota_mb,
                                     "active": 1, **attr})

    def edit_mailbox(self, address: str, **attr: Any) -> None:
        self.edit("mailbox", [address], attr)

    def get_aliases(self) -> list[dict[str, Any]]:
        return parse_list(self.get("alias", "all"))

    def add_alias(self, address: str, goto: Iterable[str] | str, *, active: bool = True) -> int:
        """Create an alias and return its id, read back (``add/alias`` returns none)."""
        target = goto if isinstance(goto, str) else ",".join(goto)
        self.post("add", "alias", {"address": address, "goto": target, "active": 1 if active else 0})
        return self._read_back_id(self.get_aliases(), {"address": address}, "alias", address)

    def delete_alias(self, *ids: int) -> None:
        self.delete("alias", [str(i) for i in ids])

    # ------------------------------------------------------------ relayhosts and transports

    def get_relayhosts(self) -> list[dict[str, Any]]:
        return parse_list(self.get("relayhost", "all"))

    def add_relayhost(self, hostname: str, *, username: str = "", password: str = "") -> int:
        """Create a sender-dependent transport (relayhost) and return its id, read back."""
        self.post("add", "relayhost", {"hostname": hostname, "username": username, "password": password})
        return self._read_back_id(self.get_relayhosts(), {"hostname": hostname, "username": username},
                                  "relayhost", hostname)

    def delete_relayhost(self, *ids: int) -> None:
        self.delete("relayhost", [str(i) for i in ids])

    def get_transports(self) -> list[dict[str, Any]]:
        return parse_list(self.get("transport", "all"))

    def add_transport(self, destination: str, nexthop: str, *, username: str = "", password: str = "",
                      active: bool = True) -> int:
        self.post("add", "transport", {"destination": destination, "nexthop": nexthop, "username": username,
                                       "password": password, "active": 1 if active else 0})
        return self._read_back_id(self.get_transports(), {"destination": destination}, "transport", destination)

    def delete_transport(self, *ids: int) -> None:
        self.delete("transport", [str(i) for i in ids])

    # ------------------------------------------------------------ status and logs

    def get_containers(self) -> dict[str, dict[str, Any]]:
        """Compose service name → ``{"state", "container", "image", ...}`` (``{}`` → ``{}``)."""
        body = self.get("status", "containers")
        if not isinstance(body, dict):
            return {}
        return {str(name): dict(info) for name, info in body.items() if isinstance(info, dict)}

    def get_version(self) -> str:
        body = self.get("status", "version")
        version = body.get("version") if isinstance(body, dict) else None
        if not version:
            raise MailcowApiError(f"{self.label}: get/status/version answered no version (Mailcow issue #4947); "
                                  "check data/web/inc/app_info.inc.php on the host")
        return str(version)

    def get_postfix_logs(self, count: int = 1000) -> list[dict[str, Any]]:
        return parse_list(self.get("logs", "postfix", str(int(count))))

    # ------------------------------------------------------------ helpers

    def _read_back_id(self, items: list[dict[str, Any]], match: Mapping[str, Any], kind: str, what: str) -> int:
        found = find_id(items, match)
        if found is None:
            raise MailcowApiError(f"{self.label}: Mailcow said the {kind} {what} was added but does not list it; "
                                  "check the Mailcow UI before retrying")
        return found


def _reason(exc: Exception) -> str:
    """An exception's message without anything that could carry headers."""
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."
