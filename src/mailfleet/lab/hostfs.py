"""Lay out a lab host's own filesystem under the lab's state folder, before the host boots.

Everything a host owns lives in ``<state>/hosts/<name>/``: the upper layers of its ``/etc``,
``/var`` and ``/usr/local/bin`` overlays and the folders bound over ``/opt``, ``/root``,
``/var/log``, its Postfix spool and state, ``/var/mail``, ``/var/lib/docker`` and ``/var/vmail``.
Files are written only when missing (host keys, ``main.cf``, accounts), so a host that is
restarted (``lab.heal``) or repaired (``lab.up``) keeps its identity and whatever ``deploy``
changed in it; the boot script is rewritten every time.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from pathlib import Path

from mailfleet.lab import render_host as render
from mailfleet.lab.model import MAILBOX_USER, LabHost, LabSpace
from mailfleet.lab.system import run

SNAKEOIL_CERT = Path("/etc/ssl/certs/ssl-cert-snakeoil.pem")


def _mkdir(path: Path, mode: int = 0o755, owner: tuple[int, int] = (0, 0)) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    os.chmod(path, mode)


def _write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0), *, keep: bool = False) -> None:
    if keep and path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chown(tmp, *owner)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def _copy_with_extra_line(source: Path, dest: Path, line: str, marker: str) -> None:
    """Copy a machine file into the host's /etc layer and add ``line`` unless already there."""
    if dest.exists():
        return
    info = source.stat()
    text = source.read_text(encoding="utf-8")
    if not any(existing.startswith(marker) for existing in text.splitlines()):
        text = text + ("" if text.endswith("\n") else "\n") + line
    _write(dest, text, info.st_mode & 0o7777, (info.st_uid, info.st_gid))


def host_key_path(host_dir: Path) -> Path:
    return host_dir / "etc" / "upper" / "ssh" / "ssh_host_ed25519_key"


def save_host_key(host: LabHost, host_dir: Path) -> str:
    """Generate the host's ed25519 key once; return its public key line ``ssh-ed25519 BASE64``."""
    key = host_key_path(host_dir)
    if not key.exists() or not key.with_suffix(".pub").exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        for old in (key, key.with_suffix(".pub")):
            old.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.fqdn}", "-f", str(key)])
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def save_host_filesystem(host: LabHost, hosts: list[LabHost], space: LabSpace, host_dir: Path, *,
                         client_public_key: str, mailbox_password: str, docker_command: Path | None,
                         install_dir: str) -> str:
    """Create or complete the host's folders and files; return its pinned host key line."""
    root = (0, 0)
    for folder, _ in render.OVERLAYS:
        _mkdir(host_dir / folder / "upper")
        _mkdir(host_dir / folder / "work")
    _mkdir(host_dir / "opt")
    _mkdir(host_dir / "root", 0o700)
    _mkdir(host_dir / "root" / ".ssh", 0o700)
    _mkdir(host_dir / "log")
    _mkdir(host_dir / "spool-postfix")
    _mkdir(host_dir / "lib-postfix", 0o755, _ids("postfix", "postfix"))
    _mkdir(host_dir / "mail", 0o2775, (0, grp.getgrnam("mail").gr_gid))
    _mkdir(host_dir / "lib-docker", 0o710)
    _mkdir(host_dir / "vmail")
    uid = render.MAILBOX_UID
    _mkdir(host_dir / "vmail" / MAILBOX_USER, 0o700, (uid, uid))
    _mkdir(host_dir / "vmail" / MAILBOX_USER / "mail", 0o700, (uid, uid))
    # Mount points that do not exist on the machine are created in the host's /var layer.
    _mkdir(host_dir / "var" / "upper" / "lib" / "docker", 0o710)
    _mkdir(host_dir / "var" / "upper" / "vmail")
    _write(host_dir / "root" / ".ssh" / "authorized_keys", client_public_key.strip() + "\n", 0o600)
    _write(host_dir / "root" / ".bashrc", "# lab host: a clean root, no per-command shell start-up cost\n")

    etc = host_dir / "etc" / "upper"
    key_line = save_host_key(host, host_dir)
    key = host_key_path(host_dir)
    os.chmod(key, 0o600)
    _write(etc / "ssh" / "sshd_config", render.render_sshd_config(host))
    _write(etc / "hostname", host.name + "\n")
    _write(etc / "mailname", host.fqdn + "\n")
    _write(etc / "hosts", render.render_etc_hosts(hosts, space))
    _write(etc / "resolv.conf", render.render_resolv_conf())
    _write(etc / "postfix" / "main.cf", render.render_main_cf(host, space, tls=SNAKEOIL_CERT.exists()), keep=True)
    accounts = render.render_account_lines()
    for name in ("passwd", "group", "shadow"):
        _copy_with_extra_line(Path("/etc") / name, etc / name, accounts[name], f"{MAILBOX_USER}:")
    if host.runs_dovecot:
        _write(etc / "dovecot" / "dovecot.conf", render.render_dovecot_conf(host))
        _write(etc / "dovecot" / "lab-users", render.render_dovecot_users(MAILBOX_USER, mailbox_password,
                                                                           os.urandom(8)),
               0o640, (0, grp.getgrnam("dovecot").gr_gid))

    docker = host_dir / "usr-local-bin" / "upper" / "docker"
    if docker.is_symlink() or docker.exists():
        docker.unlink()
    if docker_command is not None:
        docker.symlink_to(docker_command)
    else:
        _write(docker, render.render_docker_placeholder(), 0o755)
    _write(host_dir / "boot.sh", render.render_boot_script(host, str(host_dir), install_dir), 0o755)
    return key_line


def remove_host_filesystem(host_dir: Path) -> None:
    """Delete a host's folders; only ever called once nothing has them mounted (the host is gone)."""
    if host_dir.exists():
        shutil.rmtree(host_dir)
