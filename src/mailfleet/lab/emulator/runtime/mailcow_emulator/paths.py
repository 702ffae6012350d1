"""Where the emulator keeps things on a lab host.

Everything lives under the Docker root (``/var/lib/docker``, which the lab gives each host
its own copy of) or can be redirected with ``MAILCOW_EMULATOR_DOCKER_ROOT`` (tests):

* ``<root>/volumes/<project>_mysql-vol-1/_data/emulator-db.json`` - what MariaDB would hold
* ``<root>/volumes/<project>_redis-vol-1/_data/dkim.json`` - the DKIM keys (Redis)
* ``<root>/volumes/<project>_vmail-vol-1/_data/<domain>/<local>/Maildir`` - mail
* ``<root>/volumes/<project>_postfix-vol-1/_data/`` - the Postfix maps the emulator renders
* ``<root>/mailcow-emulator/<project>/containers.json`` - compose state
* ``<root>/mailcow-emulator/<project>/<service>.log`` - a service's own log lines
* ``<root>/mailcow-emulator/faults.json`` - injected faults (written by ``lab.fault``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

VOLUMES = ("vmail-vol-1", "vmail-index-vol-1", "mysql-vol-1", "mysql-socket-vol-1", "redis-vol-1",
           "rspamd-vol-1", "postfix-vol-1", "crypt-vol-1", "sogo-web-vol-1", "sogo-userdata-backup-vol-1",
           "clamd-db-vol-1", "postfix-tlspol-vol-1")


def docker_root() -> Path:
    return Path(os.environ.get("MAILCOW_EMULATOR_DOCKER_ROOT", "/var/lib/docker"))


def host_services_enabled() -> bool:
    """False in tests that run without a lab host: never touch this machine's Postfix/Dovecot."""
    return os.environ.get("MAILCOW_EMULATOR_HOST_SERVICES", "1") != "0"


@dataclass(frozen=True)
class ProjectPaths:
    root: Path
    project: str

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / f"{self.project}_{name}" / "_data"

    @property
    def db_file(self) -> Path:
        return self.volume("mysql-vol-1") / "emulator-db.json"

    @property
    def redis_file(self) -> Path:
        return self.volume("redis-vol-1") / "dkim.json"

    @property
    def vmail(self) -> Path:
        return self.volume("vmail-vol-1")

    @property
    def postfix_maps(self) -> Path:
        return self.volume("postfix-vol-1")

    @property
    def state_dir(self) -> Path:
        return self.root / "mailcow-emulator" / self.project

    @property
    def containers_file(self) -> Path:
        return self.state_dir / "containers.json"

    @property
    def api_access_file(self) -> Path:
        return self.state_dir / "php-fpm-env.json"

    @property
    def api_pid_file(self) -> Path:
        return self.state_dir / "api.pid"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "state.lock"

    @property
    def dovecot_dir(self) -> Path:
        return self.state_dir / "dovecot"

    def service_log(self, service: str) -> Path:
        return self.state_dir / f"{service}.log"


def faults_file(root: Path | None = None) -> Path:
    return (root or docker_root()) / "mailcow-emulator" / "faults.json"


def project_paths(project: str, root: Path | None = None) -> ProjectPaths:
    return ProjectPaths(root or docker_root(), project)
