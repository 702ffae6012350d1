"""The inventory as typed, immutable data: what the rest of mailfleet reads.

Parsing and validation (``parse.py``) build these from the YAML document; nothing here does I/O.
Domain names are kept in their IDNA ASCII form (``ascii``) for everything that reaches DNS,
Mailcow or Postfix, and as written (``name``) for messages to the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time

ROLES = ("inbound", "outbound-relay", "monitoring")


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret: ``env:NAME`` or ``file:PATH`` (relative to the inventory's folder)."""

    scheme: str
    name: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.name}"


@dataclass(frozen=True)
class MaintenanceWindow:
    """Weekly window(s) in a time zone. ``days`` are ISO weekdays (1 = Monday) on which the
    window *starts*; a window whose end is not after its start runs past midnight."""

    days: frozenset[int]
    start: time
    end: time
    tz: str
    text: str

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class MailcowSettings:
    repository: str = "https://github.com/mailcow/mailcow-dockerized.git"
    version: str = ""
    install_dir: str = "/opt/mailcow-dockerized"
    docker_source: str = "docker-repository"
    # Where `upgrade` asks backup_and_restore.sh to write its pre-update backup on each host.
    backup_location: str = "/var/backups/mailcow"


@dataclass(frozen=True)
class BulkTransport:
    """Postfix settings of the ``bulk`` transport (see ``priority``)."""

    destination_concurrency_limit: int = 12
    destination_rate_delay: str = "0s"
    maximal_backoff_time: str = "4000s"
    minimal_backoff_time: str = "300s"
    source_address: str | None = None


@dataclass(frozen=True)
class FleetSettings:
    name: str = "fleet"
    mailcow: MailcowSettings = field(default_factory=MailcowSettings)
    timezone: str = "UTC"
    maintenance_window: MaintenanceWindow | None = None
    dmarc_reports: str | None = None
    tlsrpt_reports: str | None = None
    secrets_dir: str = "secrets"
    bulk_transport: BulkTransport = field(default_factory=BulkTransport)
    # Lab and advanced settings: the address range Postfix on relays trusts, TLS CA for the API.
    trusted_networks: tuple[str, ...] = ()
    api_port: int = 443
    # The SSH private key mailfleet logs in with (a secret reference to a key file). Without
    # it, paramiko's defaults apply (an SSH agent, ~/.ssh/id_*); ~/.ssh/config is never read.
    ssh_identity: SecretRef | None = None


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    hostname: str
    roles: tuple[str, ...]
    ssh_port: int = 22
    ssh_user: str = "root"
    host_key: str | None = None
    public_ips: tuple[str, ...] = ()
    maintenance_window: MaintenanceWindow | None = None
    api_key: SecretRef | None = None
    mailcow_conf: Mapping[str, str] = field(default_factory=dict)
    # Base system, applied by deploy only where set: a swap file of this size (0 = leave swap
    # alone) and kernel parameters (``net.core.somaxconn: 4096``).
    swap_mb: int = 0
    sysctl: Mapping[str, str] = field(default_factory=dict)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def runs_mailcow(self) -> bool:
        """Inbound hosts and relays run Mailcow; a monitoring-only host does not."""
        return self.has_role("inbound") or self.has_role("outbound-relay")


@dataclass(frozen=True)
class Mailbox:
    local_part: str
    quota_mb: int = 1024
    name: str = ""
    password: SecretRef | None = None


@dataclass(frozen=True)
class DkimSettings:
    selector: str = "dkim"
    key_size: int = 2048


@dataclass(frozen=True)
class DmarcPolicy:
    policy: str = "none"
    subdomain_policy: str | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: str | None = None


@dataclass(frozen=True)
class BulkRules:
    senders: tuple[str, ...] = ()
    sender_domains: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.senders or self.sender_domains or self.headers)


@dataclass(frozen=True)
class Domain:
    name: str
    ascii: str
    inbound: tuple[tuple[str, int], ...]
    relay: str | None = None
    transactional_relay: str | None = None
    dkim: DkimSettings = field(default_factory=DkimSettings)
    dmarc: DmarcPolicy = field(default_factory=DmarcPolicy)
    mta_sts: str | None = None
    tlsrpt: bool = True
    mailboxes: tuple[Mailbox, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bulk: BulkRules = field(default_factory=BulkRules)

    @property
    def inbound_hosts(self) -> tuple[str, ...]:
        """Inbound host names, most preferred (lowest MX preference) first."""
        return tuple(name for name, _ in sorted(self.inbound, key=lambda item: (item[1], item[0])))

    @property
    def signing_hosts(self) -> tuple[str, ...]:
        """Every host that signs this domain's mail: its inbound hosts and its relays."""
        hosts = list(self.inbound_hosts)
        for relay in (self.relay, self.transactional_relay):
            if relay and relay not in hosts:
                hosts.append(relay)
        return tuple(hosts)


@dataclass(frozen=True)
class Fleet:
    settings: FleetSettings
    hosts: Mapping[str, Host]
    domains: Mapping[str, Domain]
    source: str = ""

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def hosts_with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.has_role(role)]

    def domain(self, name: str) -> Domain | None:
        """Find a domain by its written or IDNA form, case-insensitively."""
        key = name.strip().rstrip(".").lower()
        for domain in self.domains.values():
            if key in (domain.name.lower(), domain.ascii):
                return domain
        return None

    def window_of(self, host: Host) -> MaintenanceWindow | None:
        return host.maintenance_window or self.settings.maintenance_window

    def domains_served_by(self, host_name: str) -> list[Domain]:
        return [d for d in self.domains.values() if host_name in d.inbound_hosts]

    def domains_signed_by(self, host_name: str) -> list[Domain]:
        return [d for d in self.domains.values() if host_name in d.signing_hosts]
