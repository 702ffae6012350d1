"""``docker compose`` as the mailcow emulator implements it on a lab host.

Implemented: ``version``, ``config [-q] [--services]``, ``pull [-q]``, ``up -d
[--remove-orphans] [SERVICE...]``, ``down``, ``ps [--format json] [-a] [-q]``, ``restart
[SERVICE...]``, ``exec [-T] SERVICE CMD...`` (postfix-mailcow, dovecot-mailcow: the host's own
Postfix/Dovecot), ``logs [--no-color] [-t|--timestamps] [--since T] [--tail N] [SERVICE...]``.
Anything else exits 1 with a message naming what is emulated.

Containers are records in ``<docker root>/mailcow-emulator/<project>/containers.json``;
``postfix-mailcow`` and ``dovecot-mailcow`` are the host's real Postfix and Dovecot,
``nginx-mailcow``/``php-fpm-mailcow`` the emulator's HTTPS API server; the other services are
recorded as running without a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import acme, realise
from .parse_conf import ConfError, parse_api_access, parse_mailcow_conf
from .parse_logs import parse_log_time, parse_since, render_compose_log_line
from .paths import ProjectPaths, docker_root, host_services_enabled, project_paths
from .store import load_json, load_state, locked, save_json

COMPOSE_VERSION = "2.29.7"
API_SERVICES = ("php-fpm-mailcow", "nginx-mailcow")
EMULATED = ("version", "config", "pull", "up", "down", "ps", "restart", "exec", "logs")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


class ComposeError(Exception):
    """A user error: message printed, exit 1."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def now_rfc3339() -> str:
    stamp = datetime.now(timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}000Z"


# ------------------------------------------------------------------ project loading

class Project:
    def __init__(self, files: list[Path], project_dir: Path, name: str | None, runtime_dir: Path) -> None:
        self.dir = project_dir
        self.runtime_dir = runtime_dir
        self.files = files or [p for p in (project_dir / "docker-compose.yml",
                                           project_dir / "docker-compose.override.yml") if p.exists()]
        if not self.files:
            raise ComposeError(f"no configuration file provided: not found (looked for docker-compose.yml in {project_dir})")
        env_file = project_dir / ".env"
        try:
            self.env = parse_mailcow_conf(env_file.read_text(), str(env_file)) if env_file.exists() else {}
        except ConfError as exc:
            raise ComposeError(f"failed to read {env_file}: {exc}") from None
        self.name = (name or os.environ.get("COMPOSE_PROJECT_NAME") or self.env.get("COMPOSE_PROJECT_NAME")
                     or re.sub(r"[^a-z0-9_-]", "", project_dir.name.lower()))
        self.config = self._load()
        self.paths: ProjectPaths = project_paths(self.name, docker_root())
        self.started_now: set[str] = set()  # services this compose run started (not yet saved)

    def _load(self) -> dict[str, Any]:
        try:
            import yaml
        except ImportError:  # pragma: no cover - Debian's python3-yaml is required
            raise ComposeError("mailcow emulator: python3-yaml is missing on this host (apt-get install python3-yaml)")
        merged: dict[str, Any] = {}
        for path in self.files:
            try:
                data = yaml.safe_load(path.read_text())
            except FileNotFoundError:
                raise ComposeError(f"open {path}: no such file or directory") from None
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f"line {mark.line + 1}: " if mark is not None else ""
                raise ComposeError(f"yaml: {where}{getattr(exc, 'problem', exc)} in {path}") from None
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ComposeError(f"Top-level object must be a mapping in {path}")
            services = data.get("services", {})
            if not isinstance(services, dict):
                raise ComposeError(f"services must be a mapping in {path}")
            for service, body in services.items():
                if not isinstance(body, dict) and body is not None:
                    raise ComposeError(f"services.{service} must be a mapping in {path}")
            merged = _merge(merged, data)
        if not merged.get("services"):
            raise ComposeError("no service selected: the compose files define no services")
        return merged

    def interpolate(self, value: str) -> str:
        env = {**self.env, **os.environ}
        return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)

    def services(self) -> list[str]:
        return list(self.config["services"].keys())

    def image(self, service: str) -> str:
        body = self.config["services"].get(service) or {}
        return self.interpolate(str(body.get("image", f"{self.name}-{service}")))

    def container(self, service: str) -> str:
        return f"{self.name}-{service}-1"

    # state
    def state(self) -> dict[str, Any]:
        return load_json(self.paths.containers_file, {"project": self.name, "services": {}})

    def save(self, state: dict[str, Any]) -> None:
        save_json(self.paths.containers_file, state, 0o644)

    def log(self, service: str, line: str) -> None:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.service_log(service), "a") as handle:
            handle.write(json.dumps({"time": time.time(), "line": line}) + "\n")


@contextlib.contextmanager
def compose_lock(project: Project) -> Iterator[None]:
    project.paths.state_dir.mkdir(parents=True, exist_ok=True)
    with open(project.paths.state_dir / "compose.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(override, list):
        return base + [x for x in override if x not in base]
    return override


# ------------------------------------------------------------------ services

def _api_env(project: Project) -> dict[str, Any]:
    conf = parse_mailcow_conf((project.dir / "mailcow.conf").read_text())
    return {"access": parse_api_access(conf).to_json(), "bind": conf.get("HTTPS_BIND", ""),
            "port": conf.get("HTTPS_PORT", "443")}


def _pid_alive(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return 0


def stop_api(project: Project) -> None:
    pid = _pid_alive(project.paths.api_pid_file)
    if not pid:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not _pid_alive(project.paths.api_pid_file):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    project.paths.api_pid_file.unlink(missing_ok=True)


def start_api(project: Project) -> tuple[bool, str]:
    stop_api(project)
    env_info = _api_env(project)
    out = project.paths.state_dir / "api.out"
    project.paths.state_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(project.runtime_dir))
    with open(out, "w") as handle:
        subprocess.Popen([sys.executable, "-m", "mailcow_emulator.api_server", "--project-dir", str(project.dir),
                          "--docker-root", str(project.paths.root), "--pid-file", str(project.paths.api_pid_file)],
                         stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, cwd="/")
    host = env_info["bind"] or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "*") else host
    port = int(env_info["port"] or 443)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _pid_alive(project.paths.api_pid_file):
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    save_json(project.paths.api_access_file, env_info)
                    return True, ""
            except OSError:
                pass
        time.sleep(0.1)
    stop_api(project)
    return False, out.read_text()[-2000:] if out.exists() else "API server did not start"


def start_service(project: Project, service: str) -> tuple[str, str]:
    """Start (or re-start) one service; returns (state, error)."""
    logger = lambda line: project.log(service, line)  # noqa: E731
    if service == "postfix-mailcow":
        with locked(project.paths):
            db, _ = load_state(project.paths)
        ok, err = realise.start_postfix(project.dir, project.paths, db, logger)
    elif service == "dovecot-mailcow":
        with locked(project.paths):
            db, _ = load_state(project.paths)
        ok, err = realise.start_dovecot(project.dir, project.paths, db, logger)
    elif service == "nginx-mailcow":
        ok, err = start_api(project)
    elif service == "acme-mailcow":
        ok, err = run_acme(project)
    else:
        ok, err = True, ""
    if not ok:
        for line in err.splitlines():
            project.log(service, line)
        return "restarting", err
    project.log(service, f"mailcow emulator: {service} started")
    return "running", ""


def run_acme(project: Project) -> tuple[bool, str]:
    """acme-mailcow's start (and its renewal check): a lab-CA certificate when one is offered
    (see ``acme.py``); after installing one, restart what serves it, as acme-mailcow does."""
    try:
        changed, what = acme.issue_if_needed(project.dir, realise.load_conf(project.dir), project.paths.root,
                                            project.paths.state_dir / "acme")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return False, f"acme-mailcow (emulated): {exc}"
    project.log("acme-mailcow", what)
    if changed:
        for service in ("dovecot-mailcow", "postfix-mailcow", "nginx-mailcow"):
            recorded = project.state()["services"].get(service, {}).get("state") == "running"
            if (recorded or service in project.started_now) and service_alive(project, service):
                status, err = start_service(project, service)
                if status != "running":
                    return False, f"acme-mailcow (emulated): reloading {service} failed: {err}"
                project.log("acme-mailcow", f"reloaded {service} for the new certificate")
    return True, ""


def stop_service(project: Project, service: str) -> None:
    if service == "postfix-mailcow":
        realise.stop_postfix(project.paths)
    elif service == "dovecot-mailcow":
        realise.stop_dovecot(project.paths)
    elif service == "nginx-mailcow":
        stop_api(project)
    project.log(service, f"mailcow emulator: {service} stopped")


def service_alive(project: Project, service: str) -> bool:
    """Does the process behind a service still run? Services without a process always do."""
    if service == "nginx-mailcow":
        return bool(_pid_alive(project.paths.api_pid_file))
    return realise.host_service_alive(project.paths, service)


def _record(state: dict[str, Any], project: Project, service: str, status: str) -> None:
    previous = state["services"].get(service, {})
    state["services"][service] = {
        "state": status, "image": project.image(service), "started_at": now_rfc3339(),
        "created_at": previous.get("created_at") or now_rfc3339(), "exit_code": 0 if status == "running" else 1,
    }


def _selected(project: Project, names: list[str]) -> list[str]:
    known = project.services()
    for name in names:
        if name not in known:
            raise ComposeError(f"no such service: {name}")
    return names or known


# ------------------------------------------------------------------ commands

def cmd_config(project: Project, args: list[str]) -> int:
    if "--services" in args:
        print("\n".join(project.services()))
        return 0
    if "-q" in args or "--quiet" in args:
        return 0
    import yaml

    print(yaml.safe_dump({"name": project.name, **project.config}, sort_keys=False), end="")
    return 0


def cmd_pull(project: Project, args: list[str]) -> int:
    names = _selected(project, [a for a in args if not a.startswith("-")])
    quiet = "-q" in args or "--quiet" in args
    state = project.state()
    pulled = set(state.get("pulled", []))
    for service in names:
        pulled.add(project.image(service))
        if not quiet:
            say(f" ✔ {service} Pulled (mailcow emulator: nothing downloaded)")
    state["pulled"] = sorted(pulled)
    project.save(state)
    return 0


def cmd_up(project: Project, args: list[str]) -> int:
    if "-d" not in args and "--detach" not in args:
        raise ComposeError("mailcow emulator: only detached `docker compose up -d` is emulated")
    names = _selected(project, [a for a in args if not a.startswith("-")])
    state = project.state()
    api_env_changed = load_json(project.paths.api_access_file, None) != _api_env(project)
    failed = []
    for service in names:
        current = state["services"].get(service)
        image = project.image(service)
        fresh = current is None or current["state"] != "running" or current["image"] != image
        if service in API_SERVICES and api_env_changed:
            fresh = True
        if not fresh and not service_alive(project, service):
            fresh = True  # the process died (host rebooted, killed): docker would restart it
        if not fresh:
            if service == "acme-mailcow":  # a running acme-mailcow checks its certificate periodically
                ok, err = run_acme(project)
                if not ok:
                    failed.append((service, err))
            say(f" Container {project.container(service)}  Running")
            continue
        status, err = start_service(project, service)
        _record(state, project, service, status)
        if status == "running":
            project.started_now.add(service)
        else:
            failed.append((service, err))
        say(f" Container {project.container(service)}  {'Started' if status == 'running' else 'Error'}")
    if "--remove-orphans" in args:
        for orphan in [s for s in state["services"] if s not in project.services()]:
            stop_service(project, orphan)
            del state["services"][orphan]
            say(f" Container {project.container(orphan)}  Removed")
    project.save(state)
    for service, err in failed:
        say(f"mailcow emulator: {service} is not running: {err.splitlines()[-1] if err else 'failed'}")
    return 1 if failed else 0


def cmd_down(project: Project, args: list[str]) -> int:
    state = project.state()
    for service in reversed(list(state["services"])):
        stop_service(project, service)
        say(f" Container {project.container(service)}  Removed")
    state["services"] = {}
    project.save(state)
    return 0


def cmd_restart(project: Project, args: list[str]) -> int:
    names = _selected(project, [a for a in args if not a.startswith("-")])
    state = project.state()
    rc = 0
    for service in names:
        if service not in state["services"]:
            continue  # compose restarts existing containers only
        status, err = start_service(project, service)
        _record(state, project, service, status)
        say(f" Container {project.container(service)}  {'Started' if status == 'running' else 'Error'}")
        if status != "running":
            rc = 1
            say(f"mailcow emulator: {service} is not running: {err.splitlines()[-1] if err else 'failed'}")
    project.save(state)
    return rc


def cmd_ps(project: Project, args: list[str]) -> int:
    state = project.state()["services"]
    show_all = "-a" in args or "--all" in args
    as_json = "json" in args
    names = [a for a in args if not a.startswith("-") and a not in ("json", "table")]
    rows = []
    for service, s in state.items():
        if names and service not in names:
            continue
        if s["state"] != "running" and not show_all:
            continue
        state_now = s["state"]
        if state_now == "running" and not service_alive(project, service):
            state_now = "exited"  # its process died; `up -d` starts it again
            if not show_all:
                continue
        status = {"running": f"Up {_human_age(s['started_at'])}", "exited": "Exited (137)"}.get(
            state_now, f"Restarting ({s.get('exit_code', 1)})")
        rows.append({
            "Command": '"mailcow-emulator"', "CreatedAt": s["created_at"], "ExitCode": s.get("exit_code", 0),
            "Health": "", "ID": hashlib.sha256(f"{project.container(service)} {s['created_at']}".encode()).hexdigest()[:12],
            "Image": s["image"], "Labels": f"com.docker.compose.project={project.name},com.docker.compose.service={service}",
            "LocalVolumes": "0", "Mounts": "", "Name": project.container(service), "Names": project.container(service),
            "Networks": f"{project.name}_mailcow-network", "Ports": "", "Project": project.name, "Publishers": [],
            "RunningFor": "mailcow emulator", "Service": service, "Size": "0B", "State": state_now, "Status": status,
        })
    if "-q" in args or "--quiet" in args:
        print("\n".join(r["ID"] for r in rows))
    elif as_json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(f"{'NAME':45} {'IMAGE':40} {'SERVICE':20} {'STATUS'}")
        for row in rows:
            print(f"{row['Name']:45} {row['Image']:40} {row['Service']:20} {row['Status']}")
    return 0


def _human_age(started_at: str) -> str:
    """Docker's "Up 2 minutes" wording for how long a container has run."""
    try:
        started = datetime.fromisoformat(started_at[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return "Less than a second"
    seconds = max(0, int((datetime.now(timezone.utc) - started).total_seconds()))
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{seconds} seconds"
    if seconds < 120:
        return "About a minute"
    if seconds < 3600:
        return f"{seconds // 60} minutes"
    if seconds < 7200:
        return "About an hour"
    if seconds < 172800:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"


def cmd_exec(project: Project, args: list[str]) -> int:
    rest = [a for a in args]
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag in ("-u", "--user", "-w", "--workdir", "-e", "--env") and rest:
            rest.pop(0)
    if len(rest) < 2:
        raise ComposeError("usage: docker compose exec [-T] SERVICE COMMAND [ARGS...]")
    service, command = rest[0], rest[1:]
    _selected(project, [service])
    if project.state()["services"].get(service, {}).get("state") != "running":
        raise ComposeError(f'service "{service}" is not running')
    if service not in ("postfix-mailcow", "dovecot-mailcow"):
        raise ComposeError(f"mailcow emulator: exec into {service} is not emulated (only postfix-mailcow and "
                           "dovecot-mailcow, which are this host's own Postfix and Dovecot)")
    try:
        return subprocess.run(command).returncode
    except FileNotFoundError:
        say(f'OCI runtime exec failed: exec: "{command[0]}": executable file not found in $PATH')
        return 126


def _external_log(project: Project, service: str) -> Path | None:
    if not host_services_enabled():
        return None
    if service == "postfix-mailcow":
        return Path(os.environ.get("MAILCOW_EMULATOR_POSTFIX_LOG", "/var/log/postfix.log"))
    if service == "dovecot-mailcow":
        return Path("/var/log/dovecot.log")
    return None


def cmd_logs(project: Project, args: list[str]) -> int:
    timestamps, since, tail, names = False, None, None, []
    now = datetime.now(timezone.utc)
    items = list(args)
    while items:
        arg = items.pop(0)
        if arg in ("-t", "--timestamps"):
            timestamps = True
        elif arg == "--no-color":
            pass
        elif arg in ("-f", "--follow"):
            raise ComposeError("mailcow emulator: `logs --follow` is not emulated; poll with --since instead")
        elif arg.startswith("--since") or arg.startswith("--tail") or arg == "-n":
            value = arg.split("=", 1)[1] if "=" in arg else (items.pop(0) if items else "")
            if arg.startswith("--since"):
                try:
                    since = parse_since(value, now)
                except ValueError:
                    raise ComposeError(f"invalid value for --since: {value!r} (use RFC 3339, a Unix time or 10m/2h)") from None
            else:
                tail = None if value == "all" else int(value)
        elif arg.startswith("-"):
            raise ComposeError(f"mailcow emulator: logs flag {arg} is not emulated")
        else:
            names.append(arg)
    services = _selected(project, names)
    width = max(len(project.container(s).replace(project.name + "-", "")) for s in services)
    for service in services:
        entries: list[tuple[datetime | None, str]] = []
        own = project.paths.service_log(service)
        if own.exists():
            for raw in own.read_text(errors="replace").splitlines():
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                entries.append((datetime.fromtimestamp(item["time"], tz=timezone.utc), item["line"]))
        external = _external_log(project, service)
        if external and external.exists():
            for line in external.read_text(errors="replace").splitlines():
                entries.append((parse_log_time(line, now), line))
        entries.sort(key=lambda e: e[0] or datetime.min.replace(tzinfo=timezone.utc))
        if since is not None:
            entries = [e for e in entries if e[0] is None or e[0] >= since]
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        label = project.container(service).replace(project.name + "-", "")
        for stamp, line in entries:
            print(render_compose_log_line(label, stamp, line, timestamps, width))
    return 0


COMMANDS = {"config": cmd_config, "pull": cmd_pull, "up": cmd_up, "down": cmd_down, "restart": cmd_restart,
            "ps": cmd_ps, "exec": cmd_exec, "logs": cmd_logs}


def main(argv: list[str], runtime_dir: Path) -> int:
    """``argv`` = the arguments after ``docker compose``."""
    files: list[Path] = []
    project_dir: Path | None = None
    name: str | None = None
    items = list(argv)
    try:
        while items and items[0].startswith("-"):
            flag = items.pop(0)
            value = flag.split("=", 1)[1] if "=" in flag else None
            flag = flag.split("=", 1)[0]
            if flag in ("-f", "--file", "--project-directory", "-p", "--project-name", "--ansi", "--progress",
                        "--env-file", "--profile"):
                value = value if value is not None else (items.pop(0) if items else "")
                if flag in ("-f", "--file"):
                    files.append(Path(value).absolute())
                elif flag == "--project-directory":
                    project_dir = Path(value).absolute()
                elif flag in ("-p", "--project-name"):
                    name = value
            else:
                raise ComposeError(f"mailcow emulator: compose option {flag} is not emulated")
        if not items:
            raise ComposeError("usage: docker compose [-f FILE] [--project-directory DIR] [-p NAME] "
                               f"{'|'.join(EMULATED)} ...")
        command, args = items[0], items[1:]
        if command == "version":
            print(COMPOSE_VERSION if "--short" in args else f"Docker Compose version v{COMPOSE_VERSION} (mailcow emulator)")
            return 0
        if command not in COMMANDS:
            raise ComposeError(f"mailcow emulator: `docker compose {command}` is not emulated; "
                               f"emulated subcommands: {', '.join(EMULATED)}")
        directory = project_dir or (files[0].parent if files else Path.cwd())
        project = Project(files, directory, name, runtime_dir)
        if command in ("up", "restart") and not (project.dir / "mailcow.conf").is_file():
            raise ComposeError(f"mailcow emulator: {project.dir / 'mailcow.conf'} does not exist; the services need "
                               "it. Run ./generate_config.sh in that directory first.")
        if command in ("up", "down", "restart", "pull"):
            with compose_lock(project):  # one state-changing compose run at a time, like dockerd
                return COMMANDS[command](project, args)
        return COMMANDS[command](project, args)
    except (ComposeError, ConfError) as exc:
        say(str(exc))
        return 1
