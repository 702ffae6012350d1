"""Render what deploy places into a Mailcow checkout: templates and ``mailcow.conf`` overrides.

Pure: the template texts come in as strings (``sources`` loads them), Jinja2 runs with
``StrictUndefined`` and no filesystem loader, so a typo in a template is an error, not an
empty string in a mail server's config.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Mapping
from typing import Any

import jinja2
from ruamel.yaml import YAML

from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Fleet, Host

# Postfix's and Rspamd's own networks that must stay trusted (Mailcow docs: "The subnets before
# our attached example subnet MUST exist ... otherwise Watchdog or some Sieve filters will not work").
MAILCOW_LOCAL_NETWORKS = ("127.0.0.0/8", "::ffff:127.0.0.0/104", "::1/128", "fe80::/10", "172.22.1.0/24",
                          "fd4d:6169:6c63:6f77::/64")


class TemplateError(MailfleetError):
    """A template or the overrides file cannot be rendered."""


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["postfix_net"] = postfix_network
    return env


def postfix_network(network: str) -> str:
    """Postfix wants IPv6 networks in brackets: ``[fe80::]/10`` (the address kept as written)."""
    net = ipaddress.ip_network(network, strict=False)  # validates
    if net.version == 6:
        address, _, length = network.partition("/")
        return f"[{address}]/{length or net.prefixlen}"
    return str(net)


def relay_clients(host: Host, fleet: Fleet) -> list[str]:
    """Networks a relay accepts mail from without authentication: the public IPs of the inbound
    hosts whose domains it relays, plus the fleet's trusted networks (the lab's subnet)."""
    clients: list[str] = list(fleet.settings.trusted_networks)
    for domain in fleet.domains.values():
        if host.name not in (domain.relay, domain.transactional_relay):
            continue
        for inbound in domain.inbound_hosts:
            for ip in fleet.hosts[inbound].public_ips:
                clients.append(str(ipaddress.ip_network(ip)))
    unique: list[str] = []
    for net in clients:
        normal = str(ipaddress.ip_network(net, strict=False))
        if normal not in unique:
            unique.append(normal)
    return unique


def template_context(host: Host, fleet: Fleet) -> dict[str, Any]:
    ipv4 = [ip for ip in host.public_ips if ipaddress.ip_address(ip).version == 4]
    ipv6 = [ip for ip in host.public_ips if ipaddress.ip_address(ip).version == 6]
    return {
        "host": host,
        "fleet": fleet,
        "settings": fleet.settings,
        "inbound": host.has_role("inbound"),
        "relay": host.has_role("outbound-relay"),
        "public_ipv4": ipv4[0] if ipv4 else "",
        "public_ipv6": ipv6[0] if ipv6 else "",
        "relay_clients": relay_clients(host, fleet) if host.has_role("outbound-relay") else [],
        "mailcow_local_networks": list(MAILCOW_LOCAL_NETWORKS),
        "served_domains": [d.ascii for d in fleet.domains_served_by(host.name)],
    }


def render_template(text: str, context: Mapping[str, Any], name: str) -> str:
    try:
        return _env().from_string(text).render(**context)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise TemplateError(f"{name}{':' + str(line) if line else ''}: cannot render: {exc}") from None


def render_conf_overrides(yaml_text: str, source: str, host: Host, fleet: Fleet, api_key: str) -> dict[str, str]:
    """The mailcow.conf keys this host gets: ``all`` → each of its roles → the host's ``mailcow_conf``.

    Values are Jinja2 expressions over the host and fleet (plus ``api_key``); a value that
    renders empty is left out (e.g. ``SNAT_TO_SOURCE`` for a host without a public IPv4).
    """
    try:
        doc = YAML(typ="safe").load(io.StringIO(yaml_text)) or {}
    except Exception as exc:  # ruamel raises several types
        raise TemplateError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise TemplateError(f"{source}: must map sections (all, inbound, outbound-relay, monitoring) to keys")
    unknown = set(doc) - {"all", "inbound", "outbound-relay", "monitoring"}
    if unknown:
        raise TemplateError(f"{source}: unknown section(s) {', '.join(sorted(map(str, unknown)))}; "
                            "use all, inbound, outbound-relay, monitoring")
    context = {**template_context(host, fleet), "api_key": api_key}
    merged: dict[str, str] = {}
    for section in ("all", *host.roles):
        values = doc.get(section) or {}
        if not isinstance(values, Mapping):
            raise TemplateError(f"{source}: section {section!r} must map keys to values")
        for key, value in values.items():
            rendered = render_template(str(value), context, f"{source} {section}.{key}").strip()
            if rendered:
                merged[str(key)] = rendered
            else:
                merged.pop(str(key), None)
    merged.update(host.mailcow_conf)
    return merged
