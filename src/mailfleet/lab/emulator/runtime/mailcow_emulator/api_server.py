"""The Mailcow API of the emulator: HTTPS, ``X-API-Key``, Mailcow's status codes and quirks.

Runs under the lab host's ``/usr/bin/python3`` (stdlib only), started by
``docker compose up -d`` (service ``nginx-mailcow``/``php-fpm-mailcow``) or by tests:

    python3 -m mailcow_emulator.api_server --project-dir DIR [--bind ADDR] [--port N]
        [--docker-root ROOT] [--postfix-log FILE] [--pid-file FILE]

Keys are read from ``mailcow.conf`` at start, like php-fpm's entrypoint does on every
container start; so changing a key needs ``docker compose up -d``. Every answer carries
``X-Mailcow-Emulator: 1``. Faults from ``<docker root>/mailcow-emulator/faults.json`` are read
on every request: ``{"api-errors": {"mode": "500"}}`` answers HTTP 500,
``{"api-errors": {"mode": "slow", "delay_s": N}}`` answers after N seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import logic, realise
from .parse_conf import address_allowed, client_seen_as, parse_api_access, parse_mailcow_conf
from .parse_logs import parse_postfix_log
from .parse_route import (AUTH_FAILED, RO_DENIED, ROUTE_NOT_FOUND, HttpAnswer, Route, error, parse_body,
                          parse_route)
from .paths import docker_root, faults_file, project_paths
from .secrets_host import dkim_public_key, generate_dkim_key, hash_password
from .store import load_faults, load_json, load_state, locked, save_state

MAX_BODY = 1024 * 1024
_VERSION = re.compile(r"\$MAILCOW_GIT_VERSION\s*=\s*\"([^\"]*)\"")


def read_version(project_dir: Path) -> str:
    """The checked-out version, from ``data/web/inc/app_info.inc.php`` like Mailcow's UI."""
    info = project_dir / "data/web/inc/app_info.inc.php"
    if info.exists():
        match = _VERSION.search(info.read_text())
        if match:
            return match.group(1)
    version = Path(__file__).resolve().parent.parent / "VERSION"
    return version.read_text().strip() if version.exists() else "unknown"


class Emulator:
    """Everything a request needs, loaded once at start (like php-fpm's environment)."""

    def __init__(self, project_dir: Path, root: Path, postfix_log: Path) -> None:
        self.project_dir = project_dir
        self.conf = parse_mailcow_conf((project_dir / "mailcow.conf").read_text())
        self.access = parse_api_access(self.conf)
        self.ipv4_network = self.conf.get("IPV4_NETWORK", "172.22.1")
        self.project = self.conf.get("COMPOSE_PROJECT_NAME", "mailcowdockerized")
        self.paths = project_paths(self.project, root)
        self.root = root
        self.postfix_log = postfix_log
        self.version = read_version(project_dir)
        vars_local = project_dir / "data/web/inc/vars.local.inc.php"
        show = vars_local.exists() and re.search(r"\$SHOW_DKIM_PRIV_KEYS\s*=\s*true", vars_local.read_text())
        self.deps = logic.Deps(
            hostname=self.conf.get("MAILCOW_HOSTNAME", ""),
            now=lambda: datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            generate_dkim=generate_dkim_key, dkim_public=dkim_public_key, hash_password=hash_password,
            show_dkim_priv_keys=bool(show))
        self.lock = threading.Lock()

    def log(self, line: str) -> None:
        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.paths.service_log("php-fpm-mailcow"), "a") as handle:
            handle.write(json.dumps({"time": time.time(), "line": line}) + "\n")

    # ------------------------------------------------------------ request pipeline

    def authenticate(self, key_header: str | None, peer: str, forwarded: str | None) -> str | HttpAnswer:
        """'rw' / 'ro', or the 401 answer (and a fail2ban-style log line, like Mailcow)."""
        client = client_seen_as(peer, forwarded, self.ipv4_network)
        if not key_header:
            return AUTH_FAILED
        key = re.sub(r"[^a-zA-Z0-9-]", "", key_header)
        level = "rw" if key and key == self.access.rw_key else "ro" if key and key == self.access.ro_key else ""
        if not level:
            self.log(f"mailcow UI: Invalid password for API_USER by {client}")
            return AUTH_FAILED
        if not address_allowed(client, self.access.allow_from):
            self.log(f"mailcow UI: Invalid password for API_USER by {client}")
            return error(401, f"api access denied for ip {client}")
        return level

    def handle(self, method: str, target: str, headers: Any, body: bytes, peer: str) -> HttpAnswer:
        faults = load_faults(faults_file(self.root)).get("api-errors")
        if isinstance(faults, dict):
            if str(faults.get("mode")) == "500":
                return error(500, "mailcow emulator: injected fault api-errors (HTTP 500)")
            if str(faults.get("mode")) == "slow":
                time.sleep(min(float(faults.get("delay_s", 5) or 0), 600))
        level = self.authenticate(headers.get("X-API-Key"), peer, headers.get("X-Forwarded-For"))
        if isinstance(level, HttpAnswer):
            return level
        route = parse_route(method, target)
        if isinstance(route, HttpAnswer):
            return route
        if route.action != "get" and level != "rw":
            return RO_DENIED
        decoded = parse_body(route.action, headers.get("Content-Type"), body)
        if isinstance(decoded, HttpAnswer):
            return decoded
        if route.action == "get":
            return self.get(route)
        return self.write(route, decoded)

    def write(self, route: Route, body: Any) -> HttpAnswer:
        if route.category == "mailq" and route.action in ("edit", "delete"):
            return self.mail_queue_action(route.action, body)
        with self.lock, locked(self.paths):
            db, redis = load_state(self.paths)
            entries = logic.run_write(route.action, route.category, db, redis, body, self.deps)
            if entries is None:
                return ROUTE_NOT_FOUND
            save_state(self.paths, db, redis)
            try:
                realise.apply_state(self.paths, db)
            except OSError as exc:
                self.log(f"mailcow emulator: could not realise the change: {exc}")
        if not entries:
            return HttpAnswer(200, {"type": "success", "msg": "Task completed"})
        return HttpAnswer(200, entries)

    def mail_queue_action(self, action: str, body: Any) -> HttpAnswer:
        """``edit/mailq {"action": "flush"}`` = ``postqueue -f``; ``delete/mailq {"action":
        "super_delete"}`` = ``postsuper -d ALL`` (the whole queue, as in Mailcow)."""
        wanted = body.get("action") if isinstance(body, dict) else None
        command = {("edit", "flush"): ["postqueue", "-f"],
                   ("delete", "super_delete"): ["postsuper", "-d", "ALL"]}.get((action, wanted))
        if command is None:
            return HttpAnswer(200, {"type": "danger", "msg": f"mailq: unsupported action {wanted!r}"})
        if not realise.run_queue_command(command):
            return HttpAnswer(200, {"type": "danger", "msg": "mailq: the command failed"})
        return HttpAnswer(200, {"type": "success", "msg": "Task completed"})

    def get(self, route: Route) -> HttpAnswer:
        db, redis = load_state(self.paths)
        c, o, d = route.category, route.object, self.deps
        if c == "domain":
            data: Any = logic.get_domain(db, redis, o, route.query, d)
        elif c == "dkim":
            data = logic.get_dkim(db, redis, o, d)
        elif c == "mailbox":
            data = logic.get_mailbox(db, redis, o, route.extra, d)
        elif c == "alias":
            data = logic.get_alias(db, redis, o, d)
        elif c == "relayhost":
            data = logic.get_relayhost(db, redis, o, d)
        elif c == "transport":
            data = logic.get_transport(db, redis, o, d)
        elif c == "status" and o == "containers":
            data = self.containers()
        elif c == "status" and o == "version":
            data = {"version": read_version(self.project_dir)}  # PHP includes app_info.inc.php per request
        elif c == "status" and o == "vmail":
            data = self.vmail_status()
        elif c == "logs" and o == "postfix":
            data = self.postfix_logs(route.extra)
        elif c == "mailq" and o == "all":
            data = realise.mail_queue()
        else:
            return ROUTE_NOT_FOUND
        return HttpAnswer(200, data if data not in ([], None) else {})

    def containers(self) -> dict[str, Any]:
        state = load_json(self.paths.containers_file, {}).get("services", {})
        def state_of(name: str, s: dict[str, Any]) -> str:
            if s["state"] == "running" and not realise.host_service_alive(self.paths, name):
                return "exited"
            return s["state"]

        return {name: {"type": "info", "container": name, "state": state_of(name, s), "started_at": s["started_at"],
                       "image": s["image"]} for name, s in sorted(state.items())}

    def vmail_status(self) -> dict[str, Any]:
        usage = os.statvfs(self.paths.root if self.paths.root.exists() else "/")
        total = usage.f_blocks * usage.f_frsize
        used = total - usage.f_bfree * usage.f_frsize
        return {"type": "info", "disk": "mailcow-emulator", "used": f"{used // 2**30}G",
                "total": f"{total // 2**30}G", "used_percent": f"{used * 100 // max(total, 1)}%"}

    def postfix_logs(self, extra: str) -> Any:
        try:
            count = int(extra) if extra else 9999
        except ValueError:
            count = 9999
        try:
            text = self.postfix_log.read_text(errors="replace")
        except OSError:
            return {}
        return parse_postfix_log(text[-8_000_000:], count, datetime.now(timezone.utc))


def make_handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "nginx (mailcow emulator)"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms Nagle/delayed-ACK stall

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                answer = error(413, "request body too large")
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                try:
                    answer = emulator.handle(method, self.path, self.headers, body, self.client_address[0])
                except Exception as exc:  # noqa: BLE001 - a bug must answer 500, not hang the client
                    emulator.log(f"mailcow emulator: internal error on {method} {self.path}: {exc!r}")
                    answer = error(500, "mailcow emulator: internal error")
            payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Mailcow-Emulator", "1")
            self.end_headers()
            self.wfile.write(payload)
            emulator.log(f"mailcow emulator: {method} {self.path.split('?')[0]} {answer.status}")

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._serve("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailcow-emulator-api", description="Mailcow API (mailcow emulator)")
    parser.add_argument("--project-dir", required=True, type=Path)
    parser.add_argument("--bind", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--docker-root", type=Path, default=None)
    parser.add_argument("--postfix-log", type=Path, default=Path("/var/log/postfix.log"))
    parser.add_argument("--pid-file", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.docker_root or docker_root()
    emulator = Emulator(args.project_dir.resolve(), root, args.postfix_log)
    bind = args.bind if args.bind is not None else (emulator.conf.get("HTTPS_BIND", "") or "0.0.0.0")
    port = args.port if args.port is not None else int(emulator.conf.get("HTTPS_PORT", "443") or 443)
    ssl_dir = emulator.project_dir / "data/assets/ssl"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ssl_dir / "cert.pem", ssl_dir / "key.pem")
    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # nginx accepts bursts; the default backlog of 5 drops them

    server = Server((bind, port), make_handler(emulator))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    if args.pid_file:
        args.pid_file.parent.mkdir(parents=True, exist_ok=True)
        args.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    emulator.log(f"mailcow emulator: API {emulator.version} listening on https://{bind}:{port}")
    print(f"mailcow emulator API {emulator.version} listening on https://{bind}:{server.server_address[1]}",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pid_file and args.pid_file.exists():
            args.pid_file.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
