"""The monitoring role's deploy steps: what they read from this machine, and their registration.

Effectful: builds the wheelhouse with pip (``var/monitoring/wheelhouse``, reused: offline
first, the package index only when a wheel is missing), reads the inventory and the secrets
the jobs need, and Grafana's admin password when the operator keeps one
(``<secrets_dir>/grafana-admin.password``; else the host generates its own at the first deploy). Registers the step kinds ``mailfleet_install``, ``monitoring_jobs`` and ``grafana`` with
the deploy framework (``mailfleet.deploy.extensions``); planning is in ``plan_deploy``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shlex
import subprocess
import urllib.parse
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailfleet.deploy.extensions import StepKind, register_step_kind
from mailfleet.deploy.facts import Fact
from mailfleet.deploy.model import PlaybookStep
from mailfleet.deploy.parse_facts import parse_compose_ps
from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Fleet, Host
from mailfleet.monitoring import plan_deploy as pd
from mailfleet.monitoring.model import GrafanaSettings, MonitoringLayout
from mailfleet.monitoring.render_grafana import render_grafana_files
from mailfleet.monitoring.render_jobs import (imap_from_fleet, plan_jobs, render_cron, render_job_runner,
                                              render_systemd_units)
from mailfleet.monitoring.templates import load_dashboard_texts, load_grafana_templates
from mailfleet.secrets import resolve_secret

REPO_ROOT = Path(__file__).resolve().parents[3]
LAYOUT = MonitoringLayout()
PIP_TIMEOUT = 900
_WHEELHOUSE_CACHE: dict[str, tuple[str, dict[str, str]]] = {}


# ------------------------------------------------------------------ the wheelhouse

def wheelhouse_dir() -> Path:
    return Path(os.environ.get("MAILFLEET_WHEELHOUSE") or REPO_ROOT / "var" / "monitoring" / "wheelhouse")


def wheel_content_digest(path: Path) -> str:
    """Digest of a wheel's members (names and bytes), not of the zip: a rebuild with new
    timestamps but the same files is the same wheel, so a second deploy uploads nothing."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest()


def _pip(args: Sequence[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PIP_CACHE_DIR=str(cache.parent / "pip-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env,
                          timeout=PIP_TIMEOUT)


def build_wheelhouse(source: Path = REPO_ROOT, directory: Path | None = None) -> tuple[str, dict[str, Path]]:
    """Build mailfleet's wheel and its dependencies' wheels; return (MANIFEST text, {name: path}).

    Offline first (``--no-index --find-links`` the wheelhouse); on a miss, the same with the
    package index. Then pip resolves mailfleet against the wheelhouse alone (``--dry-run
    --report``): exactly that set goes to the host, so the host's own ``--no-index`` install
    cannot miss a wheel.
    """
    house = directory or wheelhouse_dir()
    house.mkdir(parents=True, exist_ok=True)
    own = house / "mailfleet-build"
    own.mkdir(exist_ok=True)
    for old in own.glob("*.whl"):
        old.unlink()
    offline = ["--no-index", "--find-links", str(house)]
    build = ["wheel", "-q", "--no-deps", "-w", str(own), str(source)]
    done = _pip([*build[:1], *offline, *build[1:]], house)
    if done.returncode != 0:
        tools = _pip(["wheel", "-q", "-w", str(house), "setuptools>=68", "wheel"], house)
        done = _pip([*build[:1], "--find-links", str(house), *build[1:]], house)
        if done.returncode != 0 or tools.returncode != 0:
            raise MailfleetError("building mailfleet's wheel failed: "
                                 + " | ".join((done.stderr or tools.stderr).strip().splitlines()[-4:]))
    (wheel,) = own.glob("mailfleet-*.whl")
    deps = _pip(["wheel", "-q", *offline, "-w", str(house), str(wheel)], house)
    if deps.returncode != 0:
        deps = _pip(["wheel", "-q", "--find-links", str(house), "-w", str(house), str(wheel)], house)
        if deps.returncode != 0:
            raise MailfleetError("collecting the dependencies' wheels failed (is the package index reachable from "
                                 "this machine?): " + " | ".join(deps.stderr.strip().splitlines()[-4:]))
    report = _pip(["install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-", *offline,
                   "--find-links", str(own), str(wheel)], house)
    if report.returncode != 0:
        raise MailfleetError("the wheelhouse does not resolve offline: " + report.stderr.strip()[-400:])
    needed: dict[str, Path] = {}
    for item in json.loads(report.stdout)["install"]:
        url = urllib.parse.urlparse(item["download_info"]["url"])
        if url.scheme != "file":
            raise MailfleetError(f"pip resolved {item['metadata']['name']} from {url.geturl()}, not from the "
                                 "wheelhouse; the host could not install it without an index")
        path = Path(urllib.parse.unquote(url.path))
        needed[path.name] = path
    lines = [f"# mailfleet wheelhouse: built on this machine, installed with pip --no-index",
             f"# python {sys.version_info.major}.{sys.version_info.minor}"]
    lines += [f"{wheel_content_digest(path)}  {name}" for name, path in sorted(needed.items())]
    return "\n".join(lines) + "\n", needed


def source_fingerprint(source: Path = REPO_ROOT) -> str:
    """Cheap identity of the tree a wheel would be built from (paths, sizes, mtimes)."""
    digest = hashlib.sha256()
    files = [source / "pyproject.toml", *sorted((source / "src" / "mailfleet").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            stat = path.stat()
            digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def load_wheelhouse() -> tuple[str, dict[str, Path]]:
    """The wheelhouse for the current tree: reused when the tree has not changed since the last
    build (``last.json``), else built again."""
    house = wheelhouse_dir()
    record = house / "last.json"
    fingerprint = source_fingerprint()
    if record.is_file():
        try:
            last = json.loads(record.read_text())
            paths = {name: Path(p) for name, p in last["wheels"].items()}
            if last["fingerprint"] == fingerprint and all(p.is_file() for p in paths.values()):
                return last["manifest"], paths
        except (ValueError, KeyError, TypeError):
            pass
    manifest, paths = build_wheelhouse(directory=house)
    record.write_text(json.dumps({"fingerprint": fingerprint, "manifest": manifest,
                                  "wheels": {name: str(p) for name, p in paths.items()}}))
    return manifest, paths


def load_install_sources(step: PlaybookStep, host: Host, inv: Any) -> dict[str, str]:
    key = str(REPO_ROOT)
    if key not in _WHEELHOUSE_CACHE:  # once per process: every monitoring host gets the same wheels
        manifest, paths = load_wheelhouse()
        _WHEELHOUSE_CACHE[key] = (manifest, {name: base64.encodebytes(path.read_bytes()).decode()
                                             for name, path in paths.items()})
    manifest, wheels = _WHEELHOUSE_CACHE[key]
    return {"manifest": manifest, **{pd.WHEEL_PREFIX + name: data for name, data in wheels.items()}}


# ------------------------------------------------------------------ config, secrets, jobs

def _copy_secret(ref: str, inv: Any, what: str, files: dict[str, str], env: dict[str, str]) -> str:
    """Place a secret for the host; returns the reference that works there."""
    kind, _, value = ref.partition(":")
    if kind == "env":
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise MailfleetError(f"{what}: {ref!r} does not name an environment variable")
        env[value] = resolve_secret(ref, inv.base_dir)
        return ref
    if kind != "file":
        raise MailfleetError(f"{what}: secret reference {ref!r} must be env:NAME or file:PATH")
    if Path(value).is_absolute():
        target = f"{LAYOUT.config_dir}/secrets/{Path(value).name}"
        files[target] = resolve_secret(ref, inv.base_dir) + "\n"
        return f"file:{target}"
    relative = Path(value)
    if ".." in relative.parts:
        raise MailfleetError(f"{what}: secret path {value!r} leaves the inventory's folder; keep secrets under it")
    if "secrets" not in relative.parts:
        raise MailfleetError(f"{what}: secret path {value!r} is not under a secrets/ folder; the monitoring host "
                             "keeps secrets there with mode 0600 (move it, e.g. to secrets/)")
    text = (inv.base_dir / relative).read_text(encoding="utf-8") if (inv.base_dir / relative).is_file() else None
    if text is None:
        raise MailfleetError(f"{what}: {inv.base_dir / relative} does not exist")
    files[f"{LAYOUT.config_dir}/{relative.as_posix()}"] = text
    return ref


def load_jobs_sources(step: PlaybookStep, host: Host, inv: Any) -> dict[str, str]:
    fleet: Fleet = inv.fleet
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    notes: dict[str, str] = {}
    files[LAYOUT.inventory] = Path(inv.path).read_text(encoding="utf-8")
    if fleet.settings.ssh_identity is not None:
        _copy_secret(str(fleet.settings.ssh_identity), inv, "fleet.ssh_identity (logs.pull)", files, env)
    imap = imap_from_fleet(fleet, step.params, fleet.settings.secrets_dir)
    if imap is None:
        address = fleet.settings.dmarc_reports
        domain = (address or "").rpartition("@")[2]
        why = ("set fleet.dmarc_reports to the report mailbox" if not address else
               f"{domain} (of fleet.dmarc_reports {address}) is not in the inventory's domains yet; "
               f"`mailfleet add-domain --domain {domain}`, then deploy again" if domain not in fleet.domains else
               f"{domain} has no inbound host; give it one, or set imap_host in playbooks/monitoring.yaml")
        notes["note:dmarc"] = f"dmarc.fetch not scheduled: {why}"
    else:
        try:
            password = resolve_secret(imap.password_ref, inv.base_dir)
        except MailfleetError as exc:
            domain = imap.user.rpartition("@")[2]
            # The generated password appears when add-domain creates the mailbox: say so, not "create it".
            hint = (f"; `mailfleet add-domain --domain {domain}` creates the mailbox and its password, then deploy again"
                    if not step.params.get("imap_password_ref") and domain in fleet.domains else "")
            notes["note:dmarc"] = f"dmarc.fetch not scheduled: the report mailbox password is unknown ({exc}){hint}"
            imap = None
        else:
            target = f"{LAYOUT.config_dir}/secrets/dmarc-imap.password"
            files[target] = password + "\n"
            imap = dataclasses.replace(imap, password_ref=f"file:{target}")
    jobs = plan_jobs(fleet, LAYOUT, imap, dmarc_every=str(step.params.get("dmarc_every", "15min")),
                     logs_every=str(step.params.get("logs_every", "5min")))
    files[f"{LAYOUT.root}/bin/mailfleet-job"] = render_job_runner(jobs, LAYOUT)
    for name, text in render_systemd_units(jobs, LAYOUT).items():
        files[f"{pd.SYSTEMD_DIR}/{name}"] = text
    files[pd.CRON_FILE] = render_cron(jobs, LAYOUT)
    if env:
        # Sourced by the job runner (sh): every value quoted, so a secret is data, never code.
        files[f"{LAYOUT.config_dir}/mailfleet.env"] = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    return {**pd.host_files(files), **notes}


# ------------------------------------------------------------------ Grafana

def load_grafana_sources(step: PlaybookStep, host: Host, inv: Any) -> dict[str, str]:
    """Grafana's files; the admin password from ``<secrets_dir>/grafana-admin.password`` when the
    operator keeps one, else generated on the host at the first deploy (it never leaves it)."""
    fleet: Fleet = inv.fleet
    secret = inv.base_dir / fleet.settings.secrets_dir / "grafana-admin.password"
    password = secret.read_text(encoding="utf-8").strip() if secret.is_file() else None
    if password is not None and len(password) < 16:
        raise MailfleetError(f"{secret} holds a password of {len(password)} characters; Grafana's admin password "
                             "must have at least 16 (put a longer one there, or delete the file to let the host "
                             "generate one)")
    params = step.params
    settings = GrafanaSettings(bind_address=str(params.get("bind_address", "127.0.0.1")),
                               port=int(params.get("port", 3000)),
                               root_url=str(params.get("root_url", "http://localhost:3000/")),
                               tx_threshold=float(params.get("tx_delay_threshold", 60)))
    files = render_grafana_files(load_grafana_templates(), load_dashboard_texts(), LAYOUT, settings)
    out = {f"{LAYOUT.grafana_dir}/{path}": text for path, text in files.items()}
    target = f"{LAYOUT.grafana_dir}/secrets/grafana_admin_password"
    if password is not None:
        out[target] = password
    result = pd.host_files(out)
    if password is None:
        result[pd.GENERATE_PREFIX + target] = f"no {secret}: generated on the host"
    return result


# ------------------------------------------------------------------ registration

def _facts(host: Host, fleet: Fleet, steps: Sequence[PlaybookStep]) -> list[Fact]:
    kinds = {s.kind for s in steps}
    facts = [Fact("mon_files", pd.files_fact_command(LAYOUT), pd.parse_files_fact)]
    if "mailfleet_install" in kinds:
        facts.append(Fact("mon_install", pd.install_fact_command(LAYOUT), pd.parse_install_fact))
    if "monitoring_jobs" in kinds:
        facts.append(Fact("mon_init", pd.init_fact_command(), pd.parse_init_fact))
    if "grafana" in kinds:
        compose = f"{LAYOUT.grafana_dir}/docker-compose.yml"
        facts.append(Fact("mon_grafana", f"if [ -f {pd.q(compose)} ]; then cd {pd.q(LAYOUT.grafana_dir)} && "
                                         "docker compose ps --format json; fi", parse_compose_ps))
    return facts


register_step_kind(StepKind("mailfleet_install", frozenset(), frozenset(), 20, pd.plan_mailfleet_install,
                            _facts, load_install_sources))
register_step_kind(StepKind("monitoring_jobs", frozenset({"dmarc_every", "logs_every", "imap_host", "imap_port",
                                                          "imap_user", "imap_password_ref", "imap_starttls",
                                                          "imap_cafile"}),
                            frozenset(), 21, pd.plan_monitoring_jobs, _facts, load_jobs_sources))
register_step_kind(StepKind("grafana", frozenset({"bind_address", "port", "root_url", "tx_delay_threshold"}),
                            frozenset(), 22, pd.plan_grafana, _facts, load_grafana_sources))
