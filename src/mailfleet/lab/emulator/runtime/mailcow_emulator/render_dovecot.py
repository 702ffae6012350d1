"""Render the host Dovecot's config and passwd-file for ``dovecot-mailcow``.

Pure. Dovecot runs from its own config file (``/etc/dovecot/mailcow-emulator.conf`` on the
lab host's /etc overlay) with a private ``base_dir``, so it never collides with a Dovecot the
machine may run. Mailboxes come from the emulator's database; passwords are stored hashed.
"""

from __future__ import annotations

from typing import Any

VMAIL_UID = 5000


def render_dovecot_conf(*, base_dir: str, passwd_file: str, vmail_dir: str, cert: str, key: str,
                        log_path: str, imap_port: int = 143, imaps_port: int = 993,
                        dh_file: str | None = None) -> str:
    lines = [
        "# dovecot-mailcow of the mailcow emulator (rendered; do not edit)",
        "protocols = imap",
        "listen = *",
        f"base_dir = {base_dir}",
        "instance_name = mailcow-emulator",
        f"log_path = {log_path}",
        f"info_log_path = {log_path}",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "auth_failure_delay = 0",
        f"first_valid_uid = {VMAIL_UID}",
        f"mail_location = maildir:{vmail_dir}/%d/%n/Maildir",
        "ssl = yes",
        f"ssl_cert = <{cert}",
        f"ssl_key = <{key}",
    ]
    if dh_file:
        lines.append(f"ssl_dh = <{dh_file}")
    lines += [
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=SSHA256 username_format=%u {passwd_file}",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {passwd_file}",
        "}",
        "service imap-login {",
        f"  inet_listener imap {{\n    port = {imap_port}\n  }}",
        f"  inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}",
        "}",
        "namespace inbox {",
        "  inbox = yes",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_passwd_file(db: dict[str, Any], vmail_dir: str) -> str:
    """``user:hash:uid:gid::home::`` for each active mailbox of an active domain."""
    rows = []
    domains = db.get("domains", {})
    for username, box in sorted(db.get("mailboxes", {}).items()):
        if box["active"] != "1" or domains.get(box["domain"], {}).get("active") != "1":
            continue
        home = f"{vmail_dir}/{box['domain']}/{box['local_part']}"
        rows.append(f"{username}:{box['password_hash']}:{VMAIL_UID}:{VMAIL_UID}::{home}::")
    return "".join(row + "\n" for row in rows)
