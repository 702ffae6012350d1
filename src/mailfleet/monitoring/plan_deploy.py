"""The monitoring role's deploy steps, planned: facts and rendered files in, changes and shell out.

Pure (the deploy framework's contract: ``plan_steps`` docstring). Three step kinds:

* ``mailfleet_install``: the wheelhouse built on the operator's machine is uploaded (only the
  wheels whose content differs) and installed into ``/opt/mailfleet/venv`` with
  ``pip --no-index --find-links``: the host needs no package index.
* ``monitoring_jobs``: the inventory copy, the secrets the jobs need (0600, in a 0700 folder),
  the job runner, and the schedule: systemd timers where systemd runs, ``/etc/cron.d`` otherwise.
* ``grafana``: Compose file, provisioning, dashboards and the admin password secret placed in
  ``/opt/mailfleet/grafana``; ``docker compose up -d`` when any changed or Grafana is not running.

Sources (``inp.files[step.name]``) are ``{"host:" + absolute path: content}`` plus, for the
install step, ``wheel:<file>`` (base64) and ``manifest``; ``note:`` keys carry a note and
``generate:<path>`` names a secret the host generates. No key is ever an absolute path: other
code joins source keys onto local folders (``bench/converge.py`` did, and an absolute key
escaped into this machine's /etc), so every key is relative by construction.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from mailfleet.deploy.model import PlannedStep, PlaybookStep, Shell
from mailfleet.deploy.plan_steps import PlanInput, write_file_script
from mailfleet.monitoring.model import GRAFANA_UID, MonitoringLayout

q = shlex.quote
LAYOUT = MonitoringLayout()
WHEEL_PREFIX = "wheel:"
NOTE_PREFIX = "note:"
HOST_PREFIX = "host:"  # a file placed on the host at the absolute path that follows
GENERATE_PREFIX = "generate:"  # a secret the host generates once when absent (never overwritten)
SYSTEMD_DIR = "/etc/systemd/system"
CRON_FILE = "/etc/cron.d/mailfleet"
SECRET_MARK = "/secrets/"


# ------------------------------------------------------------------ facts (commands are read-only)

def install_fact_command(layout: MonitoringLayout = LAYOUT) -> str:
    return (f"cat {q(layout.wheels + '/MANIFEST')} 2>/dev/null; echo '@@'; "
            f"cat {q(layout.venv + '/.mailfleet-installed')} 2>/dev/null; echo '@@'; "
            "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'; echo '@@'; "
            "python3 -c 'import venv, ensurepip' && echo venv-ok")


def parse_install_fact(output: str) -> dict[str, Any]:
    parts = (output.split("@@\n") + ["", "", "", ""])[:4]
    return {"manifest": parse_manifest(parts[0]), "installed": parts[1].strip(), "python": parts[2].strip(),
            "venv": "venv-ok" in parts[3]}


def files_fact_command(layout: MonitoringLayout = LAYOUT) -> str:
    dirs = " ".join(q(d) for d in (layout.config_dir, layout.root + "/bin", layout.grafana_dir))
    each = 'for f; do printf "%s %s\\n" "$(stat -c "%a %u %g" "$f")" "$(sha256sum "$f" | cut -c1-64)  $f"; done'
    return (f"find {dirs} -type f -exec sh -c {q(each)} _ {{}} + 2>/dev/null; "
            f"find {SYSTEMD_DIR} -maxdepth 1 -type f -name 'mailfleet-*' -exec sh -c {q(each)} _ {{}} + 2>/dev/null; "
            f"[ -f {CRON_FILE} ] && sh -c {q(each)} _ {CRON_FILE}; "
            f"printf 'datadir %s\\n' \"$(stat -c '%a %u %g' {q(layout.data_dir)} 2>/dev/null)\"; "
            f"find {q(layout.config_dir + '/secrets')} {q(layout.grafana_dir + '/secrets')} -type d "
            "-printf 'secretdir %m %p\\n' 2>/dev/null; true")


def parse_files_fact(output: str) -> dict[str, Any]:
    """``{"files": {path: (sha, mode, uid, gid)}, "datadir": "2775 0 472" or ""}``."""
    files: dict[str, tuple[str, str, int, int]] = {}
    datadir = ""
    secret_dirs: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("secretdir "):
            _, mode, path = line.split(" ", 2)
            secret_dirs[path] = mode
            continue
        if line.startswith("datadir "):
            datadir = line[len("datadir "):].strip()
            continue
        fields = line.split(None, 4)
        if len(fields) == 5 and len(fields[3]) == 64:
            mode, uid, gid, sha, path = fields
            files[path.strip()] = (sha, mode, int(uid), int(gid))
    return {"files": files, "datadir": datadir, "secret_dirs": secret_dirs}


def init_fact_command() -> str:
    return ("if [ -d /run/systemd/system ]; then echo systemd; "
            f"for t in {SYSTEMD_DIR}/mailfleet-*.timer; do [ -e \"$t\" ] || continue; n=$(basename \"$t\"); "
            "printf '%s %s %s\\n' \"$n\" \"$(systemctl is-enabled \"$n\" 2>/dev/null)\" "
            "\"$(systemctl is-active \"$n\" 2>/dev/null)\"; done; else echo cron; fi")


def parse_init_fact(output: str) -> dict[str, Any]:
    lines = [line.split() for line in output.splitlines() if line.strip()]
    kind = lines[0][0] if lines else "cron"
    timers = {parts[0]: (parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")
              for parts in lines[1:]}
    return {"init": kind, "timers": timers}


# ------------------------------------------------------------------ manifest of the wheelhouse

def parse_manifest(text: str) -> dict[str, str]:
    """``MANIFEST``: ``<content digest>  <wheel file>`` per line (``#`` lines are comments)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        if name:
            out[name] = digest
    return out


def manifest_python(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("# python "):
            return line.split()[2]
    return ""


def manifest_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ managed files

def file_owner_mode(path: str, layout: MonitoringLayout = LAYOUT) -> tuple[int, int, int]:
    """(mode, uid, gid) each managed file must have."""
    if path == f"{layout.grafana_dir}/secrets/grafana_admin_password":
        return 0o400, GRAFANA_UID, 0  # read by Grafana inside its container (uid 472), nobody else
    if SECRET_MARK in path or path.endswith("/mailfleet.env"):
        return 0o600, 0, 0
    if path.startswith(layout.root + "/bin/"):
        return 0o755, 0, 0
    return 0o644, 0, 0


def plan_files(desired: Mapping[str, str], have: Mapping[str, tuple[str, str, int, int]],
               layout: MonitoringLayout = LAYOUT) -> tuple[list[str], list[str]]:
    """Change lines (paths only: secrets never shown) and the shell lines that converge them."""
    changes, lines = [], []
    for path in sorted(desired):
        mode, uid, gid = file_owner_mode(path, layout)
        want_sha = hashlib.sha256(desired[path].encode()).hexdigest()
        got = have.get(path)
        if got is not None and got == (want_sha, f"{mode:o}", uid, gid):
            continue
        if got is None:
            changes.append(f"{path}: create")
        elif got[0] != want_sha:
            changes.append(f"{path}: update (differs)")
        else:
            changes.append(f"{path}: owner/mode -> {uid}:{gid} {mode:04o}")
        lines += write_file_script(path, desired[path], mode)
        lines.append(f"chown {uid}:{gid} {q(path)}")
        if SECRET_MARK in path:  # every folder from .../secrets down to the file: 0700
            top = path.index(SECRET_MARK) + len(SECRET_MARK) - 1
            folders = [path[:top]] + [path[:i] for i in range(top + 1, len(path)) if path[i] == "/"]
            lines.append(f"chmod 0700 {' '.join(q(f) for f in folders)}")
    return changes, lines


def host_files(files: Mapping[str, str]) -> dict[str, str]:
    """Absolute host paths -> sources keys (``host:/etc/...``), as the loaders return them."""
    return {HOST_PREFIX + path: text for path, text in files.items()}


def _sources(inp: PlanInput, step: PlaybookStep) -> tuple[dict[str, str], list[str]]:
    raw = inp.files.get(step.name, {})
    files = {k[len(HOST_PREFIX):]: v for k, v in raw.items() if k.startswith(HOST_PREFIX)}
    notes = [v for k, v in sorted(raw.items()) if k.startswith(NOTE_PREFIX)]
    return files, notes


def _result(step: PlaybookStep, changes: Sequence[str], lines: Sequence[str], notes: Sequence[str],
            timeout: int = 600) -> PlannedStep:
    note = "; ".join(notes)
    if not changes:  # a note here is something to fix (a job that cannot be scheduled): show it
        return PlannedStep(step.name, step.kind, "warning" if note else "ok", note=note)
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes),
                       actions=(Shell("\n".join(lines), timeout=timeout),), note=note)


# ------------------------------------------------------------------ step kinds

def plan_mailfleet_install(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    raw = inp.files.get(step.name, {})
    manifest_text = raw.get("manifest", "")
    want = parse_manifest(manifest_text)
    fact = inp.facts.get("mon_install", {})
    python = manifest_python(manifest_text)
    if python and fact.get("python") and fact["python"] != python:
        return PlannedStep(step.name, step.kind, "warning",
                           note=f"the wheelhouse is built for Python {python}, the host runs Python {fact['python']}; "
                                f"deploy from a machine with Python {fact['python']} (the wheels carry compiled code)")
    if not fact.get("venv"):
        return PlannedStep(step.name, step.kind, "warning",
                           note="python3 has no venv/ensurepip on the host; add python3-venv to the role's packages")
    have = fact.get("manifest", {})
    upload = [name for name in sorted(want) if have.get(name) != want[name]]
    stale = [name for name in sorted(have) if name not in want]
    digest = manifest_digest(manifest_text)
    install = fact.get("installed") != digest
    if not upload and not stale and not install:
        return PlannedStep(step.name, step.kind, "ok", note=f"mailfleet installed from {len(want)} wheels")
    wheels = LAYOUT.wheels
    changes: list[str] = []
    lines = [f"install -d -m 0755 {q(wheels)}"]
    if upload:
        size = sum(len(raw.get(WHEEL_PREFIX + name, "")) * 3 // 4 for name in upload)
        changes.append(f"upload {len(upload)} wheel(s) to {wheels} ({size / 1e6:.1f} MB)")
        for name in upload:
            target = f"{wheels}/{name}"
            lines += [f"mf_tmp=$(mktemp {q(target + '.XXXXXX')})",
                      f"base64 -d > \"$mf_tmp\" <<'MAILFLEET_EOF'\n{raw[WHEEL_PREFIX + name]}MAILFLEET_EOF",
                      f"mv -f \"$mf_tmp\" {q(target)}"]
    if stale:
        changes.append(f"remove {len(stale)} wheel(s) no longer needed")
        lines += [f"rm -f {q(wheels + '/' + name)}" for name in stale]
    lines += write_file_script(f"{wheels}/MANIFEST", manifest_text, 0o644)
    if install:
        venv = LAYOUT.venv
        changes.append(f"install mailfleet into {venv} from the uploaded wheels (pip --no-index)")
        lines += [f"rm -rf {q(venv)}", f"python3 -m venv {q(venv)}",
                  f"{q(venv + '/bin/pip')} install -q --disable-pip-version-check --no-index "
                  f"--find-links {q(wheels)} mailfleet",
                  f"{q(venv + '/bin/mailfleet')} --list >/dev/null",
                  f"printf '%s\\n' {q(digest)} > {q(venv + '/.mailfleet-installed')}"]
    return PlannedStep(step.name, step.kind, "change", changes=tuple(changes),
                       actions=(Shell("\n".join(lines), timeout=1800),))


def plan_monitoring_jobs(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    """Config, secrets, job runner and schedule. Unit/cron contents come rendered in the sources
    for both init systems; the host's init (a fact) picks which set is placed."""
    files, notes = _sources(inp, step)
    init = inp.facts.get("mon_init", {"init": "cron", "timers": {}})
    systemd = init.get("init") == "systemd"
    have = inp.facts.get("mon_files", {}).get("files", {})
    placed = {p: c for p, c in files.items()
              if not (p.startswith(SYSTEMD_DIR + "/") and not systemd) and not (p == CRON_FILE and systemd)}
    changes, lines = plan_files(placed, have)
    loose = sorted(p for p, mode in inp.facts.get("mon_files", {}).get("secret_dirs", {}).items() if mode != "700")
    if loose:
        changes.append(f"secret folder(s) {', '.join(loose)}: mode -> 0700")
        lines.append(f"chmod 0700 {' '.join(q(p) for p in loose)}")
    datadir = inp.facts.get("mon_files", {}).get("datadir", "")
    want_datadir = f"2775 0 {LAYOUT.data_gid}"
    if datadir != want_datadir:
        changes.insert(0, f"{LAYOUT.data_dir}: {datadir or 'missing'} -> mode 2775, group {LAYOUT.data_gid} "
                          "(Grafana reads the stores)")
        lines.insert(0, f"install -d -m 2775 -o 0 -g {LAYOUT.data_gid} {q(LAYOUT.data_dir)}")
    stale_units = [p for p in have if p.startswith(SYSTEMD_DIR + "/mailfleet-") and p not in placed]
    if systemd:
        timers = sorted(p.rsplit("/", 1)[1] for p in placed if p.endswith(".timer"))
        state = init.get("timers", {})
        off = [t for t in timers if state.get(t, ("", ""))[0] != "enabled" or state.get(t, ("", ""))[1] != "active"]
        for path in stale_units:
            name = path.rsplit("/", 1)[1]
            changes.append(f"{name}: remove (its job is gone)")
            lines += [f"systemctl disable --now {q(name)} 2>/dev/null || true", f"rm -f {q(path)}"]
        if changes or off:
            lines.append("systemctl daemon-reload")
            if off:
                changes.append(f"enable and start {len(off)} timer(s): {', '.join(off)}")
            if timers:
                lines.append(f"systemctl enable --now {' '.join(q(t) for t in timers)}")
            unit_changed = any(c.startswith(SYSTEMD_DIR) for c in changes)
            if unit_changed and timers:
                lines.append(f"systemctl restart {' '.join(q(t) for t in timers)}")
    else:
        for path in stale_units:
            changes.append(f"{path}: remove (this host has no systemd; cron runs the jobs)")
            lines.append(f"rm -f {q(path)}")
    return _result(step, changes, lines, notes)


def plan_grafana(step: PlaybookStep, inp: PlanInput, earlier: Sequence[PlannedStep]) -> PlannedStep:
    files, notes = _sources(inp, step)
    have = inp.facts.get("mon_files", {}).get("files", {})
    changes, lines = plan_files(files, have)
    for key in inp.files.get(step.name, {}):
        if key.startswith(GENERATE_PREFIX):
            path = key[len(GENERATE_PREFIX):]
            mode, uid, gid = file_owner_mode(path)
            files[path] = ""  # managed: not "stale"
            if path in have and have[path][1:] == (f"{mode:o}", uid, gid):
                continue
            folder = path.rsplit("/", 1)[0]
            changes.append(f"{path}: {'generate (random, kept on the host)' if path not in have else 'owner/mode'}")
            if path not in have:
                lines += [f"install -d -m 0700 {q(folder)}",
                          f"(umask 077; head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 > {q(path)})"]
            lines += [f"chown {uid}:{gid} {q(path)}", f"chmod {mode:04o} {q(path)}"]
    states: Mapping[str, str] = inp.facts.get("mon_grafana", {})
    directory = q(LAYOUT.grafana_dir)
    stale = [p for p in have if p.startswith(LAYOUT.grafana_dir + "/") and p not in files]
    for path in stale:
        changes.append(f"{path}: remove (no longer shipped)")
        lines.append(f"rm -f {q(path)}")
    if changes or states.get("grafana") != "running":
        why = "its files changed" if changes else "it is not running"
        changes.append(f"docker compose up -d in {LAYOUT.grafana_dir} ({why})")
        lines += [f"cd {directory} && timeout 1800 docker compose pull -q",
                  f"cd {directory} && timeout 900 docker compose up -d --remove-orphans"]
        if any("provisioning" in c or "dashboards" in c for c in changes) and states.get("grafana") == "running":
            lines.append(f"cd {directory} && timeout 300 docker compose restart grafana")
    return _result(step, changes, lines, notes, timeout=3000)


def converged_facts(steps: Sequence[PlaybookStep], sources: Mapping[str, Mapping[str, str]],
                    init: str = "cron") -> dict[str, Any]:
    """The facts of a monitoring host on which these steps have nothing left to do (for tests
    of planners and runners that fake a host)."""
    kinds = {step.name: step.kind for step in steps}
    files: dict[str, tuple[str, str, int, int]] = {}
    facts: dict[str, Any] = {}
    for name, kind in kinds.items():
        raw = sources.get(name, {})
        if kind == "mailfleet_install":
            manifest = raw.get("manifest", "")
            facts["mon_install"] = {"manifest": parse_manifest(manifest), "installed": manifest_digest(manifest),
                                    "python": manifest_python(manifest), "venv": True}
            continue
        if kind == "grafana":
            facts["mon_grafana"] = {"grafana": "running"}
        if kind == "monitoring_jobs":
            facts["mon_init"] = {"init": init, "timers": {}}
        for key in raw:
            if key.startswith(GENERATE_PREFIX):
                mode, uid, gid = file_owner_mode(key[len(GENERATE_PREFIX):])
                files[key[len(GENERATE_PREFIX):]] = ("0" * 64, f"{mode:o}", uid, gid)
        for key, content in raw.items():
            path = key[len(HOST_PREFIX):]
            if not key.startswith(HOST_PREFIX) or (path.startswith(SYSTEMD_DIR + "/") and init != "systemd") \
                    or (path == CRON_FILE and init == "systemd"):
                continue
            mode, uid, gid = file_owner_mode(path)
            files[path] = (hashlib.sha256(content.encode()).hexdigest(), f"{mode:o}", uid, gid)
            if init == "systemd" and path.endswith(".timer"):
                facts["mon_init"]["timers"][path.rsplit("/", 1)[1]] = ("enabled", "active")
    facts["mon_files"] = {"files": files, "datadir": f"2775 0 {LAYOUT.data_gid}"}
    return facts


def render_raw_facts(facts: Mapping[str, Any]) -> dict[str, str]:
    """The command outputs that parse into these ``mon_*`` facts (the inverse of the parsers, for
    fake hosts in tests: the real parsers still run)."""
    raw: dict[str, str] = {}
    if "mon_install" in facts:
        f = facts["mon_install"]
        manifest = "".join(f"{digest}  {name}\n" for name, digest in f["manifest"].items())
        raw["mon_install"] = f"{manifest}@@\n{f['installed']}\n@@\n{f['python']}\n@@\n{'venv-ok' if f['venv'] else ''}\n"
    if "mon_files" in facts:
        f = facts["mon_files"]
        raw["mon_files"] = "".join(f"{mode} {uid} {gid} {sha}  {path}\n"
                                   for path, (sha, mode, uid, gid) in f["files"].items()) + f"datadir {f['datadir']}\n"
    if "mon_init" in facts:
        f = facts["mon_init"]
        raw["mon_init"] = f["init"] + "\n" + "".join(f"{t} {e} {a}\n" for t, (e, a) in f["timers"].items())
    if "mon_grafana" in facts:
        raw["mon_grafana"] = "".join('{"Service": "%s", "State": "%s"}\n' % (s, st)
                                     for s, st in facts["mon_grafana"].items())
    return raw
