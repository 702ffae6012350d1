"""The upgrade's steps on a real host, over SSH and the Mailcow API (the effectful shell).

Every command runs in the Mailcow install dir as the inventory's SSH user, with stdin from
``/dev/null``: Mailcow's scripts prompt when unsure, and a prompt nobody answers must fail fast
instead of hanging the rollout (``yes |`` would answer questions nobody read).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fabric import Connection

from mailfleet.errors import MailfleetError, RemoteError
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Host
from mailfleet.ssh import open_connection
from mailfleet.upgrade.parse_remote import (
    parse_app_info_version,
    parse_backup_listing,
    parse_queue_counts,
)
from mailfleet.upgrade.plan import CheckResult
from mailfleet.upgrade.probes import fetch_imaps_problem, fetch_smtp_banner_problem
from mailfleet.upgrade.run import StepFailed

UPDATE_EXIT_RESTART = 2
UPDATE_STATE_DIR = "/var/lib/mailfleet"
UPDATE_STATE = f"{UPDATE_STATE_DIR}/mailcow-update"   # .pid, .log, .rc of the running update.sh
DEFAULT_BACKUP_DIR = "/var/backups/mailcow"


@dataclass(frozen=True)
class Settings:
    backup_dir: str = DEFAULT_BACKUP_DIR
    backup_threads: int = 2
    update_max_runs: int = 3          # update.sh exits 2 after updating itself; rerun at most this often
    update_timeout: int = 1800
    drain_threshold: int = 10         # messages in the active/incoming queues
    drain_timeout: float = 300.0
    health_timeout: float = 180.0
    queue_sample_gap: float = 5.0
    queue_growth_slack: int = 5
    poll_interval: float = 2.0


class SshHostOps:
    """``HostOps`` for real (and lab) hosts. One SSH connection per host, reused across steps."""

    def __init__(self, inventory: Inventory, settings: Settings = Settings(),
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        assert inventory.fleet is not None
        self.inventory = inventory
        self.fleet = inventory.fleet
        self.settings = settings
        self.sleep = sleep
        self.monotonic = monotonic
        self._conns: dict[str, Connection] = {}

    # ------------------------------------------------------------ plumbing

    @property
    def install_dir(self) -> str:
        return self.fleet.settings.mailcow.install_dir

    def conn(self, host: Host) -> Connection:
        conn = self._conns.get(host.name)
        if conn is None or conn.transport is None or not conn.transport.is_active():
            conn = open_connection(host, self.fleet, self.inventory.base_dir)
            self._conns[host.name] = conn
        return conn

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def sh(self, host: Host, command: str, *, timeout: int = 120) -> tuple[int, str]:
        """Run ``command`` in the install dir; (exit code, stdout+stderr)."""
        # Output goes through a file: a daemon that ``docker compose up`` starts may inherit the
        # command's stdout and would otherwise keep the SSH channel open until the timeout.
        full = (f"cd {shlex.quote(self.install_dir)} 2>/dev/null || exit 42; out=$(mktemp) || exit 1; "
                f"{{ {command} ; }} < /dev/null > \"$out\" 2>&1; rc=$?; cat \"$out\"; rm -f \"$out\"; exit $rc")
        result = self.conn(host).run(full, hide=True, warn=True, timeout=timeout, in_stream=False)
        return result.exited, result.stdout

    def must(self, host: Host, command: str, what: str, *, timeout: int = 120) -> str:
        code, out = self.sh(host, command, timeout=timeout)
        if code != 0:
            raise StepFailed(f"{what} exited {code}: {_tail(out)}")
        return out

    def postfix(self, host: Host, *argv: str) -> str:
        return "docker compose exec -T postfix-mailcow " + shlex.join(argv)

    # ------------------------------------------------------------ gather

    def gather_check(self, host: Host) -> CheckResult:
        """``update.sh --check`` (which fetches origin), the running and the available version."""
        try:
            code, out = self.sh(host, "test -f mailcow.conf && test -x update.sh || exit 42")
            if code == 42:
                return CheckResult(host.name, None, None, installed=False)
            code, out = self.sh(host, "./update.sh --check", timeout=300)
            _, info = self.sh(host, "cat data/web/inc/app_info.inc.php")
            _, tag = self.sh(host, "git describe --tags --abbrev=0 \"origin/$(git rev-parse --abbrev-ref HEAD "
                                   "| sed 's/^HEAD$/master/')\"")
        except MailfleetError as exc:
            return CheckResult(host.name, None, None, error=str(exc))
        return CheckResult(host.name, code, parse_app_info_version(info),
                           available_version=tag.strip().splitlines()[-1] if tag.strip() else None)

    def prefetch(self, host: Host) -> Mapping[str, Any]:
        """``update.sh --prefetch``: like every update.sh run it may first update its own
        ``_modules`` and exit 2 ("restart the update script"); rerun it then, bounded."""
        for _ in range(self.settings.update_max_runs):
            code, out = self.sh(host, "./update.sh --prefetch --skip-ping-check", timeout=1800)
            if code == 0:
                return {"pulled": sum(1 for line in out.splitlines() if line.startswith("Pulling"))}
            if code != UPDATE_EXIT_RESTART:
                raise StepFailed(f"update.sh --prefetch exited {code}: {_tail(out)}")
        raise StepFailed(f"update.sh --prefetch kept updating itself (exit 2) {self.settings.update_max_runs} times")

    def head(self, host: Host) -> str:
        return self.must(host, "git rev-parse HEAD", "git rev-parse HEAD").strip()

    # ------------------------------------------------------------ steps

    def backup(self, host: Host) -> Mapping[str, Any]:
        loc = self.settings.backup_dir
        if not loc.startswith("/"):
            raise StepFailed(f"backup location {loc!r} is not absolute; pass --backup-dir /path")
        q = shlex.quote(loc)
        # backup_and_restore.sh asks before creating a missing location, and refuses one whose
        # "others" permission digit is below 5: create it the way it wants.
        self.must(host, f"install -d -m 0755 {q} && stat -Lc %a {q} | grep -Eq '[5-7]$' || "
                        f"{{ echo \"{loc} must be mode 755 (others r-x): backup_and_restore.sh refuses it\"; exit 1; }}",
                  "preparing the backup location")
        before = set(parse_backup_listing(self.must(host, f"ls -1 {q}", "listing backups")))
        self.must(host, f"MAILCOW_BACKUP_LOCATION={q} THREADS={int(self.settings.backup_threads)} "
                        "./helper-scripts/backup_and_restore.sh backup all", "backup_and_restore.sh backup all",
                  timeout=3600)
        new = sorted(set(parse_backup_listing(self.must(host, f"ls -1 {q}", "listing backups"))) - before)
        if not new:
            raise StepFailed(f"backup_and_restore.sh reported success but no new mailcow-* folder is in {loc}")
        folder = f"{loc.rstrip('/')}/{new[-1]}"
        listing = self.must(host, f"ls -l {shlex.quote(folder)}", "listing the backup")
        redis = [line for line in listing.splitlines() if "backup_redis.tar" in line]
        if not redis or int(redis[0].split()[4]) == 0:
            raise StepFailed(f"{folder} holds no (or an empty) backup_redis archive; the DKIM keys live in Redis, "
                             "so this backup could not restore them. Nothing was updated")
        if "mailcow.conf" not in listing:
            raise StepFailed(f"{folder} lacks mailcow.conf; the backup is incomplete. Nothing was updated")
        return {"folder": folder}

    def defer_bulk(self, host: Host) -> Mapping[str, Any]:
        """Hold the queued bulk mail (the priority component's ``queue --pause-bulk``): it waits in
        the hold queue across the restart instead of competing with transactional mail after it."""
        from mailfleet.priority.queue import apply_pause_bulk, gather_queue

        listing, _ = gather_queue(self.conn(host), self.fleet, host)
        action = apply_pause_bulk(self.conn(host), self.fleet, host, listing)
        return {"held": action.done}

    def resume_bulk(self, host: Host) -> Mapping[str, Any]:
        from mailfleet.priority.queue import apply_resume_bulk, gather_queue

        listing, _ = gather_queue(self.conn(host), self.fleet, host)
        action = apply_resume_bulk(self.conn(host), self.fleet, host, listing)
        return {"released": action.done}

    def queue_counts(self, host: Host) -> dict[str, int]:
        return parse_queue_counts(self.must(host, self.postfix(host, "postqueue", "-j"), "postqueue -j"))

    def drain(self, host: Host) -> Mapping[str, Any]:
        deadline = self.monotonic() + self.settings.drain_timeout
        while True:
            counts = self.queue_counts(host)
            in_flight = counts.get("active", 0) + counts.get("incoming", 0)
            if in_flight <= self.settings.drain_threshold:
                return {"in_flight": in_flight, "deferred": counts.get("deferred", 0), "held": counts.get("hold", 0)}
            self.defer_bulk(host)   # bulk submitted since the pause is held too
            if self.monotonic() >= deadline:
                raise StepFailed(f"{in_flight} messages still in flight after {self.settings.drain_timeout:.0f} s "
                                 f"(threshold {self.settings.drain_threshold}); the host was not updated")
            self.sleep(self.settings.poll_interval)

    def update(self, host: Host, target: str) -> Mapping[str, Any]:
        for run in range(1, self.settings.update_max_runs + 1):
            code, out = self._detached_update(host)
            if code == 0:
                return {"runs": run}
            if code != UPDATE_EXIT_RESTART:
                raise StepFailed(f"update.sh --force exited {code}: {_tail(out)}")
        raise StepFailed(f"update.sh kept updating itself (exit 2) {self.settings.update_max_runs} times; "
                         "run it by hand and read what it prints")

    def _detached_update(self, host: Host) -> tuple[int, str]:
        """Run update.sh in its own session so it finishes even if the controller or the SSH
        connection dies mid-update (a killed update.sh leaves the stack down); poll for its exit
        code. If an earlier update.sh is still running (the controller crashed), wait for that one
        instead of starting a second."""
        files = UPDATE_STATE
        running = self.sh(host, f"test ! -f {files}.rc && test -f {files}.pid && kill -0 $(cat {files}.pid) "
                                "2>/dev/null && echo running")[1]
        if "running" not in running:
            script = (f"echo $$ > {files}.pid; ./update.sh --force --skip-ping-check < /dev/null > {files}.log 2>&1; "
                      f"echo $? > {files}.rc")
            self.must(host, f"mkdir -p {UPDATE_STATE_DIR} && rm -f {files}.rc {files}.pid && "
                            f"{{ setsid nohup sh -c {shlex.quote(script)} > /dev/null 2>&1 & }}", "starting update.sh")
        deadline = self.monotonic() + self.settings.update_timeout
        while True:
            code_text = self.sh(host, f"cat {files}.rc 2>/dev/null")[1].strip()
            if code_text.isdigit():
                return int(code_text), self.sh(host, f"tail -n 40 {files}.log")[1]
            if self.monotonic() >= deadline:
                raise StepFailed(f"update.sh has not finished after {self.settings.update_timeout} s; it keeps "
                                 f"running on the host (log: {files}.log)")
            self.sleep(self.settings.poll_interval)

    def health(self, host: Host, version: str) -> Mapping[str, Any]:
        """Poll every gate until all pass or the timeout; the failure names each failing gate."""
        deadline = self.monotonic() + self.settings.health_timeout
        while True:
            failures, seen = self._gates(host, version)
            if not failures:
                return seen
            if self.monotonic() >= deadline:
                raise StepFailed("health gates failed after "
                                 f"{self.settings.health_timeout:.0f} s: " + "; ".join(failures))
            self.sleep(self.settings.poll_interval)

    def _gates(self, host: Host, version: str) -> tuple[list[str], dict[str, Any]]:
        from mailfleet.mailcow import open_api

        failures: list[str] = []
        seen: dict[str, Any] = {}
        services: list[str] = []
        try:
            with open_api(host, self.inventory, conn=self.conn(host)) as api:
                containers = api.get_containers()
                services = sorted(containers)
                down = sorted(name for name, info in containers.items() if info.get("state") != "running")
                if not containers:
                    failures.append("the API lists no containers")
                elif down:
                    failures.append(f"containers not running: {', '.join(down)}")
                running_version = api.get_version()
                seen["version"] = running_version
                if running_version != version:
                    failures.append(f"the API reports version {running_version}, expected {version}")
        except MailfleetError as exc:
            failures.append(f"Mailcow API: {exc}")
            return failures, seen
        if "postfix-mailcow" in services:
            problem = fetch_smtp_banner_problem(host.address, 25)
            if problem:
                failures.append(problem)
        if "dovecot-mailcow" in services:
            cert = self.sh(host, "cat data/assets/ssl/cert.pem")[1]
            problem = fetch_imaps_problem(host.address, 993, cert)
            if problem:
                failures.append(problem)
        if "postfix-mailcow" in services and not failures:
            first = sum(self.queue_counts(host).values())
            self.sleep(self.settings.queue_sample_gap)
            second = sum(self.queue_counts(host).values())
            seen["queue"] = second
            if second > first + self.settings.queue_growth_slack:
                failures.append(f"the mail queue grew from {first} to {second} in "
                                f"{self.settings.queue_sample_gap:.0f} s")
        return failures, seen

    def rollback(self, host: Host, head_before: str | None = None) -> Mapping[str, Any]:
        """Mailcow's documented rollback: back to the "Before update" commit, then restart.

        The newest "Before update" commit is used only if it was made on top of ``head_before``
        (this update's starting point); an older one belongs to an earlier update and would go
        back too far. Without such a commit (update.sh failed before committing), ``head_before``
        itself is the target.
        """
        log = self.must(host, "git log --all -i --grep='Before update' --format='%H %P' -n 20", "git log")
        target = _rollback_target(log, head_before)
        if target is None:
            raise StepFailed("no \"Before update\" commit and no recorded starting commit; roll back by hand "
                             "(docs: maintenance/update, rollback)")
        q = shlex.quote(target)
        self.must(host, "docker compose down", "docker compose down", timeout=600)
        # Keep the branch (moved back to the target) rather than a detached HEAD: update.sh reads
        # the branch name to know what to fetch next time.
        self.must(host, f"b=$(git rev-parse --abbrev-ref HEAD); if [ \"$b\" = HEAD ]; then git checkout -q -f {q}; "
                        f"else git checkout -q -f -B \"$b\" {q}; fi", f"git checkout {target[:12]}")
        # app_info.inc.php is generated by update.sh and ignored by git: make it tell the truth.
        self.must(host, "v=$(git describe --tags --abbrev=0 HEAD) && c=$(git rev-parse HEAD) && "
                        "sed -i -e \"s/^\\( *\\$MAILCOW_GIT_VERSION=\\\"\\)[^\\\"]*/\\1$v/\" "
                        "-e \"s/^\\( *\\$MAILCOW_GIT_COMMIT=\\\"\\)[^\\\"]*/\\1$c/\" data/web/inc/app_info.inc.php",
                  "rewriting app_info.inc.php")
        self.must(host, "docker compose pull -q", "docker compose pull", timeout=1800)
        self.must(host, "docker compose up -d", "docker compose up -d", timeout=600)
        return {"commit": target[:12]}


def _rollback_target(log: str, head_before: str | None) -> str | None:
    for line in log.splitlines():
        parts = line.split()
        if len(parts) >= 2 and head_before and parts[1] == head_before:
            return parts[0]
    if head_before:
        return head_before
    first = log.split()
    return first[0] if first else None


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"

