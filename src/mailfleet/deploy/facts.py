"""Which facts a host's steps need, as (command, parse) pairs.

Commands are read-only by construction (``cat``, ``stat``, ``dpkg-query``, ``git rev-parse``,
``docker compose ps``...), and every path or name in them is ``shlex.quote``d. The parse
functions are pure and live in ``parse_facts``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailfleet.deploy import parse_facts as p
from mailfleet.deploy.model import PlaybookStep
from mailfleet.inventory.model import Fleet, Host

q = shlex.quote


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parse: Callable[[str], Any]


def install_dir(fleet: Fleet) -> str:
    return fleet.settings.mailcow.install_dir.rstrip("/") or "/"


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def facts_for(host: Host, fleet: Fleet, steps: Sequence[PlaybookStep], file_paths: Sequence[str],
              sysctl_keys: Sequence[str]) -> list[Fact]:
    """The facts the core step kinds read, in a stable order (the kinds other components add
    bring theirs: ``extensions.extension_facts``; ``run.gather_and_plan`` asks both)."""
    kinds = {step.kind for step in steps}
    d = install_dir(fleet)
    facts: list[Fact] = []
    packages = sorted({pkg for step in steps if step.kind == "packages" for pkg in step.params["packages"]})
    if packages:
        facts.append(Fact("packages", "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' "
                          + " ".join(q(x) for x in packages) + "; true", p.parse_packages))
    if "docker" in kinds:
        facts.append(Fact("os", ". /etc/os-release; echo \"$ID $VERSION_CODENAME\"", p.parse_os))
        # Once Mailcow is installed, `docker compose ps` (the compose fact) proves Compose works;
        # asking `docker compose version` too would start one more process on every run.
        installed = f"[ -f {q(d + '/mailcow.conf')} ] && [ -f {q(d + '/docker-compose.yml')} ]"
        facts.append(Fact("docker", "command -v docker >/dev/null && echo docker=yes; "
                          f"if {installed}; then echo compose={p.COMPOSE_VIA_PS}; "
                          "else docker compose version --short | sed 's/^/compose=/'; fi", p.parse_docker))
    if "hostname" in kinds:
        facts.append(Fact("hostname", "hostname; cat /etc/hostname", p.parse_hostname))
    if "swap" in kinds:
        facts.append(Fact("swap", "cat /proc/swaps", p.parse_swap_kib))
    if sysctl_keys:
        command = "; ".join(f"printf '%s\\t%s\\n' {q(key)} \"$(cat {q(sysctl_path(key))})\"" for key in sysctl_keys)
        facts.append(Fact("sysctl", command, p.parse_sysctl))
    if "mailcow_checkout" in kinds:
        version = fleet.settings.mailcow.version
        facts.append(Fact("checkout", (
            f"if [ -d {q(d + '/.git')} ]; then echo present; git -C {q(d)} rev-parse HEAD; "
            f"git -C {q(d)} rev-parse -q --verify {q('refs/tags/' + version + '^{commit}')} || echo none; "
            f"git -C {q(d)} remote get-url origin || echo; "
            f"git -C {q(d)} describe --tags --abbrev=0 HEAD || echo; "
            f"git -C {q(d)} merge-base --is-ancestor {q('refs/tags/' + version)} HEAD && echo contains || echo; "
            "else echo absent; fi"), p.parse_checkout))
    if kinds & {"mailcow_conf", "mailcow_generate_config", "compose", "relayhost_wiring", "wait_running"}:
        conf = q(d + "/mailcow.conf")
        facts.append(Fact("mailcow_conf", f"if [ -f {conf} ]; then stat -c %a {conf}; cat {conf}; else echo absent; fi",
                          p.parse_mailcow_conf))
    if file_paths:
        command = "; ".join(f"sha256sum {q(d + '/' + path)} || echo {q('- ' + d + '/' + path)}" for path in file_paths)
        facts.append(Fact("files", command, p.parse_file_hashes))
    if kinds & {"compose", "wait_running", "relayhost_wiring"}:
        facts.append(Fact("compose", f"if [ -f {q(d + '/docker-compose.yml')} ] && [ -f {q(d + '/mailcow.conf')} ]; "
                          f"then cd {q(d)} && docker compose ps --format json || "
                          f"echo {q(json.dumps({'Service': p.COMPOSE_FAILED, 'State': 'failed'}))}; fi",
                          p.parse_compose_ps))
        # The service list from the compose files themselves (parsed here, not by a second
        # `docker compose` process on the host: each one costs a Python start-up there).
        facts.append(Fact("services", f"if [ -f {q(d + '/mailcow.conf')} ]; then cat {q(d + '/docker-compose.yml')}; "
                          f"printf '\\n---\\n'; cat {q(d + '/docker-compose.override.yml')}; fi",
                          p.parse_compose_services))
        facts.append(Fact("cert", f"cat {q(d + '/data/assets/ssl/cert.pem')}", str))
    return facts
