"""``lab.fault`` and ``lab.heal``: break one lab host on purpose, and mend it.

``down`` kills the host's init, so every process of the host dies at once, like a crash; its
disk (overlays, spool, Mailcow state) stays, and ``heal`` boots it again, which restarts sshd,
Postfix, Dovecot and an installed (emulated) Mailcow. ``partition`` takes the host's link down.
``api-errors`` and ``update-fails`` are read by the Mailcow emulator from
``/var/lib/docker/mailcow-emulator/faults.json`` inside the host.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailfleet.inventory.load import write_atomically
from mailfleet.lab import boot, network
from mailfleet.lab.model import LabHost, LabState
from mailfleet.lab.render_host import render_boot_script
from mailfleet.lab.state import LabPaths, lab_lock, load_state, save_state
from mailfleet.lab.system import LabError, kill, require_lab_machine, wait_until

KINDS = ("down", "partition", "api-errors", "update-fails")
API_MODES = ("500", "slow")
FAULTS_FILE = Path("mailcow-emulator") / "faults.json"


def faults_file(paths: LabPaths, host: str) -> Path:
    """The emulator's faults file, seen from the machine (the host's /var/lib/docker)."""
    return paths.host_dir(host) / "lib-docker" / FAULTS_FILE


def _require_state(paths: LabPaths) -> LabState:
    state = load_state(paths)
    if state is None or not state.complete:
        raise LabError("no lab is up; start it with `mailfleet lab.up`")
    return state


def _record(state: LabState, host: str):
    for record in state.hosts:
        if record.name == host:
            return record
    raise LabError(f"the lab has no host {host!r}; its hosts are {', '.join(r.name for r in state.hosts)}")


def _write_emulator_faults(path: Path, update: dict[str, Any]) -> None:
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        current = {}
    current.update(update)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(current, indent=2) + "\n", 0o644)


def apply_fault(paths: LabPaths, host: str, kind: str, *, mode: str = "500", delay_s: float = 5.0,
                say=print) -> None:
    require_lab_machine()
    if kind not in KINDS:
        raise LabError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
    with lab_lock(paths):
        state = _require_state(paths)
        record = _record(state, host)
        if kind == "down":
            if boot.host_running(record):
                kill(record.init_pid)
                if not wait_until(lambda: not boot.host_running(record), 10):
                    raise LabError(f"{host}: the init {record.init_pid} did not die after SIGKILL")
            what = f"{host} is down: every process of the host was killed (its disk is kept)"
        elif kind == "partition":
            network.set_link(record.veth, up=False)
            what = f"{host} is cut off: its link {record.veth} is down"
        elif kind == "api-errors":
            if mode not in API_MODES:
                raise LabError(f"api-errors --mode must be one of {', '.join(API_MODES)}, not {mode!r}")
            if delay_s < 0 or delay_s > 600:
                raise LabError(f"--delay must be between 0 and 600 seconds, not {delay_s}")
            _write_emulator_faults(faults_file(paths, host), {"api-errors": {"mode": mode, "delay_s": delay_s}})
            what = f"{host}: the emulated Mailcow API now fails ({'HTTP 500' if mode == '500' else f'{delay_s:g} s slow'})"
        else:
            _write_emulator_faults(faults_file(paths, host), {"update-fails": True})
            what = f"{host}: the emulated Mailcow update.sh now fails"
        kinds = tuple(sorted(set(state.faults.get(host, ())) | {kind}))
        save_state(paths, replace(state, faults={**state.faults, host: kinds}))
    say(f"{what}; `mailfleet lab.heal --host {host}` undoes it")


def heal_lab(paths: LabPaths, host: str | None = None, say=print) -> list[str]:
    """Undo every fault of ``host`` (or of every host); return what was done."""
    require_lab_machine()
    with lab_lock(paths):
        state = _require_state(paths)
        records = [_record(state, host)] if host else list(state.hosts)
        done: list[str] = []
        restarted = []
        for record in records:
            host_dir = paths.host_dir(record.name)
            emulator_faults = faults_file(paths, record.name)
            if emulator_faults.exists():
                emulator_faults.unlink()
                done.append(f"{record.name}: emulated Mailcow faults cleared")
            if network.link_exists(record.veth) and not network.link_is_up(record.veth):
                network.set_link(record.veth, up=True)
                done.append(f"{record.name}: link {record.veth} up again")
            if not boot.host_running(record):
                lab_host = LabHost(name=record.name, roles=record.roles, address=record.address, fqdn=record.fqdn,
                                   netns=record.netns, veth=record.veth, template=record.name)
                boot.stop_netns_processes(record.netns)
                (host_dir / "boot.sh").write_text(render_boot_script(lab_host, str(host_dir), state.install_dir))
                new_record = boot.apply_host_start(lab_host, host_dir)
                restarted.append((lab_host, new_record))
                done.append(f"{record.name}: booted again")
        deadline = time.monotonic() + boot.READY_TIMEOUT
        updated = {r.name: r for r in state.hosts}
        for lab_host, new_record in restarted:
            updated[lab_host.name] = new_record
        faults = {k: v for k, v in state.faults.items() if host and k != host}
        save_state(paths, replace(state, hosts=tuple(updated[r.name] for r in state.hosts), faults=faults))
        for lab_host, _ in restarted:
            boot.wait_host_ready(lab_host, paths.host_dir(lab_host.name), deadline, state.install_dir)
    if done:
        for line in done:
            say(line)
    else:
        say(f"nothing to heal: {host or 'every host'} runs without injected faults")
    return done
