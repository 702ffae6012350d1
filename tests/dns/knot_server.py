"""Knot DNS on loopback for tests: serve zone texts on a free port, change records, stop by PID.

Recipe from shared/reference/lab-environment.md §8. knotd runs as the calling user (the config
names none), listens on 127.0.0.1 only, keeps everything under the folder it is given, and is
stopped by its PID when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import dns.resolver

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
HAVE_KNOT = os.path.exists(KNOTD) and os.path.exists(KNOTC)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Knot:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.folder, self.port, self.process = folder, port, process
        self.conf = folder / "knot.conf"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def control(self, *args: str) -> None:
        done = subprocess.run([KNOTC, "-c", str(self.conf), *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise AssertionError(f"knotc {' '.join(args)}: {done.stdout}{done.stderr}")

    def replace(self, zone: str, owner: str, rtype: str, rdata: str) -> None:
        """Swap every ``rtype`` record at ``owner`` for one with ``rdata`` (one transaction)."""
        self.control("zone-begin", zone)
        self.control("zone-unset", zone, owner, rtype)
        self.control("zone-set", zone, owner, "3600", rtype, rdata)
        self.control("zone-commit", zone)


@contextlib.contextmanager
def serve_zones(folder: Path, zones: Mapping[str, str]) -> Iterator[Knot]:
    """Serve ``{zone name: zone file text}``; fails with knotd's log if it does not come up."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir(exist_ok=True)  # the journal; zone-commit fails with "not exists" without it
    for name, text in zones.items():
        (folder / f"{name}.zone").write_text(text)
    port = free_port()
    conf = folder / "knot.conf"
    zone_lines = "".join(f"  - domain: {name}\n" for name in zones)
    conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: {folder}
    pidfile: {folder}/knot.pid
log:
  - target: {folder}/knot.log
    any: info
database:
    storage: {folder}/db
control:
    listen: {folder}/knot.sock
template:
  - id: default
    storage: {folder}
    file: "%s.zone"
zone:
{zone_lines}""")
    process = subprocess.Popen([KNOTD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], port, 1.0
        first = next(iter(zones))
        for _ in range(50):  # bounded: at most about 10 s
            try:
                resolver.resolve(f"{first}.", "SOA")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if process.poll() is not None:
                    raise AssertionError(f"knotd exited: {(folder / 'knot.log').read_text()}") from None
                time.sleep(0.2)
        else:
            raise AssertionError(f"knotd did not answer: {(folder / 'knot.log').read_text()}")
        yield Knot(folder, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
