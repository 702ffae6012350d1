"""Step kinds: each a pure function from (step, facts, desired state) to a PlannedStep.

A step compares what is (facts) with what should be (inventory, rendered files) and returns
the changes as human lines and the actions that make them (shell fragments, API calls). It
returns ``deferred`` when it cannot know yet (``mailcow.conf`` does not exist before
``generate_config.sh`` ran): the runner applies the earlier changes, gathers again and plans
again. Nothing here runs anything.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailfleet.deploy.facts import install_dir, sysctl_path
from mailfleet.deploy.merge_env import diff_env, merge_env
from mailfleet.deploy.parse_facts import COMPOSE_FAILED, COMPOSE_VIA_PS
from mailfleet.deploy.model import ApiCall, PlannedStep, PlaybookStep, Shell, WaitRunning
from mailfleet.inventory.model import Fleet, Host

q = shlex.quote
APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
SECRET_CONF_KEYS = frozenset({"API_KEY", "API_KEY_READ_ONLY", "DBPASS", "DBROOT", "REDISPASS"})
# Which compose service reads which part of the checkout (bind mounts in docker-compose.yml).
SERVICE_OF_PATH = (("data/conf/postfix/", "postfix-mailcow"), ("data/hooks/postfix/", "postfix-mailcow"),
                   ("data/conf/rspamd/", "rspamd-mailcow"), ("data/conf/dovecot/", "dovecot-mailcow"),
                   ("data/conf/nginx/", "nginx-mailcow"))
COMPOSE_FILES = ("mailcow.conf", "docker-compose.override.yml")
DOCKER_REPO_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin")
DISTRIBUTION_DOCKER_PACKAGES = ("docker.io", "docker-compose")


@dataclass(frozen=True)
class PlanInput:
    """Everything a host's plan depends on, already loaded: pure data."""

    host: Host
    fleet: Fleet
    facts: Mapping[str, Any]
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # step name -> path -> content
    executable: frozenset[str] = frozenset()  # paths written 0755
    conf_overrides: Mapping[str, str] = field(default_factory=dict)
    api: Mapping[str, Any] | None = None  # {"relayhosts": [...], "domains": [...]} when the API answered


StepPlanner = Callable[[PlaybookStep, PlanInput, Sequence[PlannedStep]], PlannedStep]


def _ok(step: PlaybookStep, note: str = "") -> PlannedStep:
    return PlannedStep(step.name, step.kind, "ok", note=note)


def _deferred(step: PlaybookStep, why: str, changes: Sequence[str] = ()) -> PlannedStep:
    return PlannedStep(step.name, step.kind, "deferred", changes=tuple(changes) or (why,), note=why)


# ------------------------------------------------------------------ base system

def plan_packages(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    wanted = list(dict.fromkeys(step.params["packages"]))
    installed = inp.facts.get("packages", {})
    missing = [pkg for pkg in wanted if not installed.get(pkg)]
    if not missing:
        return _ok(step)
    script = (f"{APT_ENV} timeout 900 apt-get update -q && "
              f"{APT_ENV} timeout 1800 apt-get install -y -q --no-install-recommends {' '.join(q(p) for p in missing)}")
    return PlannedStep(step.name, step.kind, "change", changes=tuple(f"install package {p}" for p in missing),
                       actions=(Shell(script, timeout=2700),))


def plan_docker(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    docker = dict(inp.facts.get("docker", {}))
    if docker.get("compose") == COMPOSE_VIA_PS:  # installed Mailcow: Compose works if `ps` worked
        docker["compose"] = None if COMPOSE_FAILED in inp.facts.get("compose", {}) else "in use"
    if docker.get("docker") and docker.get("compose"):
        return _ok(step, note=f"Docker present, Compose {docker['compose']}")
    source = inp.fleet.settings.mailcow.docker_source
    os_info = inp.facts.get("os", {})
    missing = "Docker Engine and the Compose plugin" if not docker.get("docker") else "the Compose plugin"
    if source == "docker-repository":
        distro, codename = os_info.get("id", ""), os_info.get("codename", "")
        if distro not in ("debian", "ubuntu") or not codename:
            return PlannedStep(step.name, step.kind, "warning",
                               note=f"{missing} missing and this OS ({distro or 'unknown'}) is not Debian/Ubuntu; "
                                    "install Docker >= 24 with Compose v2 by hand")
        repo = f"https://download.docker.com/linux/{distro}"
        script = "\n".join([
            "install -m 0755 -d /etc/apt/keyrings",
            f"timeout 120 curl -fsSL {q(repo + '/gpg')} -o /etc/apt/keyrings/docker.asc",
            "chmod a+r /etc/apt/keyrings/docker.asc",
            f"printf '%s\\n' {q(f'deb [signed-by=/etc/apt/keyrings/docker.asc] {repo} {codename} stable')}"
            " > /etc/apt/sources.list.d/docker.list",
            f"{APT_ENV} timeout 900 apt-get update -q",
            f"{APT_ENV} timeout 1800 apt-get install -y -q {' '.join(DOCKER_REPO_PACKAGES)}",
        ])
        change = f"install {missing} from Docker's repository ({distro} {codename})"
    else:
        script = (f"{APT_ENV} timeout 900 apt-get update -q && "
                  f"{APT_ENV} timeout 1800 apt-get install -y -q {' '.join(DISTRIBUTION_DOCKER_PACKAGES)}")
        change = f"install {missing} from the distribution (docker.io, docker-compose)"
    return PlannedStep(step.name, step.kind, "change", changes=(change,), actions=(Shell(script, timeout=2700),))


def plan_hostname(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    fact = inp.facts.get("hostname", {})
    want = inp.host.hostname
    changes = []
    if fact.get("running") != want:
        changes.append(f"hostname: {fact.get('running') or '(none)'!s} -> {want}")
    if fact.get("file") != want:
        changes.append(f"/etc/hostname: {fact.get('file') or '(none)'!s} -> {want}")
    if not changes:
        return _ok(step)
    script = f"hostname {q(want)} && printf '%s\\n' {q(want)} > /etc/hostname"
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes), actions=(Shell(script),))


def plan_swap(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    want_mb = inp.host.swap_mb
    if not want_mb:
        return _ok(step, note="the inventory asks for no swap")
    have_kib = int(inp.facts.get("swap", 0))
    if have_kib >= want_mb * 1024 * 0.95:
        return _ok(step, note=f"{have_kib // 1024} MiB of swap")
    script = "\n".join([
        "test ! -e /swapfile || { echo '/swapfile exists but is not active swap; remove it or set swap_mb: 0' >&2; exit 1; }",
        f"fallocate -l {int(want_mb)}M /swapfile || dd if=/dev/zero of=/swapfile bs=1M count={int(want_mb)} status=none",
        "chmod 600 /swapfile", "mkswap /swapfile >/dev/null", "swapon /swapfile",
        "grep -q '^/swapfile ' /etc/fstab || echo '/swapfile none swap sw 0 0' >> /etc/fstab",
    ])
    return PlannedStep(step.name, step.kind, "change",
                       changes=(f"swap: {have_kib // 1024} MiB -> add a {want_mb} MiB /swapfile",),
                       actions=(Shell(script),))


def desired_sysctl(step: PlaybookStep, host: Host) -> dict[str, str]:
    values = {str(k): str(v) for k, v in (step.params.get("values") or {}).items()}
    values.update(host.sysctl)
    return values


def plan_sysctl(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    want = desired_sysctl(step, inp.host)
    if not want:
        return _ok(step, note="the inventory sets no kernel parameters")
    have = inp.facts.get("sysctl", {})
    wrong = {k: v for k, v in want.items() if " ".join(str(have.get(k, "")).split()) != " ".join(v.split())}
    if not wrong:
        return _ok(step)
    conf = "".join(f"{k} = {v}\n" for k, v in sorted(want.items()))
    lines = [f"printf '%s' {q(v)} > {q(sysctl_path(k))}" for k, v in sorted(wrong.items())]
    lines += write_file_script("/etc/sysctl.d/90-mailfleet.conf", conf, 0o644)
    return PlannedStep(step.name, step.kind, "change",
                       changes=tuple(f"{k}: {have.get(k, '(unset)')!s} -> {v}" for k, v in sorted(wrong.items())),
                       actions=(Shell("\n".join(lines)),))


# ------------------------------------------------------------------ Mailcow checkout and config

def plan_mailcow_checkout(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    settings = inp.fleet.settings.mailcow
    fact = inp.facts.get("checkout", {})
    d = install_dir(inp.fleet)
    if not settings.version:
        return PlannedStep(step.name, step.kind, "warning",
                           note="fleet.mailcow.version is not set; pin a release so every host runs the same one")
    if not fact.get("present"):
        script = "\n".join([
            "umask 0022",
            f"test ! -e {q(d)} || [ -z \"$(ls -A {q(d)})\" ] || "
            f"{{ echo {q(d + ' exists but is not a git checkout; move it away first')} >&2; exit 1; }}",
            f"timeout 900 git clone -q {q(settings.repository)} {q(d)}",
            f"git -C {q(d)} -c advice.detachedHead=false checkout -q -B master {q('refs/tags/' + settings.version)}",
        ])
        return PlannedStep(step.name, step.kind, "change",
                           changes=(f"clone {settings.repository} at {settings.version} into {d}",),
                           actions=(Shell(script, timeout=1200),), touched=("checkout",))
    if fact.get("describe") == settings.version or fact.get("head") == fact.get("tag_commit"):
        return _ok(step, note=f"Mailcow {settings.version}")
    running = fact.get("describe") or fact.get("head", "")[:12]
    return PlannedStep(step.name, step.kind, "warning",
                       note=f"Mailcow in {d} is at {running}, the inventory pins {settings.version}; deploy never "
                            "moves an installed Mailcow: run `mailfleet upgrade` (in a maintenance window)")


def conf_value(key: str, inp: PlanInput, default: str) -> str:
    return inp.conf_overrides.get(key, default)


def plan_mailcow_generate_config(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    conf = inp.facts.get("mailcow_conf", {})
    if conf.get("present"):
        return _ok(step, note="mailcow.conf exists; never regenerated")
    d = install_dir(inp.fleet)
    hostname = inp.host.hostname
    if hostname.count(".") < 2:
        return PlannedStep(step.name, step.kind, "warning",
                           note=f"hostname {hostname} has one dot: generate_config.sh would stop at a prompt; "
                                "give the host an FQDN with a subdomain (mx1.mail.example.com)")
    timeout = int(step.params.get("timeout", 300))
    env = {"MAILCOW_HOSTNAME": hostname, "MAILCOW_TZ": inp.fleet.settings.timezone,
           "SKIP_CLAMD": conf_value("SKIP_CLAMD", inp, "n"), "FORCE": "y"}
    assigns = " ".join(f"{k}={q(v)}" for k, v in env.items())
    # --dev: keep the checked-out branch (no `git checkout -f` of the branch, no branch prompt);
    # stdin from /dev/null and a timeout: any prompt we did not foresee fails instead of hanging.
    script = (f"cd {q(d)} && umask 0022 && {assigns} timeout {timeout} ./generate_config.sh --dev </dev/null "
              f"&& test -s mailcow.conf")
    return PlannedStep(step.name, step.kind, "change",
                       changes=(f"generate mailcow.conf for {hostname} (generate_config.sh, non-interactive)",),
                       actions=(Shell(script, timeout=timeout + 30),), touched=("mailcow.conf",))


def plan_mailcow_conf(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    conf = inp.facts.get("mailcow_conf", {})
    if not conf.get("present"):
        return _deferred(step, "mailcow.conf does not exist yet (generate_config.sh runs first)",
                         [f"merge {len(inp.conf_overrides)} keys into the new mailcow.conf"])
    text = conf.get("text", "")
    merged = merge_env(text, inp.conf_overrides)
    changes = diff_env(text, merged, SECRET_CONF_KEYS)
    wrong_mode = conf.get("mode") != "600"
    if wrong_mode:
        changes.append(f"mode {conf.get('mode')} -> 0600 (it holds passwords)")
    if not changes and merged == text:
        return _ok(step)
    if merged == text:
        script = f"chmod 600 {q(install_dir(inp.fleet) + '/mailcow.conf')}"
    else:
        script = "\n".join(write_file_script(install_dir(inp.fleet) + "/mailcow.conf", merged, 0o600))
        if not changes:
            changes.append("normalise duplicate lines of managed keys")
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes), actions=(Shell(script),),
                       touched=("mailcow.conf",) if merged != text else ())


def plan_mailcow_files(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    files = inp.files.get(step.name, {})
    hashes = inp.facts.get("files", {})
    d = install_dir(inp.fleet)
    changes, lines, touched = [], [], []
    for path, content in files.items():
        full = f"{d}/{path}"
        have = hashes.get(full)
        if have == sha256(content):
            continue
        changes.append(f"{path}: {'create (missing)' if have is None else 'update (differs)'}")
        lines += write_file_script(full, content, 0o755 if path in inp.executable else 0o644)
        touched.append(path)
    if not changes:
        return _ok(step)
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes), actions=(Shell("\n".join(lines)),),
                       touched=tuple(touched))


# ------------------------------------------------------------------ services and API

def _touched(earlier: Sequence[PlannedStep]) -> list[str]:
    return [path for step in earlier if step.status == "change" for path in step.touched]


def plan_compose(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    if any(s.status == "deferred" for s in earlier):
        return _deferred(step, "waits for earlier steps", ["docker compose pull, up -d"])
    touched = _touched(earlier)
    states: Mapping[str, str] = inp.facts.get("compose", {})
    services: Sequence[str] = inp.facts.get("services", [])
    not_running = [s for s in services if states.get(s) != "running"]
    fresh = "checkout" in touched or (not services and "mailcow.conf" in touched)
    up_reasons = [f"{p} changed" for p in touched if p in COMPOSE_FILES]
    if fresh:
        up_reasons = ["new installation"]
    if not_running and not fresh:
        shown = ", ".join(not_running[:4]) + (f" and {len(not_running) - 4} more" if len(not_running) > 4 else "")
        up_reasons.append(f"not running: {shown}")
    restart = sorted({svc for p in touched for prefix, svc in SERVICE_OF_PATH if p.startswith(prefix)})
    if not up_reasons and not restart:
        return _ok(step, note=f"{len(services)} services running")
    d = q(install_dir(inp.fleet))
    lines, changes = [], []
    if up_reasons:
        if step.params.get("pull", True):
            lines.append(f"cd {d} && timeout 1800 docker compose pull -q")
        lines.append(f"cd {d} && timeout 900 docker compose up -d --remove-orphans")
        changes.append(f"docker compose {'pull, ' if step.params.get('pull', True) else ''}up -d ({'; '.join(up_reasons)})")
    if restart:
        lines.append(f"cd {d} && timeout 300 docker compose restart {' '.join(q(s) for s in restart)}")
        changes.append(f"restart {', '.join(restart)} (their files changed)")
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes),
                       actions=(Shell("\n".join(lines), timeout=3000),))


def plan_wait_running(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    compose = next((s for s in reversed(earlier) if s.kind == "compose"), None)
    if compose is None or compose.status == "ok":
        return _ok(step)
    if compose.status == "deferred":
        return _deferred(step, "after docker compose up", ["wait until the API reports every container running"])
    # A consequence, not a change of its own: no change line, but an action.
    return PlannedStep(step.name, step.kind, "ok", actions=(WaitRunning(int(step.params.get("timeout", 600))),),
                       note="then wait until the API reports every container running")


def relayhost_nexthop(relay: Host, port: int = 25) -> str:
    """Where inbound hosts hand a domain's mail to its relay (the address the fleet reaches it on)."""
    address = relay.address
    return f"[{address}]:{port}"


def find_relayhost(relayhosts: Sequence[Mapping[str, Any]], relay: Host, port: int) -> Mapping[str, Any] | None:
    """An existing relayhost that already means ``relay`` under any spelling (its address, its
    hostname or a public IP; bracketed or not; with this port), lowest id first. Whoever made it
    (an earlier deploy, add-domain, the UI), it is reused rather than duplicated."""
    names = {relay.address, relay.hostname, *relay.public_ips}
    spellings = {form.lower() for name in names for form in (f"[{name}]:{port}", f"{name}:{port}")}
    if port == 25:
        spellings |= {form.lower() for name in names for form in (f"[{name}]", name)}
    matches = [r for r in relayhosts if str(r.get("hostname", "")).strip().lower() in spellings]
    return min(matches, key=lambda r: int(str(r.get("id", 0)) or 0)) if matches else None


def plan_relayhost_wiring(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    """Inbound hosts: one relayhost per relay, each served domain's relayhost set to its relay.

    Non-bulk mail leaves through the domain's relayhost: its transactional relay when it has
    one, else its relay (bulk is routed by the priority maps before Mailcow's per-domain map).
    Domains not yet on this host are left to ``add-domain`` (noted, not a change).
    """
    if not inp.host.has_role("inbound"):
        return _ok(step, note="not an inbound host")
    wanted: dict[str, str] = {}  # domain -> nexthop
    relay_by_nexthop: dict[str, Host] = {}
    port = int(step.params.get("port", 25))
    for domain in inp.fleet.domains_served_by(inp.host.name):
        relay_name = domain.transactional_relay or domain.relay
        if relay_name and relay_name in inp.fleet.hosts and relay_name != inp.host.name:
            relay = inp.fleet.hosts[relay_name]
            wanted[domain.ascii] = relayhost_nexthop(relay, port)
            relay_by_nexthop[wanted[domain.ascii]] = relay
    if not wanted:
        return _ok(step, note="no served domain has a relay")
    # The API's data survives a container restart, so a running Mailcow is planned against now;
    # only a Mailcow that is not up yet (fresh host) defers the wiring to the next round.
    if inp.api is None:
        nexthops = sorted(set(wanted.values()))
        return _deferred(step, "the Mailcow API is not up yet",
                         [f"relayhost {n}" for n in nexthops] + [f"{len(wanted)} domains' relayhost"])
    relayhosts = list(inp.api.get("relayhosts", []))
    domains = {str(d.get("domain_name")): d for d in inp.api.get("domains", [])}
    calls: list[ApiCall] = []
    changes: list[str] = []
    ids: dict[str, str] = {}
    for nexthop in sorted(set(wanted.values())):
        existing = find_relayhost(relayhosts, relay_by_nexthop[nexthop], port)
        if existing is not None:
            ids[nexthop] = str(existing.get("id"))
        else:
            ids[nexthop] = "@" + nexthop
            calls.append(ApiCall("add_relayhost", (nexthop,), binds=nexthop))
            changes.append(f"add relayhost {nexthop}")
    missing = []
    for domain, nexthop in sorted(wanted.items()):
        record = domains.get(domain)
        if record is None:
            missing.append(domain)
            continue
        if str(record.get("relayhost", "0")) != ids[nexthop]:
            calls.append(ApiCall("edit_domain", (domain,), {"relayhost": ids[nexthop]}))
            changes.append(f"{domain}: relayhost -> {nexthop}")
    note = (f"{len(missing)} served domain(s) not on this host yet ({', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}): `mailfleet add-domain` adds them") if missing else ""
    if not calls:
        return _ok(step, note=note)
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes), actions=tuple(calls), note=note)


PLANNERS: dict[str, StepPlanner] = {
    "packages": plan_packages, "docker": plan_docker, "hostname": plan_hostname, "swap": plan_swap,
    "sysctl": plan_sysctl, "mailcow_checkout": plan_mailcow_checkout,
    "mailcow_generate_config": plan_mailcow_generate_config, "mailcow_conf": plan_mailcow_conf,
    "mailcow_files": plan_mailcow_files, "compose": plan_compose, "wait_running": plan_wait_running,
    "relayhost_wiring": plan_relayhost_wiring,
}


# ------------------------------------------------------------------ helpers

def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_file_script(path: str, content: str, mode: int) -> list[str]:
    """Shell lines that write ``content`` to ``path`` atomically (temp file + rename) with ``mode``.

    The content travels base64-encoded in a quoted here-document, so nothing in it is ever
    interpreted by the shell.
    """
    encoded = base64.encodebytes(content.encode()).decode()
    directory = path.rsplit("/", 1)[0] or "/"
    return [
        f"install -d -m 0755 {q(directory)}",
        f"mf_tmp=$(mktemp {q(path + '.mailfleet.XXXXXX')})",
        f"base64 -d > \"$mf_tmp\" <<'MAILFLEET_EOF'\n{encoded}MAILFLEET_EOF",
        f"chmod {mode:04o} \"$mf_tmp\"",
        f"mv -f \"$mf_tmp\" {q(path)}",
    ]
