"""The Mailcow emulator: what runs on a lab host in place of Mailcow (lab only).

Interfaces for the lab (``mailfleet.lab``):

* ``build_mailcow_repository(dest) -> list[str]``: a bare git repository of an emulated
  ``mailcow-dockerized`` with tags ``2026-07a`` and ``2026-09`` (``master`` at the newest).
  Lab hosts clone it (``git clone <dest> /opt/mailcow-dockerized``).
* ``docker_shim_path() -> Path``: the ``docker`` command (``#!/usr/bin/python3``, stdlib only)
  to bind-mount over ``/usr/local/bin/docker`` inside each lab host.

On a lab host everything the emulator keeps is under ``/var/lib/docker`` (give each host its
own): volumes in ``/var/lib/docker/volumes/<project>_<volume>/_data`` and the emulator's own
state in ``/var/lib/docker/mailcow-emulator/``. ``postfix-mailcow`` writes the host's
``/etc/postfix/main.cf`` (each host needs its own /etc) and runs ``postfix start|reload``;
``dovecot-mailcow`` uses ``/etc/dovecot/mailcow-emulator.conf``.

Certificates: ``generate_config.sh`` makes a snake-oil certificate; the emulated
``acme-mailcow`` (``runtime/mailcow_emulator/acme.py``) replaces it with one signed by the lab
CA when the lab offers that CA inside the host at ``/var/lib/docker/mailcow-emulator/lab-ca/``
(``ca.pem`` and ``ca.key``; ``LAB_CA_DIR_IN_HOST``), then reloads Dovecot, Postfix and the API
server. Without the offer (or with ``SKIP_LETS_ENCRYPT=y``) the snake-oil certificate stays.

Faults (written by ``lab.fault``, read on every API request and every ``update.sh`` run):
``/var/lib/docker/mailcow-emulator/faults.json`` inside the host, a JSON object::

    {"api-errors": {"mode": "500"}}                  every API call answers HTTP 500
    {"api-errors": {"mode": "slow", "delay_s": 5}}   every API call waits 5 s first
    {"update-fails": true}                           update.sh fails after down + merge, exit 1

Keys may be combined; an absent or unreadable file means no fault.
"""

from __future__ import annotations

from pathlib import Path

from mailfleet.lab.emulator.repository import build_mailcow_repository

FAULTS_PATH_IN_HOST = Path("/var/lib/docker/mailcow-emulator/faults.json")
LAB_CA_DIR_IN_HOST = Path("/var/lib/docker/mailcow-emulator/lab-ca")


def docker_shim_path() -> Path:
    """The emulator's ``docker`` command, to bind-mount over /usr/local/bin/docker in a lab host."""
    shim = Path(__file__).resolve().parent / "docker"
    if shim.exists() and not shim.stat().st_mode & 0o111:
        shim.chmod(0o755)  # an installed wheel may not keep the executable bit
    return shim


__all__ = ["FAULTS_PATH_IN_HOST", "LAB_CA_DIR_IN_HOST", "build_mailcow_repository", "docker_shim_path"]
