"""A private six-host lab for the upgrade tests, and a way to (re)install Mailcow on it.

The upgrade tests take hosts down, inject an update failure and move the inventory's version
pin, so they run on a lab of their own (prefix ``mfug``, 10.83.0.0/24, folder
``var/lab-upgrade-<pid>``) instead of the shared one: the shared lab and its ``lab.yaml`` stay
exactly as deploy's tests expect them, whatever happens here.

Mailcow is installed with ``mailfleet deploy --all`` when that task exists; until then (and if
it fails) a minimal install does what deploy would: clone the emulated repository at the pinned
tag, ``generate_config.sh``, the API key from the inventory's secret, ``docker compose up -d``.
"""

from __future__ import annotations

import io
import shlex
import subprocess
from pathlib import Path

from mailfleet.inventory import load_valid_inventory
from mailfleet.secrets import resolve_secret
from mailfleet.ssh import open_connection

REPO = Path(__file__).resolve().parents[2]
MAILFLEET = str(REPO / ".venv" / "bin" / "mailfleet")

INSTALL = r"""
set -e
REPO="$1"; HN="$2"; KEY="$3"; TAG="$4"; DIR="$5"
if [ -d "$DIR" ]; then (cd "$DIR" && docker compose down > /dev/null 2>&1 || true); rm -rf "$DIR"; fi
git clone -q "$REPO" "$DIR"
cd "$DIR"
git -c advice.detachedHead=false checkout -q -B master "refs/tags/$TAG"
MAILCOW_HOSTNAME="$HN" MAILCOW_TZ=UTC SKIP_CLAMD=y ./generate_config.sh --dev < /dev/null > /tmp/genconf.log 2>&1
sed -i '/^#\?API_KEY=/d; /^#\?API_ALLOW_FROM=/d' mailcow.conf
printf 'API_KEY=%s\nAPI_ALLOW_FROM=127.0.0.1,::1,172.22.1.1\n' "$KEY" >> mailcow.conf
bash _modules/scripts/app_info.sh master
docker compose up -d < /dev/null > /tmp/compose-up.log 2>&1
"""


def has_deploy() -> bool:
    out = subprocess.run([MAILFLEET, "--list"], capture_output=True, text=True, timeout=60).stdout
    return any(line.split()[:1] == ["deploy"] for line in out.splitlines())


def install_mailcow(inventory: Path, version: str) -> str:
    """Every Mailcow host at ``version``, freshly installed. Returns how it was done."""
    if has_deploy():
        result = subprocess.run([MAILFLEET, "deploy", "--all", "--inventory", str(inventory)],
                                capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
        if result.returncode == 0:
            return "deploy"
        print(f"lab-upgrade: deploy --all failed (exit {result.returncode}), using the minimal install:\n"
              + "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:]))
    inv = load_valid_inventory(inventory)
    fleet = inv.fleet
    assert fleet is not None
    repo = fleet.settings.mailcow.repository.removeprefix("file://")
    for host in fleet.hosts.values():
        if not host.runs_mailcow or host.api_key is None:
            continue
        key = resolve_secret(host.api_key, inv.base_dir)
        conn = open_connection(host, fleet, inv.base_dir)
        try:
            args = shlex.join([repo, host.hostname, key, version, fleet.settings.mailcow.install_dir])
            result = conn.run(f"bash -s {args}", in_stream=io.StringIO(INSTALL), hide=True, warn=True, timeout=180)
            assert result.ok, f"{host.name}: installing the emulated Mailcow failed: {result.stderr[-500:]}"
        finally:
            conn.close()
    return "minimal install"


DOWNGRADE = r"""
set -e
cd "$1"
docker compose down > /dev/null 2>&1
git -c advice.detachedHead=false checkout -q -f -B master "refs/tags/$2"
bash _modules/scripts/app_info.sh master
docker compose up -d < /dev/null > /tmp/compose-up.log 2>&1
"""


def downgrade_mailcow(inventory: Path, version: str) -> list[str]:
    """Put every Mailcow host that is not on ``version`` back on it (checkout of the tag, restart);
    mailcow.conf and the data stay. Returns the hosts changed."""
    inv = load_valid_inventory(inventory)
    fleet = inv.fleet
    assert fleet is not None
    changed = []
    for host in fleet.hosts.values():
        if not host.runs_mailcow:
            continue
        conn = open_connection(host, fleet, inv.base_dir)
        try:
            info = conn.run(f"cat {shlex.quote(fleet.settings.mailcow.install_dir)}/data/web/inc/app_info.inc.php",
                            hide=True, warn=True, in_stream=False).stdout
            if f'"{version}"' in info:
                continue
            args = shlex.join([fleet.settings.mailcow.install_dir, version])
            result = conn.run(f"bash -s {args}", in_stream=io.StringIO(DOWNGRADE), hide=True, warn=True, timeout=180)
            assert result.ok, f"{host.name}: downgrade to {version} failed: {result.stdout[-300:]} {result.stderr[-300:]}"
            changed.append(host.name)
        finally:
            conn.close()
    return changed
