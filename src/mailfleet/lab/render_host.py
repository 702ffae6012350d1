"""The files that make a lab host: its boot script and its own sshd, Postfix and Dovecot config.

Pure: every function takes the host's data and returns text. ``hostfs`` writes the results into
the host's overlay upper layers before the host boots, so inside the host they are simply its
``/etc/ssh/sshd_config``, ``/etc/postfix/main.cf`` and so on.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Sequence

from mailfleet.lab.model import MAILBOX_USER, LabHost, LabSpace

# Mount points inside a host and the per-host folder (relative to the host's folder) bound there.
BIND_MOUNTS = (
    ("opt", "/opt"),
    ("root", "/root"),
    ("log", "/var/log"),
    ("spool-postfix", "/var/spool/postfix"),
    ("lib-postfix", "/var/lib/postfix"),
    ("mail", "/var/mail"),
    ("lib-docker", "/var/lib/docker"),
    ("vmail", "/var/vmail"),
)
# Copy-on-write views of the machine's folders: reads see the machine, writes stay in the host.
OVERLAYS = (
    ("etc", "/etc"),
    ("var", "/var"),
    ("usr-local-bin", "/usr/local/bin"),
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAILBOX_UID = 2501


def render_boot_script(host: LabHost, host_dir: str, install_dir: str) -> str:
    """The script PID 1 of a host runs: mount the host's filesystem view, set its hostname,
    start its mail services in the background and become ``tini`` supervising ``sshd``.

    Services start after the mounts and before nothing else depends on them; sshd answers at
    once and ``lab.up`` waits for Postfix (and Dovecot) on their ports. A Mailcow install (a
    ``mailcow.conf`` in ``install_dir``) is started with ``docker compose up -d``, as dockerd
    restarts containers after a reboot.
    """
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# Boot of lab host {host.name}: PID 1 of its own PID, mount and UTS namespaces in network",
        f"# namespace {host.netns}. Written by `mailfleet lab.up`; rewritten at every start.",
        "set -eu",
        f"export PATH={PATH} LANG=C.UTF-8 HOME=/root",
        f"H={q(host_dir)}",
        "mount --make-rprivate /",
    ]
    for folder, target in OVERLAYS:
        options = f"lowerdir={target},upperdir=$H/{folder}/upper,workdir=$H/{folder}/work"
        lines.append(f'mount -t overlay lab-{folder} -o "{options}" {target}')
    for folder, target in BIND_MOUNTS:
        lines.append(f'mount --bind "$H/{folder}" {target}')
    lines += [
        "# The machine's /run/netns entries would pin other hosts' namespaces: detach them here.",
        "umount -R -l /run/netns 2>/dev/null || true",
        "mount -t tmpfs -o mode=0755,size=64m lab-run /run",
        "mkdir -p -m 0755 /run/sshd /run/lock",
        "mount -t tmpfs -o mode=1777,size=256m lab-tmp /tmp",
        f"hostname {q(host.name)}",
        "(",
        "  echo \"boot: $(date -u +%FT%TZ)\"",
        "  # What Debian's postfix.service runs first: copy hosts, resolv.conf, ... into the chroot.",
        "  /usr/lib/postfix/configure-instance.sh - || echo 'boot: configure-instance.sh failed'",
        "  postfix start || echo 'boot: postfix failed to start'",
    ]
    if host.runs_dovecot:
        lines.append("  dovecot || echo 'boot: dovecot failed to start'")
    conf = q(f"{install_dir}/mailcow.conf")
    lines += [
        f"  if [ -f {conf} ] && [ -x /usr/local/bin/docker ]; then",
        f"    (cd {q(install_dir)} && docker compose up -d) || echo 'boot: docker compose up -d failed'",
        "  fi",
        "  echo 'boot: services started'",
        ") >>/var/log/lab-boot.log 2>&1 </dev/null &",
        "exec tini -s -- /usr/sbin/sshd -D -E /var/log/sshd.log",
        "",
    ]
    return "\n".join(lines)


def render_sshd_config(host: LabHost) -> str:
    """Key-only root login, the host's own ed25519 key, no PAM (there is no login session setup)."""
    return "\n".join([
        f"# sshd of lab host {host.name} (written by mailfleet lab.up)",
        "Port 22",
        "ListenAddress 0.0.0.0",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes yes",
        "UseDNS no",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        "",
    ])


def render_main_cf(host: LabHost, space: LabSpace, tls: bool) -> str:
    """A complete Debian-style main.cf for the host.

    The lab has no DNS, so Postfix resolves names through ``/etc/hosts`` (which lists every lab
    host) and delivers to a domain's address record, not its MX: ``user@mx1.lab.mailfleet.test``
    reaches mx1 from any lab host. The lab's own subnet may relay, like a fleet's trusted network.
    """
    lines = [
        f"# Postfix on lab host {host.name} (written by mailfleet lab.up; deploy may change it)",
        "compatibility_level = 3.6",
        "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)",
        "biff = no",
        "append_dot_mydomain = no",
        "readme_directory = no",
        f"myhostname = {host.fqdn}",
        f"mydomain = {space.domain}",
        "myorigin = $myhostname",
        f"mydestination = $myhostname, {host.name}, localhost.localdomain, localhost",
        f"mynetworks = 127.0.0.0/8 {space.subnet}",
        "inet_interfaces = all",
        "inet_protocols = ipv4",
        "relayhost =",
        "alias_maps = hash:/etc/aliases",
        "alias_database = hash:/etc/aliases",
        "mailbox_size_limit = 0",
        "recipient_delimiter = +",
        "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
        "maillog_file = /var/log/postfix.log",
        "# No DNS in the lab: names come from /etc/hosts.",
        "smtp_dns_support_level = disabled",
        "smtp_host_lookup = native",
    ]
    if tls:
        lines += [
            "smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem",
            "smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key",
            "smtpd_tls_security_level = may",
            "smtp_tls_security_level = may",
        ]
    else:
        lines += ["smtpd_tls_security_level = none", "smtp_tls_security_level = none"]
    return "\n".join(lines) + "\n"


def render_dovecot_conf(host: LabHost) -> str:
    """IMAP on the host's addresses; users from ``lab-users``, mail in ``/var/mail/USER`` (mbox),
    where Postfix's local delivery puts it. Plain text login without TLS: lab only."""
    return "\n".join([
        f"# Dovecot on lab host {host.name} (written by mailfleet lab.up)",
        "protocols = imap",
        "listen = *",
        "base_dir = /run/dovecot",
        "log_path = /var/log/dovecot.log",
        "info_log_path = /var/log/dovecot.log",
        "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "auth_failure_delay = 0",
        "mail_location = mbox:~/mail:INBOX=/var/mail/%u",
        "mail_privileged_group = mail",
        f"first_valid_uid = {MAILBOX_UID}",
        "passdb {",
        "  driver = passwd-file",
        "  args = /etc/dovecot/lab-users",
        "}",
        "userdb {",
        "  driver = passwd",
        "}",
        "",
    ])


def render_dovecot_users(user: str, password: str, salt: bytes) -> str:
    """A passwd-file line with a salted SHA-512 hash (Dovecot's ``SSHA512`` scheme)."""
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{user}:{{SSHA512}}{base64.b64encode(digest + salt).decode()}\n"


def render_account_lines(uid: int = MAILBOX_UID, user: str = MAILBOX_USER) -> dict[str, str]:
    """Lines appended to the host's ``/etc/passwd``, ``/etc/group`` and ``/etc/shadow`` for the
    lab's mailbox user (local delivery needs a system account)."""
    return {
        "passwd": f"{user}:x:{uid}:{uid}:lab mailbox:/var/vmail/{user}:/usr/sbin/nologin\n",
        "group": f"{user}:x:{uid}:\n",
        "shadow": f"{user}:!:20000:0:99999:7:::\n",
    }


def render_etc_hosts(hosts: Sequence[LabHost], space: LabSpace) -> str:
    lines = ["# Lab hosts (written by mailfleet lab.up)", "127.0.0.1\tlocalhost",
             f"{space.gateway}\tcontroller.{space.domain} controller"]
    lines += [f"{h.address}\t{h.fqdn} {h.name}" for h in hosts]
    return "\n".join(lines) + "\n"


def render_resolv_conf() -> str:
    return ("# Lab host: there is no DNS server and no route out; names come from /etc/hosts.\n"
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def render_docker_placeholder() -> str:
    """The ``docker`` command when the Mailcow emulator is not available: a clear refusal."""
    return ("#!/bin/sh\necho 'docker: this lab host has no Mailcow emulator (mailfleet.lab.emulator "
            "was not available when the lab was built); run `mailfleet lab.down` and `mailfleet lab.up` "
            "again once it is' >&2\nexit 1\n")
