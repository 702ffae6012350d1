"""No-op converge of the lab fleet: mailfleet vs pyinfra vs Ansible doing the same checks.

Run by hand, as root, with a lab up (the script deploys it first). Prefer a lab of its own, so
other work on the shared lab neither disturbs the timings nor is disturbed:

    .venv/bin/mailfleet lab.up --dir var/bench/lab --inventory var/bench/lab.yaml --prefix mfbn --subnet 10.82.0.0/24
    .venv/bin/python bench/converge.py --inventory var/bench/lab.yaml [--runs 5] [--ansible-runs 3]

What every tool checks on every host, exactly what ``mailfleet deploy``'s own step kinds check
there (step kinds other components add, the monitoring role's, are left out on every side):
the common packages (8, plus sqlite3 on the monitoring host) and the hostname; on Mailcow hosts
also Docker and Compose present, the checkout at the pinned tag, every mailcow.conf key mailfleet
owns (5-8 lines) and its 0600 mode, the rendered role files (5-6 files with content and mode),
and every Compose service running. The peers get the very contents mailfleet renders, written
under var/bench/converge/. All three verify SSH host keys against the inventory's pins
(mailfleet: its own RejectPolicy; Ansible: StrictHostKeyChecking=yes with a known_hosts written
from the pins; pyinfra: ssh_strict_host_key_checking=yes with the same file).

The peers are benchmark-only dependencies, installed by this script into
var/bench/venv-ansible and var/bench/venv-pyinfra. Every timed run must report zero changes
(checked for each tool from its own output) or the script stops. Ratios are printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mailfleet.deploy.facts import install_dir  # noqa: E402
from mailfleet.deploy.sources import host_steps, load_host_sources, load_playbooks  # noqa: E402
from mailfleet.inventory import load_valid_inventory  # noqa: E402
from mailfleet.secrets import secret_path  # noqa: E402

BENCH = REPO / "var" / "bench"
WORK = BENCH / "converge"
MAILFLEET = str(REPO / ".venv" / "bin" / "mailfleet")
PEERS = {
    "ansible": ("ansible-core>=2.19,<2.20", "ansible-playbook"),
    "pyinfra": ("pyinfra>=3.10,<3.11", "pyinfra"),
}


def ensure_peer(name: str) -> Path:
    spec, binary = PEERS[name]
    venv = BENCH / f"venv-{name}"
    exe = venv / "bin" / binary
    if not exe.exists():
        print(f"installing {spec} into {venv} (benchmark only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True, timeout=900)
    return exe


def peer_version(venv_bin: Path, package: str) -> str:
    out = subprocess.run([str(venv_bin.parent / "python"), "-c",
                          f"import importlib.metadata as m; print(m.version({package!r}))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


# ---------------------------------------------------------------- the same work for the peers

CORE_KINDS = {"packages", "hostname", "swap", "sysctl", "docker", "mailcow_checkout", "mailcow_generate_config",
              "mailcow_conf", "mailcow_files", "compose", "wait_running", "relayhost_wiring"}


def write_core_playbooks() -> Path:
    """The repository's playbooks with deploy's own step kinds only.

    Step kinds other components register (the monitoring role's wheelhouse, jobs and Grafana)
    have no counterpart in the peers' playbooks, so the timed runs leave them out: the same work
    on every side. ``MAILFLEET_PLAYBOOKS_DIR`` points mailfleet at this copy."""
    from ruamel.yaml import YAML

    target = WORK / "playbooks"
    target.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe")
    for path in sorted((REPO / "playbooks").glob("*.yaml")):
        doc = yaml.load(path.read_text())
        doc["steps"] = [step for step in doc["steps"] if step["step"] in CORE_KINDS]
        if doc["steps"]:
            with open(target / path.name, "w") as handle:
                yaml.dump(doc, handle)
    return target


def write_peer_files(inventory: Path) -> dict[str, object]:
    inv = load_valid_inventory(inventory)
    fleet = inv.fleet
    assert fleet is not None
    books = load_playbooks()
    WORK.mkdir(parents=True, exist_ok=True)
    key = secret_path(fleet.settings.ssh_identity, inv.base_dir) if fleet.settings.ssh_identity else None
    known = WORK / "known_hosts"
    known.write_text("".join(f"{h.address if h.ssh_port == 22 else f'[{h.address}]:{h.ssh_port}'} {h.host_key}\n"
                             for h in fleet.hosts.values()))
    hosts: dict[str, dict[str, object]] = {}
    checks = 0
    for host in fleet.hosts.values():
        steps = host_steps(host, books)
        sources = load_host_sources(host, inv, steps)
        packages = sorted({p for s in steps if s.kind == "packages" for p in s.params["packages"]})
        d = install_dir(fleet)
        files = []
        for step_files in sources.files.values():
            for rel, content in step_files.items():
                local = WORK / "files" / host.name / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(content)
                files.append({"src": str(local), "dest": f"{d}/{rel}",
                              "mode": "0755" if rel in sources.executable else "0644"})
        entry: dict[str, object] = {
            "address": host.address, "user": host.ssh_user, "port": host.ssh_port, "hostname": host.hostname,
            "packages": packages, "mailcow": host.runs_mailcow, "install_dir": d,
            "docker": any(s.kind == "docker" for s in steps),
            "version": fleet.settings.mailcow.version, "conf": dict(sources.conf_overrides), "files": files,
        }
        hosts[host.name] = entry
        # packages, hostname; Docker (by `docker compose version`, or by `ps` on Mailcow hosts);
        # on Mailcow hosts: release, each mailcow.conf key, its mode, each file, containers running
        checks += 3 + (2 + len(sources.conf_overrides) + 1 + len(files) if host.runs_mailcow else 0)
    spec = {"hosts": hosts, "key": str(key) if key else "", "known_hosts": str(known), "checks": checks}
    (WORK / "spec.json").write_text(json.dumps(spec, indent=1))
    os.chmod(WORK / "spec.json", 0o600)  # it holds the API keys mailcow.conf must carry
    write_ansible(spec)
    write_pyinfra(spec)
    return spec


def write_ansible(spec: dict) -> None:
    lines = ["all:", "  hosts:"]
    for name, h in spec["hosts"].items():
        lines.append(f"    {name}:")
        lines.append(f"      ansible_host: {h['address']}")
        lines.append(f"      ansible_user: {h['user']}")
        lines.append(f"      ansible_port: {h['port']}")
        lines.append(f"      mf: {json.dumps(h)}")
    (WORK / "ansible-inventory.yml").write_text("\n".join(lines) + "\n")
    (WORK / "ansible.cfg").write_text(
        "[defaults]\nforks = 10\nhost_key_checking = True\ninterpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\nstdout_callback = default\n"
        f"private_key_file = {spec['key']}\n"
        "[ssh_connection]\npipelining = True\n"
        f"ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={spec['known_hosts']} -o IdentitiesOnly=yes -F /dev/null\n")
    (WORK / "play.yml").write_text("""\
- hosts: all
  gather_facts: false
  tasks:
    - name: packages
      ansible.builtin.apt: {name: "{{ mf.packages }}", state: present}
    - name: hostname
      ansible.builtin.command: hostname
      register: hn
      changed_when: false
      failed_when: hn.stdout != mf.hostname
    - name: docker and compose present (on Mailcow hosts `docker compose ps` below proves it)
      ansible.builtin.command: docker compose version --short
      changed_when: false
      when: mf.docker and not mf.mailcow
    - name: mailcow
      when: mf.mailcow
      block:
        - name: checkout release (read only, as mailfleet does)
          ansible.builtin.command: git -C {{ mf.install_dir }} describe --tags --abbrev=0
          changed_when: false
        - name: mailcow.conf keys
          ansible.builtin.lineinfile:
            path: "{{ mf.install_dir }}/mailcow.conf"
            regexp: "^{{ item.key }}="
            line: "{{ item.key }}={{ item.value }}"
          loop: "{{ mf.conf | dict2items }}"
          no_log: true
        - name: mailcow.conf mode
          ansible.builtin.file: {path: "{{ mf.install_dir }}/mailcow.conf", mode: "0600"}
        - name: role files
          ansible.builtin.copy: {src: "{{ item.src }}", dest: "{{ item.dest }}", mode: "{{ item.mode }}"}
          loop: "{{ mf.files }}"
          loop_control: {label: "{{ item.dest }}"}
        - name: containers running
          ansible.builtin.shell: cd {{ mf.install_dir }} && docker compose ps --format json
          register: ps
          changed_when: false
          failed_when: >-
            (ps.stdout_lines | map('from_json') | selectattr('State', 'ne', 'running') | list | length) > 0
            or (ps.stdout_lines | length) == 0
""")


def write_pyinfra(spec: dict) -> None:
    (WORK / "pyinfra_inventory.py").write_text(
        "import json\n"
        f"_spec = json.load(open({str(WORK / 'spec.json')!r}))\n"
        "hosts = [(h['address'], {'ssh_user': h['user'], 'ssh_port': h['port'], 'ssh_key': _spec['key'],\n"
        "          'ssh_known_hosts_file': _spec['known_hosts'], 'ssh_strict_host_key_checking': 'yes',\n"
        "          'mf_name': name, 'mf': h}) for name, h in _spec['hosts'].items()]\n")
    (WORK / "pyinfra_deploy.py").write_text("""\
import json

from pyinfra import host
from pyinfra.facts.server import Command, Hostname
from pyinfra.operations import apt, files

mf = host.data.mf
apt.packages(name="packages", packages=mf["packages"])
assert host.get_fact(Command, "hostname") == mf["hostname"], "hostname"
if mf["docker"] and not mf["mailcow"]:  # on Mailcow hosts `docker compose ps` below proves Compose works
    host.get_fact(Command, "docker compose version --short")
if mf["mailcow"]:
    d = mf["install_dir"]
    host.get_fact(Command, f"git -C {d} describe --tags --abbrev=0")  # reported, not moved: as mailfleet
    for key, value in mf["conf"].items():
        files.line(name=f"mailcow.conf {key}", path=f"{d}/mailcow.conf", line=f"^{key}=.*$", replace=f"{key}={value}")
    files.file(name="mailcow.conf mode", path=f"{d}/mailcow.conf", mode="600")
    for item in mf["files"]:
        files.put(name=item["dest"], src=item["src"], dest=item["dest"], mode=item["mode"])
    ps = host.get_fact(Command, f"cd {d} && docker compose ps --format json")
    states = [json.loads(line)["State"] for line in ps.splitlines() if line.strip()]
    assert states and all(s == "running" for s in states), "containers"
""")


# ---------------------------------------------------------------- runs

def timed(cmd: list[str], check_output: callable, env: dict | None = None, cwd: Path = REPO) -> float:  # type: ignore[valid-type]
    began = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    elapsed = time.perf_counter() - began
    problem = check_output(result)
    if problem:
        sys.exit(f"{' '.join(cmd[:3])}...: {problem}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def mailfleet_ok(result: subprocess.CompletedProcess) -> str:
    if result.returncode != 0 or "zero changes - every host is converged" not in result.stdout:
        return "mailfleet did not report zero changes"
    return ""


def ansible_ok(result: subprocess.CompletedProcess) -> str:
    recaps = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout, re.M)
    if result.returncode != 0 or not recaps or any(c != "0" or u != "0" or f != "0" for _, c, u, f in recaps):
        return "ansible changed something or failed"
    return ""


def pyinfra_ok(result: subprocess.CompletedProcess) -> str:
    text = result.stdout + result.stderr
    if result.returncode != 0:
        return "pyinfra failed"
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", text)
    if re.search(r"\] (Success|Changed|Error)", text) or not total or total.group(2) != "-" or total.group(3) != "-":
        return "pyinfra changed something or failed"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=str(REPO / "inventory" / "lab.yaml"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ansible-runs", type=int, default=3)
    parser.add_argument("--one", default="mx1", help="the host of the one-host runs")
    args = parser.parse_args()
    inventory = Path(args.inventory).resolve()
    if not inventory.exists():
        sys.exit(f"{inventory} does not exist: start the lab first (`mailfleet lab.up`)")
    os.environ["MAILFLEET_PLAYBOOKS_DIR"] = str(write_core_playbooks())
    ansible, pyinfra = ensure_peer("ansible"), ensure_peer("pyinfra")
    print(f"versions: ansible-core {peer_version(ansible, 'ansible-core')}, pyinfra {peer_version(pyinfra, 'pyinfra')}, "
          f"mailfleet (this tree)")
    first = subprocess.run([MAILFLEET, "deploy", "--all", "--inventory", str(inventory)], capture_output=True, text=True,
                           cwd=REPO, timeout=900)
    if first.returncode != 0:
        sys.exit(f"the lab does not deploy cleanly:\n{first.stdout}\n{first.stderr}")
    spec = write_peer_files(inventory)
    hosts = list(spec["hosts"])
    print(f"fleet: {len(hosts)} hosts ({', '.join(hosts)}), {spec['checks']} checks in all "
          f"({spec['checks'] / len(hosts):.1f} per host)")
    ansible_env = {**os.environ, "ANSIBLE_CONFIG": str(WORK / "ansible.cfg")}
    one = spec["hosts"][args.one]["address"]
    cmds = {
        ("mailfleet", 6): ([MAILFLEET, "deploy", "--all", "--inventory", str(inventory)], mailfleet_ok, None),
        ("mailfleet", 1): ([MAILFLEET, "deploy", "--host", args.one, "--inventory", str(inventory)], mailfleet_ok, None),
        ("pyinfra", 6): ([str(pyinfra), "-y", "--parallel", "10", str(WORK / "pyinfra_inventory.py"),
                          str(WORK / "pyinfra_deploy.py")], pyinfra_ok, None),
        ("pyinfra", 1): ([str(pyinfra), "-y", "--limit", one, str(WORK / "pyinfra_inventory.py"),
                          str(WORK / "pyinfra_deploy.py")], pyinfra_ok, None),
        ("ansible", 6): ([str(ansible), "-i", str(WORK / "ansible-inventory.yml"), str(WORK / "play.yml")],
                         ansible_ok, ansible_env),
        ("ansible", 1): ([str(ansible), "-i", str(WORK / "ansible-inventory.yml"), "--limit", args.one,
                          str(WORK / "play.yml")], ansible_ok, ansible_env),
    }
    # Warm-up (the peers' first runs must already find zero changes: mailfleet converged the fleet).
    for key, (cmd, ok, env) in cmds.items():
        timed(cmd, ok, env)
    times: dict[tuple[str, int], list[float]] = {key: [] for key in cmds}
    load_before = os.getloadavg()
    for i in range(args.runs):  # interleaved, so drift in machine load hits every tool alike
        for key, (cmd, ok, env) in cmds.items():
            if key[0] == "ansible" and i >= args.ansible_runs:
                continue
            times[key].append(timed(cmd, ok, env))
        print(f"round {i + 1}: " + ", ".join(f"{k[0]} {k[1]}h {v[-1]:.2f}s" for k, v in times.items() if len(v) > i),
              flush=True)
    med = {key: statistics.median(v) for key, v in times.items()}
    load_after = os.getloadavg()
    print(f"\nload average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} CPUs "
          "(other work on this machine slows every tool; the paired ratios below compare runs made back to back)")

    def paired(a: tuple[str, int], b: tuple[str, int]) -> float:
        n = min(len(times[a]), len(times[b]))
        return statistics.median(times[a][i] / times[b][i] for i in range(n))

    print()
    print(f"{'tool':<10} {'1 host':>8} {'6 hosts':>8} {'6h/1h':>6}  runs")
    for tool in ("mailfleet", "pyinfra", "ansible"):
        print(f"{tool:<10} {med[(tool, 1)]:>7.2f}s {med[(tool, 6)]:>7.2f}s {med[(tool, 6)] / med[(tool, 1)]:>6.2f}  "
              f"{len(times[(tool, 6)])} (6h: {', '.join(f'{x:.2f}' for x in times[(tool, 6)])})")
    print()
    print("ratio                          of medians   paired (median of per-round ratios)")
    print(f"pyinfra / mailfleet (6 hosts): {med[('pyinfra', 6)] / med[('mailfleet', 6)]:>8.2f}x   "
          f"{paired(('pyinfra', 6), ('mailfleet', 6)):.2f}x  (goal >= 2)")
    print(f"ansible / mailfleet (6 hosts): {med[('ansible', 6)] / med[('mailfleet', 6)]:>8.2f}x   "
          f"{paired(('ansible', 6), ('mailfleet', 6)):.2f}x  (goal >= 20)")
    print(f"mailfleet 6 hosts / 1 host:    {med[('mailfleet', 6)] / med[('mailfleet', 1)]:>8.2f}x   "
          f"{paired(('mailfleet', 6), ('mailfleet', 1)):.2f}x  (goal <= 1.5)")


if __name__ == "__main__":
    main()
