"""Read ``mailcow.conf`` the way Docker Compose reads ``.env`` and php-fpm's entrypoint reads
the API settings.

Pure: takes text, returns data. Runs under the lab host's ``/usr/bin/python3`` (stdlib only).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_KEY_CHARS = re.compile(r"[^a-zA-Z0-9-]")


# nginx-mailcow's set_real_ip_from (sites-default.conf.j2)
_REAL_IP_FROM = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


class ConfError(ValueError):
    """mailcow.conf cannot be read; the message names the line and what to fix."""


def parse_mailcow_conf(text: str, source: str = "mailcow.conf") -> dict[str, str]:
    """Return KEY -> value for every active (uncommented) assignment; the last one wins.

    Quotes around a whole value are removed as Compose does; ``#`` starts a comment only at the
    beginning of a line (mailcow.conf never uses trailing comments). A line that is neither
    blank, comment nor ``KEY=VALUE`` is an error, because Compose refuses such a ``.env`` too.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfError(
                f"{source}:{number}: {raw!r} is not KEY=VALUE; fix or comment out that line "
                "(docker compose refuses an .env with such a line)"
            )
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def strip_api_key(raw: str) -> str:
    """Mailcow strips every character outside ``a-zA-Z0-9-`` from a key before using it."""
    return _KEY_CHARS.sub("", raw)


def parse_allow_from(raw: str) -> list[str]:
    """Split ``API_ALLOW_FROM`` on commas, spaces and semicolons and keep the entries that are
    valid IPv4/IPv6 addresses or networks, like php-fpm's entrypoint does."""
    entries = [item for item in re.split(r"[\s,;]+", raw.strip()) if item]
    valid: list[str] = []
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        valid.append(entry)
    return valid


@dataclass(frozen=True)
class ApiAccess:
    """The API keys active after php-fpm started: ``rw`` / ``ro`` key (empty = none)."""

    rw_key: str
    ro_key: str
    allow_from: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"rw_key": self.rw_key, "ro_key": self.ro_key, "allow_from": list(self.allow_from)}

    @staticmethod
    def from_json(data: dict[str, object]) -> "ApiAccess":
        return ApiAccess(
            rw_key=str(data.get("rw_key", "")),
            ro_key=str(data.get("ro_key", "")),
            allow_from=tuple(str(x) for x in data.get("allow_from", []) or []),  # type: ignore[union-attr]
        )


def parse_api_access(conf: dict[str, str]) -> ApiAccess:
    """The keys php-fpm's entrypoint installs from the environment.

    docker-compose.yml passes ``API_KEY=${API_KEY:-invalid}`` etc.; the entrypoint installs a key
    only if at least one ``API_ALLOW_FROM`` entry is a valid address, so an unset or invalid
    ``API_ALLOW_FROM`` leaves the API without keys (every call answers 401).
    """
    allow = parse_allow_from(conf.get("API_ALLOW_FROM", "invalid") or "invalid")
    if not allow:
        return ApiAccess("", "", ())
    rw = strip_api_key(conf.get("API_KEY", "invalid") or "invalid")
    ro = strip_api_key(conf.get("API_KEY_READ_ONLY", "invalid") or "invalid")
    return ApiAccess(rw if rw != "invalid" else "", ro if ro != "invalid" else "", tuple(allow))


def client_seen_as(peer: str, forwarded_for: str | None, ipv4_network: str) -> str:
    """The address Mailcow's PHP sees for a client.

    A client on the host's loopback reaches nginx-mailcow through the docker bridge, so PHP
    sees the bridge gateway ``${IPV4_NETWORK}.1`` (issue #1374). nginx trusts X-Forwarded-For
    from private ranges (``set_real_ip_from``), so a proxy there can name the real client.
    """
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return f"{ipv4_network}.1"
    if forwarded_for and any(address in net for net in _REAL_IP_FROM if net.version == address.version):
        last = forwarded_for.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return str(address)
    return str(address)


def address_allowed(client: str, allow_from: tuple[str, ...]) -> bool:
    """True when the client address is inside one of the ``API_ALLOW_FROM`` entries."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    for entry in allow_from:
        network = ipaddress.ip_network(entry, strict=False)
        if address.version == network.version and address in network:
            return True
    return False
