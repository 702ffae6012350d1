"""Build a ``Fleet`` from an inventory document and collect every problem at once.

The document is the round-trip tree ruamel.yaml returns (``CommentedMap``/``CommentedSeq``),
so every problem points at its file:line:column. Nothing stops at the first problem: the
user gets the whole list, each with a hint (octoDNS's ValidationError, Mail-in-a-Box's advice).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailfleet.errors import Problem
from mailfleet.inventory import rules_names as rules
from mailfleet.inventory.model import (
    ROLES,
    BulkRules,
    BulkTransport,
    DkimSettings,
    DmarcPolicy,
    Domain,
    Fleet,
    FleetSettings,
    Host,
    Mailbox,
    MailcowSettings,
    MaintenanceWindow,
    SecretRef,
)
from mailfleet.inventory.parse_window import WindowError, parse_window

TOP_KEYS = ("fleet", "hosts", "domains")
FLEET_KEYS = ("name", "mailcow", "timezone", "maintenance_window", "dmarc_reports", "tlsrpt_reports",
              "secrets_dir", "bulk_transport", "trusted_networks", "api_port", "ssh_identity")
MAILCOW_KEYS = ("repository", "version", "install_dir", "docker_source", "backup_location")
BULK_TRANSPORT_KEYS = ("destination_concurrency_limit", "destination_rate_delay", "maximal_backoff_time",
                       "minimal_backoff_time", "source_address")
HOST_KEYS = ("address", "ssh_port", "ssh_user", "host_key", "hostname", "roles", "public_ips",
             "maintenance_window", "api_key", "mailcow_conf", "swap_mb", "sysctl")
DOMAIN_KEYS = ("inbound", "relay", "transactional_relay", "dkim", "dmarc", "mta_sts", "tlsrpt",
               "mailboxes", "aliases", "bulk")
DKIM_KEYS = ("selector", "key_size")
DMARC_KEYS = ("policy", "subdomain_policy", "pct", "adkim", "aspf", "rua")
MAILBOX_KEYS = ("quota_mb", "name", "password")
BULK_KEYS = ("senders", "sender_domains", "headers")
DMARC_POLICIES = ("none", "quarantine", "reject")
MTA_STS_MODES = ("enforce", "testing", "none")
DOCKER_SOURCES = ("distribution", "docker-repository")
# mailcow.conf keys that hold secrets or that mailfleet owns; they may not be set per host.
MANAGED_CONF_KEYS = {
    "API_KEY": "the API key comes from the host's api_key secret reference",
    "API_KEY_READ_ONLY": "the read-only API key is derived by mailfleet",
    "DBPASS": "Mailcow generated it; mailfleet keeps it and never rewrites it",
    "DBROOT": "Mailcow generated it; mailfleet keeps it and never rewrites it",
    "REDISPASS": "Mailcow generated it; mailfleet keeps it and never rewrites it",
    "MAILCOW_HOSTNAME": "it comes from the host's hostname",
}
# Postfix's limit for a bulk transport that still leaves room for transactional mail under a
# typical receiving MX's per-client connection cap (Gmail, Microsoft: about 20).
MAX_BULK_CONCURRENCY = 15
_DURATION = re.compile(r"^\d+[smhdw]?$")


@dataclass
class ParseResult:
    fleet: Fleet | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Collector:
    """Collects problems with positions taken from ruamel's line/column data (0-based there)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def at(self, container: Any, key: Any = None, *, value: bool = False) -> tuple[int, int]:
        lc = getattr(container, "lc", None)
        try:
            if lc is not None and key is not None:
                if isinstance(key, int) and not isinstance(container, Mapping):
                    line, col = lc.item(key)
                elif value:
                    line, col = lc.value(key)
                else:
                    line, col = lc.key(key)
                return line + 1, col + 1
            if lc is not None:
                return (lc.line or 0) + 1, (lc.col or 0) + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        return 1, 1

    def add(self, container: Any, key: Any, message: str, hint: str = "", *, value: bool = True) -> None:
        line, col = self.at(container, key, value=value)
        self.problems.append(Problem(self.source, line, col, message, hint))


def parse_inventory(doc: Any, source: str = "inventory") -> ParseResult:
    """Validate ``doc`` and build the ``Fleet``; ``fleet`` is None when there are problems."""
    out = _Collector(source)
    if not isinstance(doc, Mapping):
        out.add(doc, None, "the inventory must be a mapping with fleet, hosts and domains",
                "start from inventory/example.yaml")
        return ParseResult(None, out.problems)
    _unknown_keys(out, doc, TOP_KEYS, "top level")
    settings = _parse_fleet(out, doc.get("fleet") or {}, doc)
    hosts = _parse_hosts(out, doc)
    domains = _parse_domains(out, doc, hosts, settings)
    _fleet_checks(out, doc, settings, domains)
    if out.problems:
        return ParseResult(None, out.problems)
    return ParseResult(Fleet(settings=settings, hosts=hosts, domains=domains, source=source))


# -- helpers ---------------------------------------------------------------------------------

def _unknown_keys(out: _Collector, mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(allowed)}"
            out.add(mapping, key, f"unknown key {key!r} in {where}", hint, value=False)


def _mapping(out: _Collector, parent: Any, key: Any, where: str) -> Mapping[str, Any]:
    value = parent.get(key) if isinstance(parent, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        out.add(parent, key, f"{where} must be a mapping (key: value lines), not {type(value).__name__}")
        return {}
    return value


def _list(out: _Collector, parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list):
        out.add(parent, key, f"{where} must be a list, e.g. [a, b]")
        return []
    return list(value)


def _checked(out: _Collector, container: Any, key: Any, value: Any, check: Callable[[str], str], what: str,
             hint: str = "", *, on_key: bool = False) -> str | None:
    """Run ``check``; on failure report at the value (or at the key itself when it is the subject)."""
    try:
        return check(str(value))
    except ValueError as exc:
        out.add(container, key, f"{what}: {exc}", hint, value=not on_key)
        return None


def _int(out: _Collector, parent: Mapping[str, Any], key: str, default: int, low: int, high: int, what: str) -> int:
    value = parent.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= high):
        out.add(parent, key, f"{what} must be a whole number from {low} to {high}, not {value!r}")
        return default
    return value


def _choice(out: _Collector, parent: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str | None,
            what: str) -> str | None:
    value = parent.get(key, default)
    if value is None:
        return None
    text = str(value).lower()
    if text not in choices:
        close = difflib.get_close_matches(text, choices, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        out.add(parent, key, f"{what} must be one of {', '.join(choices)}, not {value!r}", hint)
        return default
    return text


def _secret(out: _Collector, parent: Mapping[str, Any], key: str, what: str) -> SecretRef | None:
    value = parent.get(key)
    if value is None:
        return None
    try:
        return rules.parse_secret_ref(value)
    except ValueError as exc:
        out.add(parent, key, f"{what}: {exc}")
        return None


def _window(out: _Collector, parent: Mapping[str, Any], key: str) -> MaintenanceWindow | None:
    value = parent.get(key)
    if value is None:
        return None
    try:
        return parse_window(str(value))
    except WindowError as exc:
        out.add(parent, key, str(exc))
        return None


# -- sections --------------------------------------------------------------------------------

def _parse_fleet(out: _Collector, raw: Any, doc: Mapping[str, Any]) -> FleetSettings:
    if not isinstance(raw, Mapping):
        out.add(doc, "fleet", "fleet must be a mapping of settings")
        return FleetSettings()
    _unknown_keys(out, raw, FLEET_KEYS, "fleet")
    mailcow_raw = _mapping(out, raw, "mailcow", "fleet.mailcow")
    _unknown_keys(out, mailcow_raw, MAILCOW_KEYS, "fleet.mailcow")
    version = str(mailcow_raw.get("version", "") or "")
    if mailcow_raw and not version:
        out.add(mailcow_raw, None, "fleet.mailcow.version is missing",
                "pin the Mailcow release every host runs, e.g. version: 2026-07a")
    install_dir = str(mailcow_raw.get("install_dir", MailcowSettings.install_dir))
    if not install_dir.startswith("/"):
        out.add(mailcow_raw, "install_dir", f"install_dir must be an absolute path, not {install_dir!r}")
    backup_location = str(mailcow_raw.get("backup_location", MailcowSettings.backup_location))
    if not backup_location.startswith("/"):
        out.add(mailcow_raw, "backup_location", f"backup_location must be an absolute path, not {backup_location!r}",
                "Mailcow's backup script refuses relative locations")
    mailcow = MailcowSettings(
        repository=str(mailcow_raw.get("repository", MailcowSettings.repository)),
        version=version,
        install_dir=install_dir,
        backup_location=backup_location,
        docker_source=_choice(out, mailcow_raw, "docker_source", DOCKER_SOURCES, "docker-repository",
                              "docker_source") or "docker-repository",
    )
    timezone = str(raw.get("timezone", "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.add(raw, "timezone", f"unknown time zone {timezone!r}", "use an IANA name such as Europe/Berlin or UTC")
    reports = {}
    for key in ("dmarc_reports", "tlsrpt_reports"):
        if raw.get(key) is not None:
            reports[key] = _checked(out, raw, key, raw[key], rules.check_email, f"fleet.{key}")
    bulk_raw = _mapping(out, raw, "bulk_transport", "fleet.bulk_transport")
    _unknown_keys(out, bulk_raw, BULK_TRANSPORT_KEYS, "fleet.bulk_transport")
    concurrency = _int(out, bulk_raw, "destination_concurrency_limit", 12, 1, 1000, "destination_concurrency_limit")
    if concurrency > MAX_BULK_CONCURRENCY:
        out.add(bulk_raw, "destination_concurrency_limit",
                f"a bulk concurrency of {concurrency} reaches the connection cap of big receivers (about 20 per client)",
                f"keep it at {MAX_BULK_CONCURRENCY} or below: a bulk transport as wide as the default one takes every "
                "connection the remote allows, and password resets are answered 421 and wait in the deferred queue")
    durations = {}
    for key in ("destination_rate_delay", "maximal_backoff_time", "minimal_backoff_time"):
        value = str(bulk_raw.get(key, getattr(BulkTransport, key)))
        if not _DURATION.match(value):
            out.add(bulk_raw, key, f"{key} must be a Postfix time such as 0s, 300s or 1h, not {value!r}")
        durations[key] = value
    source_address = bulk_raw.get("source_address")
    if source_address is not None:
        source_address = _checked(out, bulk_raw, "source_address", source_address, rules.check_ip, "source_address")
    trusted = []
    for i, net in enumerate(_list(out, raw, "trusted_networks", "fleet.trusted_networks")):
        import ipaddress
        try:
            trusted.append(str(ipaddress.ip_network(str(net), strict=False)))
        except ValueError:
            out.add(raw["trusted_networks"], i, f"{net!r} is not a network such as 10.0.0.0/24")
    return FleetSettings(
        name=str(raw.get("name", "fleet")),
        mailcow=mailcow,
        timezone=timezone,
        maintenance_window=_window(out, raw, "maintenance_window"),
        dmarc_reports=reports.get("dmarc_reports"),
        tlsrpt_reports=reports.get("tlsrpt_reports"),
        secrets_dir=str(raw.get("secrets_dir", "secrets")),
        bulk_transport=BulkTransport(destination_concurrency_limit=concurrency, source_address=source_address,
                                     **durations),
        trusted_networks=tuple(trusted),
        api_port=_int(out, raw, "api_port", 443, 1, 65535, "api_port"),
        ssh_identity=_secret(out, raw, "ssh_identity", "fleet.ssh_identity"),
    )


def _parse_hosts(out: _Collector, doc: Mapping[str, Any]) -> dict[str, Host]:
    raw_hosts = _mapping(out, doc, "hosts", "hosts")
    if not raw_hosts:
        out.add(doc, None, "the inventory has no hosts", "add at least one host under hosts:")
    hosts: dict[str, Host] = {}
    seen: dict[str, dict[str, str]] = {"address": {}, "hostname": {}, "public_ip": {}}
    for name, raw in raw_hosts.items():
        _checked(out, raw_hosts, name, name, rules.check_host_name, "host name", on_key=True)
        if not isinstance(raw, Mapping):
            out.add(raw_hosts, name, f"host {name!r} must be a mapping of settings")
            continue
        _unknown_keys(out, raw, HOST_KEYS, f"host {name!r}")
        for required in ("address", "hostname", "roles"):
            if raw.get(required) in (None, "", []):
                out.add(raw_hosts, name, f"host {name!r} has no {required}", _REQUIRED_HINTS[required], value=False)
        address = _checked(out, raw, "address", raw.get("address", ""), rules.check_address, "address") or ""
        hostname = _checked(out, raw, "hostname", raw.get("hostname", ""), rules.check_fqdn, "hostname") or ""
        roles = []
        for i, role in enumerate(_list(out, raw, "roles", "roles")):
            if role not in ROLES:
                close = difflib.get_close_matches(str(role), ROLES, n=1)
                container = raw["roles"] if isinstance(raw["roles"], list) else raw
                key = i if isinstance(raw["roles"], list) else "roles"
                out.add(container, key, f"unknown role {role!r}",
                        f"did you mean {close[0]!r}?" if close else f"roles are {', '.join(ROLES)}")
            elif role not in roles:
                roles.append(role)
        public_ips = []
        ips_raw = raw.get("public_ips")
        for i, ip in enumerate(_list(out, raw, "public_ips", "public_ips")):
            container, key = (ips_raw, i) if isinstance(ips_raw, list) else (raw, "public_ips")
            checked = _checked(out, container, key, ip, rules.check_ip, f"public IP of {name}")
            if checked:
                public_ips.append(checked)
        host_key = None
        if raw.get("host_key") is not None:
            host_key = _checked(out, raw, "host_key", raw["host_key"], rules.check_host_key, "host_key")
        conf = {}
        conf_raw = _mapping(out, raw, "mailcow_conf", "mailcow_conf")
        for key, value in conf_raw.items():
            if not re.match(r"^[A-Z][A-Z0-9_]*$", str(key)):
                out.add(conf_raw, key, f"mailcow.conf key {key!r} must be upper case like SKIP_CLAMD", value=False)
            elif key in MANAGED_CONF_KEYS:
                out.add(conf_raw, key, f"{key} may not be set in the inventory: {MANAGED_CONF_KEYS[key]}", value=False)
            elif isinstance(value, (Mapping, list)):
                out.add(conf_raw, key, f"mailcow.conf value of {key} must be a single value")
            else:
                conf[str(key)] = _conf_value(value)
        sysctl: dict[str, str] = {}
        sysctl_raw = _mapping(out, raw, "sysctl", "sysctl")
        for key, value in sysctl_raw.items():
            if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", str(key)):
                out.add(sysctl_raw, key, f"sysctl key {key!r} is not a kernel parameter name like net.core.somaxconn",
                        value=False)
            elif isinstance(value, (Mapping, list)) or value is None or "\n" in str(value):
                out.add(sysctl_raw, key, f"sysctl value of {key} must be a single value")
            else:
                sysctl[str(key)] = str(value)
        api_key = _secret(out, raw, "api_key", f"api_key of {name}")
        if api_key is None and any(r in roles for r in ("inbound", "outbound-relay")) and "api_key" not in raw:
            out.add(raw_hosts, name, f"host {name!r} runs Mailcow but has no api_key reference",
                    "add api_key: file:secrets/NAME.api-key (mailfleet writes it into mailcow.conf as API_KEY)",
                    value=False)
        for kind, value, container, key in [("address", address, raw, "address"), ("hostname", hostname, raw, "hostname")]:
            if value and value in seen[kind]:
                out.add(container, key, f"{kind} {value} is used by both {seen[kind][value]!r} and {name!r}",
                        "every host needs its own; a copy-paste slip sends one host's changes to another")
            elif value:
                seen[kind][value] = str(name)
        for i, ip in enumerate(public_ips):
            if ip in seen["public_ip"]:
                container, key = (ips_raw, i) if isinstance(ips_raw, list) else (raw, "public_ips")
                out.add(container, key, f"public IP {ip} is listed for both {seen['public_ip'][ip]!r} and {name!r}",
                        "an IP belongs to one host; SPF and PTR advice depend on it")
            else:
                seen["public_ip"][ip] = str(name)
        hosts[str(name)] = Host(
            name=str(name), address=address, hostname=hostname, roles=tuple(roles),
            ssh_port=_int(out, raw, "ssh_port", 22, 1, 65535, "ssh_port"),
            ssh_user=str(raw.get("ssh_user", "root")), host_key=host_key, public_ips=tuple(public_ips),
            maintenance_window=_window(out, raw, "maintenance_window"), api_key=api_key, mailcow_conf=conf,
            swap_mb=_int(out, raw, "swap_mb", 0, 0, 1048576, "swap_mb"), sysctl=sysctl,
        )
    return hosts


_REQUIRED_HINTS = {
    "address": "address: the IP or name SSH connects to",
    "hostname": "hostname: the FQDN Mailcow answers as, e.g. mx1.mail.example.com",
    "roles": "roles: [inbound], [outbound-relay] or [monitoring]",
}


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


def _parse_domains(out: _Collector, doc: Mapping[str, Any], hosts: Mapping[str, Host],
                   settings: FleetSettings) -> dict[str, Domain]:
    raw_domains = _mapping(out, doc, "domains", "domains")
    domains: dict[str, Domain] = {}
    ascii_seen: dict[str, str] = {}
    for name, raw in raw_domains.items():
        ascii_name = _checked(out, raw_domains, name, name, rules.to_ascii_domain, "domain name", on_key=True)
        if ascii_name and ascii_name in ascii_seen:
            out.add(raw_domains, name, f"domain {name!r} is the same as {ascii_seen[ascii_name]!r}", value=False)
        if ascii_name:
            ascii_seen[ascii_name] = str(name)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            out.add(raw_domains, name, f"domain {name!r} must be a mapping of settings")
            continue
        domain = _parse_domain(out, str(name), ascii_name or str(name), raw, raw_domains, hosts)
        domains[str(name)] = domain
    return domains


def _parse_domain(out: _Collector, name: str, ascii_name: str, raw: Mapping[str, Any], parent: Mapping[str, Any],
                  hosts: Mapping[str, Host]) -> Domain:
    _unknown_keys(out, raw, DOMAIN_KEYS, f"domain {name!r}")
    inbound: list[tuple[str, int]] = []
    inbound_raw = raw.get("inbound")
    if isinstance(inbound_raw, list):
        inbound_raw = {h: 10 * (i + 1) for i, h in enumerate(inbound_raw)}
    if not inbound_raw:
        out.add(parent, name, f"domain {name!r} has no MX host", "add inbound: {mx1: 10} naming an inbound host",
                value=False)
    elif not isinstance(inbound_raw, Mapping):
        out.add(raw, "inbound", "inbound must map host names to MX preferences, e.g. {mx1: 10, mx2: 20}")
    else:
        container = raw["inbound"] if isinstance(raw["inbound"], Mapping) else raw
        for host_name, pref in inbound_raw.items():
            key = host_name if container is not raw else "inbound"
            if not _host_has_role(out, container, key, str(host_name), "inbound", hosts, f"MX host of {name}"):
                continue
            if isinstance(pref, bool) or not isinstance(pref, int) or not 0 <= pref <= 65535:
                out.add(container, key, f"MX preference of {host_name} must be 0-65535, not {pref!r}")
                continue
            inbound.append((str(host_name), pref))
    relays = {}
    for key in ("relay", "transactional_relay"):
        if raw.get(key) is not None and _host_has_role(out, raw, key, str(raw[key]), "outbound-relay", hosts,
                                                       f"{key} of {name}"):
            relays[key] = str(raw[key])
    dkim_raw = _mapping(out, raw, "dkim", "dkim")
    _unknown_keys(out, dkim_raw, DKIM_KEYS, f"dkim of {name!r}")
    selector = _checked(out, dkim_raw, "selector", dkim_raw.get("selector", "dkim"), rules.check_selector,
                        "DKIM selector") or "dkim"
    key_size = dkim_raw.get("key_size", 2048)
    if key_size not in rules.DKIM_KEY_SIZES:
        out.add(dkim_raw, "key_size", f"DKIM key_size must be one of {rules.DKIM_KEY_SIZES}, not {key_size!r}",
                "2048 is the default and what receivers expect")
        key_size = 2048
    dmarc_raw = _mapping(out, raw, "dmarc", "dmarc")
    _unknown_keys(out, dmarc_raw, DMARC_KEYS, f"dmarc of {name!r}")
    rua = dmarc_raw.get("rua")
    if rua is not None:
        rua = _checked(out, dmarc_raw, "rua", str(rua).removeprefix("mailto:"), rules.check_email, "dmarc rua")
    dmarc = DmarcPolicy(
        policy=_choice(out, dmarc_raw, "policy", DMARC_POLICIES, "none", "DMARC policy") or "none",
        subdomain_policy=_choice(out, dmarc_raw, "subdomain_policy", DMARC_POLICIES, None, "DMARC subdomain_policy"),
        pct=_int(out, dmarc_raw, "pct", 100, 0, 100, "DMARC pct"),
        adkim=_choice(out, dmarc_raw, "adkim", ("r", "s"), "r", "adkim") or "r",
        aspf=_choice(out, dmarc_raw, "aspf", ("r", "s"), "r", "aspf") or "r",
        rua=rua,
    )
    mailboxes = []
    mb_raw = raw.get("mailboxes") or {}
    if isinstance(mb_raw, list):
        mb_raw = {str(x): {} for x in mb_raw}
    if not isinstance(mb_raw, Mapping):
        out.add(raw, "mailboxes", "mailboxes must map local parts to settings, e.g. {postmaster: {}}")
        mb_raw = {}
    container = raw["mailboxes"] if isinstance(raw.get("mailboxes"), Mapping) else raw
    for local, settings in mb_raw.items():
        key = local if container is not raw else "mailboxes"
        if _checked(out, container, key, local, rules.check_local_part, f"mailbox of {name}", on_key=True) is None:
            continue
        settings = settings or {}
        if not isinstance(settings, Mapping):
            out.add(container, key, f"mailbox {local}@{name} settings must be a mapping, e.g. {{quota_mb: 2048}}")
            continue
        _unknown_keys(out, settings, MAILBOX_KEYS, f"mailbox {local}@{name}")
        mailboxes.append(Mailbox(
            local_part=str(local), quota_mb=_int(out, settings, "quota_mb", 1024, 1, 10_000_000, "quota_mb"),
            name=str(settings.get("name", "")), password=_secret(out, settings, "password", f"password of {local}@{name}"),
        ))
    aliases: dict[str, tuple[str, ...]] = {}
    alias_raw = _mapping(out, raw, "aliases", "aliases")
    for local, targets in alias_raw.items():
        if _checked(out, alias_raw, local, local, rules.check_local_part, f"alias of {name}", on_key=True) is None:
            continue
        goto = []
        for target in (targets if isinstance(targets, list) else [targets]):
            checked = _checked(out, alias_raw, local, target, rules.check_email, f"alias target of {local}@{name}")
            if checked:
                goto.append(checked)
        if str(local) in {m.local_part for m in mailboxes}:
            out.add(alias_raw, local, f"{local}@{name} is both a mailbox and an alias", "keep one of them", value=False)
        aliases[str(local)] = tuple(goto)
    bulk_raw = _mapping(out, raw, "bulk", "bulk")
    _unknown_keys(out, bulk_raw, BULK_KEYS, f"bulk of {name!r}")
    senders = [s for s in (_checked(out, bulk_raw, "senders", v, rules.check_email, "bulk sender")
                           for v in _list(out, bulk_raw, "senders", "bulk.senders")) if s]
    sender_domains = [s for s in (_checked(out, bulk_raw, "sender_domains", v, rules.to_ascii_domain, "bulk sender domain")
                                  for v in _list(out, bulk_raw, "sender_domains", "bulk.sender_domains")) if s]
    headers = []
    for value in _list(out, bulk_raw, "headers", "bulk.headers"):
        text = str(value).strip()
        if not re.match(r"^[A-Za-z][A-Za-z0-9-]*(:\s*\S.*)?$", text):
            out.add(bulk_raw, "headers", f"bulk header rule {text!r} must be 'Name' or 'Name: value'")
        else:
            headers.append(text)
    for sender in senders:
        if not (sender.endswith("@" + ascii_name) or any(sender.endswith("." + ascii_name) or sender.split("@")[1] == d
                                                         for d in sender_domains)):
            if not sender.split("@")[1].endswith("." + ascii_name):
                out.add(bulk_raw, "senders", f"bulk sender {sender} is not in {name} or one of its subdomains",
                        "list it under the domain it sends from")
    return Domain(
        name=name, ascii=ascii_name, inbound=tuple(inbound), relay=relays.get("relay"),
        transactional_relay=relays.get("transactional_relay"),
        dkim=DkimSettings(selector=selector, key_size=key_size), dmarc=dmarc,
        mta_sts=_choice(out, raw, "mta_sts", MTA_STS_MODES, None, "mta_sts"),
        tlsrpt=bool(raw.get("tlsrpt", True)), mailboxes=tuple(mailboxes), aliases=aliases,
        bulk=BulkRules(senders=tuple(senders), sender_domains=tuple(sender_domains), headers=tuple(headers)),
    )


def _host_has_role(out: _Collector, container: Any, key: Any, host_name: str, role: str,
                   hosts: Mapping[str, Host], what: str) -> bool:
    if host_name not in hosts:
        close = difflib.get_close_matches(host_name, list(hosts), n=1)
        out.add(container, key, f"{what}: there is no host {host_name!r}",
                f"did you mean {close[0]!r}?" if close else f"hosts are {', '.join(hosts) or 'none'}",
                value=isinstance(key, str) and key in ("relay", "transactional_relay", "inbound"))
        return False
    if not hosts[host_name].has_role(role):
        out.add(container, key, f"{what}: host {host_name!r} lacks the {role!r} role "
                f"(it has {', '.join(hosts[host_name].roles) or 'none'})",
                f"add {role} to {host_name}'s roles or choose a host that has it",
                value=isinstance(key, str) and key in ("relay", "transactional_relay"))
        return False
    return True


def _fleet_checks(out: _Collector, doc: Mapping[str, Any], settings: FleetSettings,
                  domains: Mapping[str, Domain]) -> None:
    fleet_raw = doc.get("fleet") if isinstance(doc.get("fleet"), Mapping) else None
    if settings.dmarc_reports and fleet_raw is not None:
        local, _, report_domain = settings.dmarc_reports.partition("@")
        owner = next((d for d in domains.values() if d.ascii == report_domain), None)
        if owner is not None and local not in {m.local_part for m in owner.mailboxes} and local not in owner.aliases:
            out.add(fleet_raw, "dmarc_reports", f"DMARC reports go to {settings.dmarc_reports}, but {owner.name} has no "
                    f"mailbox {local!r}", f"add {local}: {{}} under domains.{owner.name}.mailboxes so reports arrive")
