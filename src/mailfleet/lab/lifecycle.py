"""``lab.up`` and ``lab.down``: build, repair and remove a lab.

``up`` is idempotent: on a running lab it changes nothing and says so; on a lab left
half-built, or whose hosts were killed, it keeps what runs and rebuilds the rest (stale
namespaces are emptied and reused, host filesystems completed, hosts restarted). ``down``
stops every process of the lab (by its recorded init and by namespace membership), removes
its namespaces, links, bridge, iptables rule, files, inventory and secrets, and works from the
lab's own state file, or from the lab's names when even that is gone.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mailfleet.inventory.load import load_inventory, parse_inventory_text, save_inventory, write_atomically
from mailfleet.inventory.merge import merge_host_key
from mailfleet.lab import boot, ca, hostfs, keys, network
from mailfleet.lab.merge_inventory import HEADER, LabInventoryInput, merge_lab_inventory
from mailfleet.lab.model import HostRecord, LabHost, LabSpace, LabState
from mailfleet.lab.plan_hosts import plan_lab_hosts
from mailfleet.lab.state import LabPaths, lab_lock, load_state, save_state, space_of
from mailfleet.lab.system import LabError, require_lab_machine

Say = Callable[[str], None]
DEFAULT_INSTALL_DIR = "/opt/mailcow-dockerized"


@dataclass(frozen=True)
class UpResult:
    changed: bool
    started: tuple[str, ...]
    kept: tuple[str, ...]
    seconds: float


def _emulator() -> tuple[Callable[[Path], list[str]] | None, Path | None, str]:
    """The Mailcow emulator's entry points, or why they are unavailable."""
    try:
        from mailfleet.lab import emulator
        build = getattr(emulator, "build_mailcow_repository")
        shim = getattr(emulator, "docker_shim_path")
        return build, Path(shim()), ""
    except (ImportError, AttributeError) as exc:
        return None, None, str(exc)


def _host_healthy(record: HostRecord) -> bool:
    return network.netns_exists(record.netns) and boot.host_running(record)


def _install_dir(paths: LabPaths) -> str:
    """The Mailcow install dir the example inventory names (the boot script starts it)."""
    try:
        from ruamel.yaml import YAML
        doc = YAML(typ="safe").load(paths.example.read_text(encoding="utf-8"))
        return str(doc["fleet"]["mailcow"].get("install_dir") or DEFAULT_INSTALL_DIR)
    except (OSError, KeyError, TypeError, AttributeError):
        return DEFAULT_INSTALL_DIR


def lab_up(paths: LabPaths, count: int = 6, space: LabSpace | None = None, say: Say = print) -> UpResult:
    require_lab_machine()
    began = time.monotonic()
    plan_lab_hosts(count, space or LabSpace())  # a bad size is refused before anything is touched
    with lab_lock(paths):
        state = load_state(paths)
        if state is not None:
            recorded = space_of(state)
            if space is not None and (space.prefix, space.subnet) != (recorded.prefix, recorded.subnet):
                raise LabError(f"a lab named {recorded.prefix} on {recorded.subnet} is recorded in {paths.state_dir}; "
                               "run `mailfleet lab.down` first")
            space = recorded
        space = space or LabSpace()
        if state is None:
            _check_space_free(space)
        planned = plan_lab_hosts(count, space)
        if state is not None and state.complete and len(state.hosts) != count:
            raise LabError(f"a lab of {len(state.hosts)} hosts is up; it cannot grow or shrink in place. "
                           f"Run `mailfleet lab.down`, then `mailfleet lab.up --hosts {count}`")
        records = {r.name: r for r in state.hosts} if state else {}
        healthy = {name for name, r in records.items() if _host_healthy(r)}
        # A partitioned link (link down) still counts as attached: that is an injected fault,
        # cleared by lab.heal, not damage. A link off the bridge (bridge deleted) is damage.
        attached = all(network.attached_to(records[n].veth, space.bridge) for n in healthy)
        if state is not None and state.complete and healthy == {h.name for h in planned} and attached \
                and paths.inventory.exists():
            faults = ", ".join(f"{h}: {'/'.join(k)}" for h, k in state.faults.items() if k)
            say(f"the lab is already up: {count} hosts answer in {space.subnet} "
                f"(inventory {paths.inventory}); nothing to do"
                + (f". Faults injected: {faults} (`mailfleet lab.heal` clears them)" if faults else ""))
            return UpResult(False, (), tuple(sorted(healthy)), time.monotonic() - began)
        if state is not None:
            say(f"repairing the lab in {paths.state_dir}: "
                f"{len(healthy)} of {len(planned)} hosts running; rebuilding the rest")
        return _build(paths, space, planned, state, records, healthy, began, say)


def _check_space_free(space: LabSpace) -> None:
    """Refuse to build over another lab: live processes in namespaces of our names, or our
    subnet already on some interface of the machine."""
    for netns in network.lab_netns_names(space):
        if boot.pids_in_netns(netns):
            raise LabError(
                f"namespace {netns} has running processes but this lab's folder records no lab: another lab "
                f"named {space.prefix} runs from another folder (or its state was deleted). Use another --prefix "
                f"and --subnet, or take that lab down with `mailfleet lab.down` and its --dir")
    for name, address in network.machine_addresses():
        if name != space.bridge and address in space.network:
            raise LabError(
                f"{address} on {name} is inside the lab subnet {space.subnet}; the lab would clash with it. "
                "Choose another --subnet (e.g. 10.78.0.0/24)")


def _build(paths: LabPaths, space: LabSpace, planned: list[LabHost], state: LabState | None,
           records: dict[str, HostRecord], healthy: set[str], began: float, say: Say) -> UpResult:
    planned_names = {h.name for h in planned}
    # Hosts recorded but not planned (a crashed lab of another size) go first.
    for name, record in records.items():
        if name not in planned_names:
            boot.apply_host_stop(record)
            network.remove_host_network(record.netns, record.veth)
            hostfs.remove_host_filesystem(paths.host_dir(name))
    for netns in network.lab_netns_names(space):
        if netns not in {h.netns for h in planned}:
            boot.stop_netns_processes(netns)
            network.remove_host_network(netns, "")

    had_run_netns_mount = network.run_netns_is_mount()
    created_mount = (state.created_run_netns_mount if state else False) or not had_run_netns_mount
    client_public = keys.save_client_key(paths)
    mailbox_password = keys.save_mailbox_password(paths)
    keys.save_api_keys(paths, planned)
    lab_ca = ca.save_lab_ca(paths.state_dir / "ca", f"mailfleet lab CA ({space.prefix})", dt.datetime.now(dt.timezone.utc))
    install_dir = state.install_dir if state else _install_dir(paths)

    build_repo, shim, why = _emulator()
    tags: tuple[str, ...] = state.mailcow_tags if state else ()
    if build_repo is not None and (not tags or not paths.mailcow_repository.exists()):
        if paths.mailcow_repository.exists():
            shutil.rmtree(paths.mailcow_repository)
        paths.state_dir.mkdir(parents=True, exist_ok=True)
        tags = tuple(build_repo(paths.mailcow_repository))
    if build_repo is None:
        say(f"note: the Mailcow emulator is not available ({why}); hosts run without `docker` and Mailcow")

    network.apply_bridge(space)
    rules = network.apply_forward_rule(space)
    for record in records.values():  # running hosts whose bridge was recreated
        network.apply_attach(record.veth, space.bridge)
    new_state = LabState(prefix=space.prefix, subnet=space.subnet, bridge=space.bridge,
                         inventory=str(paths.inventory), hosts=tuple(records[n] for n in sorted(healthy)),
                         complete=False, iptables_rules=rules, created_run_netns_mount=created_mount,
                         install_dir=install_dir, mailcow_tags=tags)
    save_state(paths, new_state)

    host_keys: dict[str, str] = {}
    started: list[LabHost] = []
    for host in planned:
        host_dir = paths.host_dir(host.name)
        if host.name in healthy:
            host_keys[host.name] = hostfs.save_host_key(host, host_dir)
            continue
        if network.netns_exists(host.netns):
            boot.stop_netns_processes(host.netns)  # stale processes of a half-dead host
        network.apply_host_network(host, space)
        host_keys[host.name] = hostfs.save_host_filesystem(
            host, planned, space, host_dir, client_public_key=client_public, mailbox_password=mailbox_password,
            docker_command=shim, install_dir=install_dir)
        ca.save_host_trust(lab_ca, host_dir / "etc" / "upper", host_dir / "lib-docker")
        records[host.name] = boot.apply_host_start(host, host_dir)
        started.append(host)
        new_state = replace(new_state, hosts=tuple(records[h.name] for h in planned if h.name in records))
        save_state(paths, new_state)

    deadline = time.monotonic() + boot.READY_TIMEOUT
    for host in started:
        boot.wait_host_ready(host, paths.host_dir(host.name), deadline, install_dir)

    if state is None or not _update_inventory_keys(paths, planned, host_keys):
        _save_inventory(paths, space, planned, host_keys, tags)
    # A restarted host is no longer down and its link is up again; emulator faults stay (their
    # file is on the host's disk) until lab.heal.
    restarted = {h.name for h in started}
    faults = {}
    for name, kinds in (state.faults if state else {}).items():
        left = tuple(k for k in kinds if not (name in restarted and k in ("down", "partition")))
        if left and name in planned_names:
            faults[name] = left
    new_state = replace(new_state, hosts=tuple(records[h.name] for h in planned), complete=True, faults=faults)
    save_state(paths, new_state)
    seconds = time.monotonic() - began
    say(f"lab up: {len(planned)} host{'s' if len(planned) != 1 else ''} in {space.subnet} on bridge {space.bridge} "
        f"({len(started)} started, {len(planned) - len(started)} kept) in {seconds:.1f} s")
    for host in planned:
        say(f"  {host.name:<8} {host.address:<12} {host.fqdn:<28} {', '.join(host.roles)}")
    say(f"inventory: {paths.inventory} (check it with `mailfleet inventory.check`)")
    if tags:
        say(f"Mailcow EMULATOR repository: {paths.mailcow_repository} (tags {', '.join(tags)})")
    return UpResult(True, tuple(h.name for h in started), tuple(sorted(healthy)), seconds)


def _update_inventory_keys(paths: LabPaths, planned: list[LabHost], host_keys: dict[str, str]) -> bool:
    """On a repair, keep the lab inventory as the user's tasks left it (domains added, the
    Mailcow pin an upgrade moved) and only re-pin host keys that changed. False when the
    inventory is missing, invalid or describes other hosts: then it is written anew."""
    if not paths.inventory.exists():
        return False
    existing = load_inventory(paths.inventory)
    fleet = existing.fleet
    if existing.problems or fleet is None or set(fleet.hosts) != {h.name for h in planned}:
        return False
    if any(fleet.hosts[h.name].address != h.address for h in planned):
        return False
    changed = False
    for host in planned:
        changed = merge_host_key(existing.doc, host.name, host_keys[host.name]) or changed
    if changed:
        save_inventory(existing)
    return True


def _save_inventory(paths: LabPaths, space: LabSpace, planned: list[LabHost], host_keys: dict[str, str],
                    tags: tuple[str, ...]) -> None:
    try:
        example = paths.example.read_text(encoding="utf-8")
    except OSError as exc:
        raise LabError(f"cannot read the example inventory {paths.example} ({exc}); the lab's inventory is "
                       "written from it") from None
    older = sorted(tags)[0] if tags else None
    text = merge_lab_inventory(example, LabInventoryInput(
        hosts=planned, host_keys=host_keys, repository_url=paths.mailcow_repository.resolve().as_uri(),
        version=older, subnet=space.subnet, bridge=space.bridge))
    checked = parse_inventory_text(text, str(paths.inventory), paths.inventory)
    if checked.problems:
        problems = "\n".join(str(p) for p in checked.problems)
        raise LabError(f"the lab inventory would be invalid (a bug in the lab):\n{problems}")
    paths.inventory.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(paths.inventory, text, 0o644)


def lab_down(paths: LabPaths, space: LabSpace | None = None, say: Say = print) -> bool:
    """Remove the lab; return whether there was anything to remove."""
    require_lab_machine()
    with lab_lock(paths):
        state = load_state(paths)
        space = space_of(state) if state else (space or LabSpace())
        found = False
        for record in (state.hosts if state else ()):
            boot.apply_host_stop(record)
            found = True
        for netns in network.lab_netns_names(space):
            boot.stop_netns_processes(netns)
            network.remove_host_network(netns, "")
            found = True
        for link in network.lab_link_names(space):
            network.remove_host_network("", link)
            found = True
        network.remove_forward_rules(space, state.iptables_rules if state else ())
        if network.link_exists(space.bridge):
            network.remove_bridge(space)
            found = True
        if state is not None and state.created_run_netns_mount:
            network.remove_run_netns_mount()
        found = _remove_files(paths) or found or state is not None
        if found:
            say(f"lab down: no process, namespace, link or mount of lab {space.prefix} is left; "
                f"removed {paths.state_dir} and {paths.inventory}")
        else:
            say("no lab is up; nothing to do")
        return found


def _remove_files(paths: LabPaths) -> bool:
    removed = False
    if paths.state_dir.exists():
        shutil.rmtree(paths.state_dir)
        removed = True
    if paths.inventory.exists():
        head = paths.inventory.read_text(encoding="utf-8", errors="replace")[:200]
        if head.startswith(HEADER.splitlines()[0]):
            paths.inventory.unlink()
            removed = True
    if paths.client_key.exists():  # secrets/lab was made by lab.up; DKIM keys of the lab go with it
        shutil.rmtree(paths.secrets_dir)
        removed = True
        try:
            paths.secrets_dir.parent.rmdir()  # only if nothing else lives in secrets/
        except OSError:
            pass
    return removed
