"""Render the host Postfix's main.cf and maps the way Mailcow's ``postfix.sh`` builds them.

Pure. Mailcow's main.cf (from the checkout's ``data/conf/postfix/main.cf``) is adapted to the
lab host's Debian paths: ``/opt/postfix/conf`` (the maps) becomes the postfix volume,
``/var/vmail`` the vmail volume, ``/etc/ssl/mail`` the checkout's ``data/assets/ssl``. After
the ``# User Overrides`` marker come ``myhostname = ${MAILCOW_HOSTNAME}`` and ``extra.cf``
with every ``myhostname`` line that does not reference ``$myhostname`` removed (postfix.sh
L479-491). The SQL maps Mailcow queries live become ``texthash:`` files rendered from the
emulator's database, so a change through the API needs only ``postfix reload``.
"""

from __future__ import annotations

import re
from typing import Any

OVERRIDES_MARKER = "# User Overrides"
MAP_NAMES = ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps", "relay_domains",
             "transport_maps", "sender_dependent_default_transport_maps", "sasl_passwd", "empty")
_MYHOSTNAME = re.compile(r"^\s*myhostname\s*=")


def strip_myhostname(extra_cf: str) -> str:
    """Drop ``myhostname = ...`` lines unless they use ``$myhostname`` (Mailcow's sed)."""
    return "\n".join(line for line in extra_cf.splitlines()
                     if not (_MYHOSTNAME.match(line) and "$myhostname" not in line))


# Mailcow's SQL maps (data/conf/postfix/sql/mysql_<name>.cf) -> the emulator's texthash map
SQL_MAPS = {
    "virtual_domains_maps": "virtual_mailbox_domains",
    "virtual_mailbox_maps": "virtual_mailbox_maps",
    "virtual_alias_maps": "virtual_alias_maps",
    "virtual_alias_domain_maps": "empty",
    "virtual_alias_domain_catchall_maps": "empty",
    "virtual_spamalias_maps": "empty",
    "virtual_relay_domain_maps": "relay_domains",
    "transport_maps": "transport_maps",
    "relay_ne": "empty",
    "sender_dependent_default_transport_maps": "sender_dependent_default_transport_maps",
    "sasl_passwd_maps_sender_dependent": "sasl_passwd",
    "sasl_passwd_maps_transport_maps": "sasl_passwd",
}
_SQL_MAP = re.compile(r"(?:proxy:)?mysql:/opt/postfix/conf/sql/mysql_([A-Za-z0-9_]+)\.cf")


def translate_paths(text: str, *, maps_dir: str, conf_dir: str, vmail_dir: str, ssl_dir: str) -> str:
    """Mailcow's container paths -> the lab host's: SQL maps become texthash files (unknown
    ones an empty map), ``/opt/postfix/conf`` the checkout's ``data/conf/postfix``."""
    text = _SQL_MAP.sub(lambda m: f"texthash:{maps_dir}/{SQL_MAPS.get(m.group(1), 'empty')}", text)
    text = text.replace("/opt/postfix/conf", conf_dir).replace("/var/vmail", vmail_dir)
    return text.replace("/etc/ssl/mail", ssl_dir)


def render_main_cf(base: str, *, hostname: str, extra_cf: str, maps_dir: str, vmail_dir: str,
                   ssl_dir: str, conf_dir: str = "/opt/postfix/conf") -> str:
    """The full main.cf: adapted base, marker, myhostname, filtered extra.cf (paths translated
    in both, as extra.cf is written for Mailcow's container)."""
    head = base.split(OVERRIDES_MARKER, 1)[0].rstrip("\n")
    tail = strip_myhostname(extra_cf).strip("\n")
    parts = [head, "", OVERRIDES_MARKER, f"myhostname = {hostname}"]
    if tail:
        parts.append(tail)
    return translate_paths("\n".join(parts) + "\n", maps_dir=maps_dir, conf_dir=conf_dir, vmail_dir=vmail_dir,
                           ssl_dir=ssl_dir)


def _nexthop(hostname: str) -> str:
    return hostname if re.match(r"^[a-z0-9_-]+:", hostname) and not hostname.startswith("[") else f"smtp:{hostname}"


def render_maps(db: dict[str, Any]) -> dict[str, str]:
    """Every texthash map Postfix reads, from the emulator's database."""
    domains = db.get("domains", {})
    mailboxes = db.get("mailboxes", {})
    relayhosts = {str(k): v for k, v in db.get("relayhosts", {}).items() if v.get("active") == "1"}
    local_domains = sorted(d for d, r in domains.items() if r["active"] == "1" and r["backupmx"] != "1")
    relay_domains = sorted(d for d, r in domains.items() if r["active"] == "1" and r["backupmx"] == "1")
    active_boxes = sorted(m for m, r in mailboxes.items() if r["active"] == "1" and r["domain"] in local_domains)
    aliases = sorted((a for a in db.get("aliases", {}).values() if a["active"] == "1"),
                     key=lambda a: a["address"])
    alias_lines = [f"{a['address']} {a['goto']}" for a in aliases]
    if any(a["address"].startswith("@") for a in aliases):  # a catch-all must not swallow mailboxes
        alias_lines += [f"{m} {m}" for m in active_boxes]
    sender_lines, sasl_lines = [], []
    for username in sorted(mailboxes):
        rid = mailboxes[username].get("relayhost", "0")
        if rid in relayhosts:
            sender_lines.append(f"{username} {_nexthop(relayhosts[rid]['hostname'])}")
            if relayhosts[rid]["username"]:
                sasl_lines.append(f"{username} {relayhosts[rid]['username']}:{relayhosts[rid]['password']}")
    for domain in sorted(domains):
        rid = domains[domain].get("relayhost", "0")
        if rid in relayhosts:
            sender_lines.append(f"@{domain} {_nexthop(relayhosts[rid]['hostname'])}")
            if relayhosts[rid]["username"]:
                sasl_lines.append(f"@{domain} {relayhosts[rid]['username']}:{relayhosts[rid]['password']}")
    transports = sorted((t for t in db.get("transports", {}).values() if t.get("active") == "1"),
                        key=lambda t: t["id"])
    transport_lines = [f"{t['destination']} smtp:{t['nexthop']}" for t in transports]
    for t in transports:
        if t["username"]:
            sasl_lines.append(f"{t['nexthop']} {t['username']}:{t['password']}")
    maps = {
        "virtual_mailbox_domains": [f"{d} OK" for d in local_domains],
        "virtual_mailbox_maps": [f"{m} {mailboxes[m]['domain']}/{mailboxes[m]['local_part']}/Maildir/"
                                 for m in active_boxes],
        "virtual_alias_maps": alias_lines,
        "relay_domains": [f"{d} OK" for d in relay_domains],
        "transport_maps": transport_lines,
        "sender_dependent_default_transport_maps": sender_lines,
        "sasl_passwd": sasl_lines,
    }
    header = "# Rendered by the mailcow emulator from its database; do not edit.\n"
    maps["empty"] = []
    return {name: header + "".join(line + "\n" for line in lines) for name, lines in maps.items()}
