"""Make the host's real Postfix and Dovecot be ``postfix-mailcow`` and ``dovecot-mailcow``.

Effectful. On a lab host ``/etc`` is the host's own overlay, so writing ``/etc/postfix/main.cf``
and running ``postfix start`` only changes that host. With
``MAILCOW_EMULATOR_HOST_SERVICES=0`` (tests without a lab) nothing outside the Docker root is
touched: main.cf is rendered into ``<state>/postfix-etc`` and checked with ``postfix -c``.
"""

from __future__ import annotations

import grp
import os
import pty
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .parse_conf import parse_mailcow_conf
from .paths import ProjectPaths, host_services_enabled
from .render_dovecot import VMAIL_UID, render_dovecot_conf, render_passwd_file
from .render_postfix import render_main_cf, render_maps

DOVECOT_CONF = Path(os.environ.get("MAILCOW_EMULATOR_DOVECOT_CONF", "/etc/dovecot/mailcow-emulator.conf"))


def load_conf(project_dir: Path) -> dict[str, str]:
    return parse_mailcow_conf((project_dir / "mailcow.conf").read_text(), str(project_dir / "mailcow.conf"))


def postfix_dir(paths: ProjectPaths) -> Path:
    if host_services_enabled():
        return Path(os.environ.get("MAILCOW_EMULATOR_POSTFIX_DIR", "/etc/postfix"))
    return paths.state_dir / "postfix-etc"


def run_with_tty(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run a command with stderr on a pseudo-terminal: Postfix commands print their fatal
    errors to stderr only when it is a tty (otherwise they go to the not-yet-running log)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    try:
        rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    return rc, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n").strip()


def _prepare_vmail(paths: ProjectPaths) -> None:
    paths.vmail.mkdir(parents=True, exist_ok=True)
    for directory in [paths.vmail, *paths.vmail.parents]:
        if directory == paths.root.parent:
            break
        mode = directory.stat().st_mode
        if not mode & 0o001:
            directory.chmod(mode | 0o001)  # uid 5000 must traverse to the maildirs
    os.chown(paths.vmail, VMAIL_UID, VMAIL_UID)


def write_maps(paths: ProjectPaths, db: dict[str, Any]) -> None:
    paths.postfix_maps.mkdir(parents=True, exist_ok=True)
    for name, text in render_maps(db).items():
        target = paths.postfix_maps / name
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o640 if name == "sasl_passwd" else 0o644)
        os.replace(tmp, target)
    paths.dovecot_dir.mkdir(parents=True, exist_ok=True)
    passwd = paths.dovecot_dir / "passwd"
    tmp = passwd.with_name(".passwd.tmp")
    tmp.write_text(render_passwd_file(db, str(paths.vmail)))
    tmp.chmod(0o640)
    if host_services_enabled():  # Dovecot's auth process runs as user dovecot and must read it
        try:
            os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        except KeyError:
            tmp.chmod(0o644)
    os.replace(tmp, passwd)


def postfix_running(config_dir: Path) -> bool:
    if not host_services_enabled():
        return False
    return subprocess.run(["postfix", "-c", str(config_dir), "status"], capture_output=True).returncode == 0


def apply_state(paths: ProjectPaths, db: dict[str, Any]) -> None:
    """After an API change: re-render maps and passwd-file, reload Postfix (Mailcow's SQL maps
    see changes at once; texthash maps need a reload)."""
    write_maps(paths, db)
    config_dir = postfix_dir(paths)
    if postfix_running(config_dir):
        subprocess.run(["postfix", "-c", str(config_dir), "reload"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def start_postfix(project_dir: Path, paths: ProjectPaths, db: dict[str, Any], log: Any) -> tuple[bool, str]:
    """Render main.cf + master.cf, run hooks, ``postfix check``, then start or reload.

    Returns (ok, error). A failure leaves Postfix stopped, like a crash-looping container.
    """
    conf = load_conf(project_dir)
    config_dir = postfix_dir(paths)
    config_dir.mkdir(parents=True, exist_ok=True)
    base = (project_dir / "data/conf/postfix/main.cf").read_text()
    extra_path = project_dir / "data/conf/postfix/extra.cf"
    extra = extra_path.read_text() if extra_path.exists() else ""
    write_maps(paths, db)
    if host_services_enabled():
        _prepare_vmail(paths)
    main_cf = render_main_cf(base, hostname=conf.get("MAILCOW_HOSTNAME", "localhost"), extra_cf=extra,
                             maps_dir=str(paths.postfix_maps), vmail_dir=str(paths.vmail),
                             ssl_dir=str(project_dir / "data/assets/ssl"),
                             conf_dir=str(project_dir / "data/conf/postfix"))
    (config_dir / "main.cf").write_text(main_cf)
    shutil.copyfile(project_dir / "data/conf/postfix/master.cf", config_dir / "master.cf")
    env = dict(os.environ, MAIL_CONFIG=str(config_dir), MAILCOW_HOSTNAME=conf.get("MAILCOW_HOSTNAME", ""))
    hooks = project_dir / "data/hooks/postfix"
    if hooks.is_dir():
        for hook in sorted(hooks.iterdir()):
            if hook.is_file() and os.access(hook, os.X_OK):
                log(f"mailcow emulator: running postfix hook {hook.name}")
                result = subprocess.run([str(hook)], env=env, capture_output=True, text=True, timeout=120)
                for line in (result.stdout + result.stderr).splitlines():
                    log(line)
                if result.returncode != 0:
                    return False, f"hook {hook.name} failed with exit code {result.returncode}"
    rc, output = run_with_tty(["postconf", "-c", str(config_dir), "-n"])
    if rc != 0:
        return False, output.splitlines()[-1] if output else "postconf -n failed"
    warnings = [l for l in output.splitlines() if "warning" in l]
    for line in warnings:
        log(line)
    if not host_services_enabled():
        rc, output = run_with_tty(["postfix", "-c", str(config_dir), "check"], env=env)
        if rc != 0:
            return False, output or "postfix check failed"
        log("mailcow emulator: host services disabled; main.cf rendered and checked only")
        return True, ""
    # `postfix start` runs the same checks as `postfix check` and prints their fatal error.
    if postfix_running(config_dir):  # a container restart is a full stop/start (inet_interfaces etc.)
        run_with_tty(["postfix", "-c", str(config_dir), "stop"], env=env)
    rc, output = run_with_tty(["postfix", "-c", str(config_dir), "start"], env=env)
    if rc != 0:
        return False, output or "postfix start failed"
    return True, ""


def stop_postfix(paths: ProjectPaths) -> None:
    config_dir = postfix_dir(paths)
    if postfix_running(config_dir):
        subprocess.run(["postfix", "-c", str(config_dir), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def _dovecot_conf_path(paths: ProjectPaths) -> Path:
    return DOVECOT_CONF if host_services_enabled() else paths.dovecot_dir / "dovecot.conf"


def start_dovecot(project_dir: Path, paths: ProjectPaths, db: dict[str, Any], log: Any) -> tuple[bool, str]:
    conf = load_conf(project_dir)
    write_maps(paths, db)
    base_dir = paths.dovecot_dir / "run"
    base_dir.mkdir(parents=True, exist_ok=True)
    dh = Path("/usr/share/dovecot/dh.pem")

    def port(key: str, default: int) -> int:
        return int((conf.get(key, "") or str(default)).rsplit(":", 1)[-1])

    text = render_dovecot_conf(base_dir=str(base_dir), passwd_file=str(paths.dovecot_dir / "passwd"),
                               vmail_dir=str(paths.vmail), cert=str(project_dir / "data/assets/ssl/cert.pem"),
                               key=str(project_dir / "data/assets/ssl/key.pem"), log_path="/var/log/dovecot.log"
                               if host_services_enabled() else str(paths.dovecot_dir / "dovecot.log"),
                               imap_port=port("IMAP_PORT", 143), imaps_port=port("IMAPS_PORT", 993),
                               dh_file=str(dh) if dh.exists() else None)
    conf_path = _dovecot_conf_path(paths)
    conf_path.parent.mkdir(parents=True, exist_ok=True)
    conf_path.write_text(text)
    if not host_services_enabled():
        log("mailcow emulator: host services disabled; dovecot config rendered only")
        return True, ""
    _prepare_vmail(paths)
    result = subprocess.run(["doveconf", "-c", str(conf_path), "-n"], capture_output=True, text=True)
    if result.returncode != 0:
        return False, result.stderr.strip()
    _stop_host_dovecot(base_dir, log)
    pid_file = base_dir / "master.pid"
    if pid_file.exists() and _alive(pid_file):
        command = ["doveadm", "-c", str(conf_path), "reload"]
    else:
        command = ["dovecot", "-c", str(conf_path)]
    return _run_daemon_starter(command)


def _run_daemon_starter(command: list[str]) -> tuple[bool, str]:
    """Run a command that leaves a daemon behind. Its output goes to a file, never a pipe: a
    daemon inheriting a pipe would keep the caller (and an SSH session) waiting forever."""
    import tempfile

    with tempfile.TemporaryFile() as errors:
        rc = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors, timeout=60).returncode
        errors.seek(0)
        text = errors.read().decode(errors="replace").strip()
    return (rc == 0, text if rc else "")


def _stop_host_dovecot(own_base_dir: Path, log: Any) -> None:
    """dovecot-mailcow owns IMAP on a Mailcow host: stop a Dovecot the host runs from its
    default config (the lab boots one), as Mailcow's container would find the ports taken."""
    default = Path("/etc/dovecot/dovecot.conf")
    if not default.exists():
        return
    result = subprocess.run(["doveconf", "-c", str(default), "-h", "base_dir"], capture_output=True, text=True)
    base = Path(result.stdout.strip() or "/run/dovecot")
    if result.returncode != 0 or base.resolve() == own_base_dir.resolve():
        return
    pid_file = base / "master.pid"
    if not (pid_file.exists() and _alive(pid_file)):
        return
    log(f"mailcow emulator: stopping the host's own Dovecot ({default}); dovecot-mailcow serves IMAP now")
    subprocess.run(["doveadm", "-c", str(default), "stop"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    for _ in range(100):
        if not _alive(pid_file):
            return
        time.sleep(0.05)


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def stop_dovecot(paths: ProjectPaths) -> None:
    if not host_services_enabled():
        return
    pid_file = paths.dovecot_dir / "run" / "master.pid"
    if pid_file.exists() and _alive(pid_file):
        subprocess.run(["doveadm", "-c", str(_dovecot_conf_path(paths)), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def host_service_alive(paths: ProjectPaths, service: str) -> bool:
    """Is the host process behind postfix-mailcow / dovecot-mailcow running?"""
    if not host_services_enabled():
        return True
    if service == "postfix-mailcow":
        return postfix_running(postfix_dir(paths))
    if service == "dovecot-mailcow":
        pid_file = paths.dovecot_dir / "run" / "master.pid"
        return pid_file.exists() and _alive(pid_file)
    return True


def run_queue_command(command: list[str]) -> bool:
    """Run a Postfix queue command on the host (nothing without host services)."""
    if not host_services_enabled():
        return True
    return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=120).returncode == 0


def mail_queue() -> list[dict[str, Any]]:
    """``postqueue -j`` of the host Postfix, one dict per queued message."""
    import json

    if not host_services_enabled():
        return []
    result = subprocess.run(["postqueue", "-j"], capture_output=True, text=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip().startswith("{")]
