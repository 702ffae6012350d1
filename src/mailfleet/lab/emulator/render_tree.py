"""The version-specific files of the emulated ``mailcow-dockerized`` tree.

Pure: a version in, file texts out. The real service names are kept; images carry per-version
tags, so ``docker compose up -d`` after an update really swaps what the status API reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICES = (
    "unbound-mailcow", "mysql-mailcow", "redis-mailcow", "clamd-mailcow", "rspamd-mailcow",
    "php-fpm-mailcow", "sogo-mailcow", "dovecot-mailcow", "postfix-mailcow", "memcached-mailcow",
    "nginx-mailcow", "acme-mailcow", "netfilter-mailcow", "watchdog-mailcow", "dockerapi-mailcow",
    "olefy-mailcow", "ofelia-mailcow",
)


@dataclass(frozen=True)
class EmulatedVersion:
    """One tagged release of the emulated repository."""

    tag: str
    date: str  # ISO 8601, used as the commit date so builds are reproducible
    modules_revision: str  # _modules/ content; a change makes update.sh exit 2 once
    images: dict[str, str] = field(default_factory=dict)


def _images(**tags: str) -> dict[str, str]:
    base = {
        "unbound-mailcow": "ghcr.io/mailcow/unbound:1.24", "mysql-mailcow": "mariadb:10.11",
        "redis-mailcow": "redis:7.4.2-alpine", "clamd-mailcow": "ghcr.io/mailcow/clamd:1.70",
        "rspamd-mailcow": "ghcr.io/mailcow/rspamd:2.2", "php-fpm-mailcow": "ghcr.io/mailcow/phpfpm:1.93",
        "sogo-mailcow": "ghcr.io/mailcow/sogo:1.133", "dovecot-mailcow": "ghcr.io/mailcow/dovecot:2.33",
        "postfix-mailcow": "ghcr.io/mailcow/postfix:3.10.12-1", "memcached-mailcow": "memcached:alpine",
        "nginx-mailcow": "ghcr.io/mailcow/nginx:1.03", "acme-mailcow": "ghcr.io/mailcow/acme:1.92",
        "netfilter-mailcow": "ghcr.io/mailcow/netfilter:1.61", "watchdog-mailcow": "ghcr.io/mailcow/watchdog:2.08",
        "dockerapi-mailcow": "ghcr.io/mailcow/dockerapi:2.11", "olefy-mailcow": "ghcr.io/mailcow/olefy:1.15",
        "ofelia-mailcow": "mcuadros/ofelia:latest",
    }
    for service, image in tags.items():
        base[service.replace("_", "-") + "-mailcow"] = image
    return base


VERSIONS = (
    EmulatedVersion("2026-07a", "2026-07-21T12:00:00+00:00", "1", _images()),
    EmulatedVersion("2026-09", "2026-09-09T12:00:00+00:00", "2", _images(
        postfix="ghcr.io/mailcow/postfix:3.10.14-1", dovecot="ghcr.io/mailcow/dovecot:2.34",
        php_fpm="ghcr.io/mailcow/phpfpm:1.94", rspamd="ghcr.io/mailcow/rspamd:2.3",
        nginx="ghcr.io/mailcow/nginx:1.04")),
)

_VOLUMES = {
    "mysql-mailcow": ["mysql-vol-1:/var/lib/mysql/"], "redis-mailcow": ["redis-vol-1:/data/"],
    "dovecot-mailcow": ["vmail-vol-1:/var/vmail", "crypt-vol-1:/mail_crypt/"],
    "postfix-mailcow": ["postfix-vol-1:/var/spool/postfix", "crypt-vol-1:/var/lib/zeyple",
                        "./data/conf/postfix:/opt/postfix/conf:z", "./data/hooks/postfix:/hooks:Z"],
    "rspamd-mailcow": ["rspamd-vol-1:/var/lib/rspamd", "./data/conf/rspamd/local.d:/etc/rspamd/local.d:Z"],
}
_ENV = {
    "php-fpm-mailcow": ["API_KEY=${API_KEY:-invalid}", "API_KEY_READ_ONLY=${API_KEY_READ_ONLY:-invalid}",
                        "API_ALLOW_FROM=${API_ALLOW_FROM:-invalid}", "MAILCOW_HOSTNAME=${MAILCOW_HOSTNAME}",
                        "IPV4_NETWORK=${IPV4_NETWORK:-172.22.1}", "LOG_LINES=${LOG_LINES:-9999}"],
    "postfix-mailcow": ["MAILCOW_HOSTNAME=${MAILCOW_HOSTNAME}", "TZ=${TZ}"],
    "dovecot-mailcow": ["MAILCOW_HOSTNAME=${MAILCOW_HOSTNAME}", "TZ=${TZ}"],
}
_PORTS = {
    "postfix-mailcow": ["${SMTP_PORT:-25}:25", "${SMTPS_PORT:-465}:465", "${SUBMISSION_PORT:-587}:587"],
    "dovecot-mailcow": ["${IMAP_PORT:-143}:143", "${IMAPS_PORT:-993}:993"],
    "nginx-mailcow": ["${HTTPS_BIND:-}:${HTTPS_PORT:-443}:${HTTPS_PORT:-443}"],
}


def render_compose(version: EmulatedVersion) -> str:
    """docker-compose.yml for one version (YAML written by hand: stable, reviewable diffs)."""
    lines = [f"# mailcow-dockerized {version.tag} (mailcow emulator): services run as emulations on the lab host",
             "services:"]
    for service in SERVICES:
        lines.append(f"    {service}:")
        lines.append(f"      image: {version.images[service]}")
        for key, table in (("environment", _ENV), ("volumes", _VOLUMES), ("ports", _PORTS)):
            if service in table:
                lines.append(f"      {key}:")
                lines += [f"        - {item}" for item in table[service]]
        lines.append("      restart: always")
        lines.append("      networks:")
        lines.append("        mailcow-network:")
        lines.append("          aliases:")
        lines.append(f"            - {service.removesuffix('-mailcow')}")
    lines += ["", "networks:", "  mailcow-network:", "    driver: bridge", "    driver_opts:",
              "      com.docker.network.bridge.name: br-mailcow", "    ipam:", "      driver: default",
              "      config:", "        - subnet: ${IPV4_NETWORK:-172.22.1}.0/24", "", "volumes:"]
    lines += [f"  {v}:" for v in ("vmail-vol-1", "vmail-index-vol-1", "mysql-vol-1", "mysql-socket-vol-1",
                                   "redis-vol-1", "rspamd-vol-1", "postfix-vol-1", "crypt-vol-1",
                                   "sogo-web-vol-1", "sogo-userdata-backup-vol-1", "clamd-db-vol-1")]
    return "\n".join(lines) + "\n"


def render_modules_core(template: str, version: EmulatedVersion) -> str:
    return template.replace("@MODULES_REVISION@", version.modules_revision)
