"""Helpers for deploy's unit tests: the test fleet, canned facts, a recording fake host."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailfleet.deploy.extensions import EXTENSIONS
from mailfleet.deploy.merge_env import merge_env
from mailfleet.deploy.plan_steps import PlanInput, sha256
from mailfleet.deploy.remote import RemoteResult
from mailfleet.deploy.run import HostJob
from mailfleet.deploy.sources import host_steps, load_host_sources, load_playbooks
from mailfleet.inventory.load import Inventory, parse_inventory_text

HERE = Path(__file__).resolve().parent
INSTALL = "/opt/mailcow-dockerized"
KEYS = {"MF_TEST_MX1_KEY": "mx1-Key-0123456789abcdef", "MF_TEST_RELAY1_KEY": "relay1-Key-0123456789abcdef",
        "MF_TEST_TX1_KEY": "tx1-Key-0123456789abcdef"}
SERVICES = ["postfix-mailcow", "dovecot-mailcow", "rspamd-mailcow", "nginx-mailcow", "php-fpm-mailcow"]
SAMPLE_CONF = (HERE / "mailcow.conf.sample").read_text()


def load_test_inventory() -> Inventory:
    inv = parse_inventory_text((HERE / "fleet.yaml").read_text(), str(HERE / "fleet.yaml"), HERE / "fleet.yaml")
    assert inv.fleet is not None, "tests/deploy/fleet.yaml must be valid"
    return inv


# The step kinds deploy itself owns; kinds other components register (deploy.extensions, e.g. the
# monitoring role's, which builds a wheelhouse) are left out of these unit tests: their owners
# test them.
CORE_KINDS = frozenset({"packages", "hostname", "swap", "sysctl", "docker", "mailcow_checkout",
                        "mailcow_generate_config", "mailcow_conf", "mailcow_files", "compose", "wait_running",
                        "relayhost_wiring"})


def core_books() -> dict:
    """The repository's playbooks with only deploy's own step kinds."""
    import dataclasses

    return {name: dataclasses.replace(book, steps=tuple(s for s in book.steps if s.kind in CORE_KINDS))
            for name, book in load_playbooks().items()}


def make_job(inv: Inventory, host_name: str) -> HostJob:
    assert inv.fleet is not None
    host = inv.fleet.hosts[host_name]
    steps = tuple(s for s in host_steps(host, load_playbooks()) if s.kind in CORE_KINDS)
    return HostJob(host, inv.fleet, steps, load_host_sources(host, inv, steps))


def converged_facts(job: HostJob) -> dict[str, Any]:
    """Facts of a host on which deploy has nothing left to do."""
    installed = {pkg: True for step in job.steps if step.kind == "packages" for pkg in step.params["packages"]}
    files = {f"{INSTALL}/{path}": sha256(content) for step_files in job.sources.files.values()
             for path, content in step_files.items()}
    sysctl = {k: str(v) for k, v in job.host.sysctl.items()}
    facts: dict[str, Any] = {
        "packages": installed,
        "hostname": {"running": job.host.hostname, "file": job.host.hostname},
        "swap": job.host.swap_mb * 1024,
        "sysctl": sysctl,
    }
    if any(step.kind == "docker" for step in job.steps):  # Mailcow hosts, and the monitoring host (Grafana)
        facts.update({"os": {"id": "debian", "codename": "bookworm"}, "docker": {"docker": True, "compose": "2.29.7"}})
    if any(step.kind in EXTENSIONS for step in job.steps):  # the monitoring role's step kinds
        from mailfleet.monitoring.plan_deploy import converged_facts as monitoring_converged

        facts.update(monitoring_converged(job.steps, job.sources.files))
    if job.host.runs_mailcow:
        facts.update({
            "os": {"id": "debian", "codename": "bookworm"},
            "docker": {"docker": True, "compose": "via-ps"},  # installed: Compose judged by `ps`
            "checkout": {"present": True, "head": "a" * 40, "tag_commit": "a" * 40, "origin": "file:///srv/x",
                         "describe": "2026-07a", "contains": True},
            "mailcow_conf": {"present": True, "mode": "600",
                             "text": merge_env(SAMPLE_CONF, job.sources.conf_overrides)},
            "files": files,
            "compose": {s: "running" for s in SERVICES},
            "services": list(SERVICES),
            "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        })
    return facts


def fresh_facts(job: HostJob) -> dict[str, Any]:
    """Facts of a host that has never been deployed (packages present, as on the lab)."""
    facts = converged_facts(job)
    facts["hostname"] = {"running": job.host.name, "file": job.host.name}
    facts["swap"] = 0
    facts["sysctl"] = {}
    if job.host.runs_mailcow:
        facts.update({
            "checkout": {"present": False, "head": "", "tag_commit": "", "origin": "", "describe": "", "contains": False},
            "mailcow_conf": {"present": False, "mode": "", "text": ""},
            "files": {path: None for path in facts["files"]},
            "docker": {"docker": True, "compose": "2.29.7"},
            "compose": {}, "services": [], "cert": "",
        })
    return facts


def api_state(job: HostJob, *, wired: bool) -> dict[str, Any]:
    """What the API of an inbound host reports: every served domain present; wired or not."""
    assert job.fleet is not None
    relayhosts, domains = [], []
    ids: dict[str, int] = {}
    for domain in job.fleet.domains_served_by(job.host.name):
        relay = domain.transactional_relay or domain.relay
        nexthop = f"[{job.fleet.hosts[relay].address}]:25" if relay else ""
        if wired and nexthop and nexthop not in ids:
            ids[nexthop] = len(ids) + 1
            relayhosts.append({"id": ids[nexthop], "hostname": nexthop, "username": "", "active": "1"})
        domains.append({"domain_name": domain.ascii, "relayhost": str(ids.get(nexthop, 0)) if wired else "0"})
    return {"relayhosts": relayhosts, "domains": domains}


def plan_input(job: HostJob, facts: dict[str, Any], api: dict[str, Any] | None) -> PlanInput:
    return PlanInput(host=job.host, fleet=job.fleet, facts=facts, files=job.sources.files,
                     executable=job.sources.executable, conf_overrides=job.sources.conf_overrides, api=api)


def apply_patch(facts: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Case-file edits on canned facts: ``set`` replaces facts, ``delete_files`` drops files,
    ``conf_set`` edits mailcow.conf keys, ``stopped`` marks services as exited."""
    facts = copy.deepcopy(facts)
    for name, value in patch.get("set", {}).items():
        facts[name] = value
    for path in patch.get("delete_files", []):
        facts["files"][f"{INSTALL}/{path}"] = None
    for path in patch.get("alter_files", []):
        facts["files"][f"{INSTALL}/{path}"] = "0" * 64
    if patch.get("conf_set"):
        facts["mailcow_conf"]["text"] = merge_env(facts["mailcow_conf"]["text"], patch["conf_set"])
    for service in patch.get("stopped", []):
        facts["compose"][service] = "exited"
    for name, value in patch.get("update", {}).items():
        facts[name] = {**facts[name], **value}
    return facts


# ---------------------------------------------------------------- a fake host for the runner

FACT_MARK = re.compile(r"@@mf:([0-9a-f]+):([a-z_:.0-9-]+)@@")


class FakeApi:
    """Records every API call; answers reads from ``state``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name == "get_relayhosts":
                return self.state["relayhosts"]
            if name == "get_domains":
                return self.state["domains"]
            if name == "get_containers":
                return {s: {"state": "running"} for s in SERVICES}
            if name == "add_relayhost":
                new_id = len(self.state["relayhosts"]) + 1
                self.state["relayhosts"].append({"id": new_id, "hostname": args[0], "username": ""})
                return new_id
            if name == "edit_domain":
                for d in self.state["domains"]:
                    if d["domain_name"] == args[0]:
                        d.update({k: str(v) for k, v in kwargs.items()})
                return None
            raise AssertionError(f"unexpected API call {name}")

        return call


class FakeRemote:
    """Answers fact scripts from canned facts (raw outputs); records every script it is sent."""

    def __init__(self, name: str, raw_facts: dict[str, str], api: FakeApi | None = None,
                 on_apply: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.raw = raw_facts
        self.scripts: list[str] = []
        self._api = api
        self.on_apply = on_apply

    def run(self, script: str, *, timeout: int) -> RemoteResult:
        self.scripts.append(script)
        marks = FACT_MARK.findall(script)
        if marks:
            nonce = marks[0][0]
            out = "".join(f"\n@@mf:{nonce}:{name}@@\n{self.raw.get(name, '')}" for _, name in marks
                          if name != "@end")
            return RemoteResult(0, out + f"\n@@mf:{nonce}:@end@@\n", "")
        if self.on_apply:
            self.on_apply(script)
        return RemoteResult(0, "@@mf-step:0@@\n@@mf-step:done@@\n", "")

    def api(self) -> FakeApi:
        assert self._api is not None, "this host has no API in the test"
        return self._api

    def reset_api(self) -> None:
        pass

    def close(self) -> None:
        pass


def raw_facts(facts: dict[str, Any]) -> dict[str, str]:
    """The command outputs that parse into ``facts`` (so tests exercise the real parsers)."""
    import json

    raw: dict[str, str] = {}
    if "packages" in facts:
        raw["packages"] = "".join(f"{name}\t{'ii ' if ok else 'un '}\n" for name, ok in facts["packages"].items())
    if "hostname" in facts:
        raw["hostname"] = f"{facts['hostname']['running']}\n{facts['hostname']['file']}\n"
    if "swap" in facts:
        raw["swap"] = "Filename Type Size Used Priority\n" + (f"/swapfile file {facts['swap']} 0 -2\n" if facts["swap"] else "")
    if "sysctl" in facts:
        raw["sysctl"] = "".join(f"{k}\t{v}\n" for k, v in facts["sysctl"].items())
    if "os" in facts:
        raw["os"] = f"{facts['os']['id']} {facts['os']['codename']}\n"
    if "docker" in facts:
        d = facts["docker"]
        raw["docker"] = ("docker=yes\n" if d["docker"] else "") + (f"compose={d['compose']}\n" if d["compose"] else "")
    if "checkout" in facts:
        c = facts["checkout"]
        raw["checkout"] = ("present\n" + f"{c['head']}\n{c['tag_commit'] or 'none'}\n{c['origin']}\n{c['describe']}\n"
                           + ("contains\n" if c["contains"] else "\n")) if c["present"] else "absent\n"
    if "mailcow_conf" in facts:
        m = facts["mailcow_conf"]
        raw["mailcow_conf"] = f"{m['mode']}\n{m['text']}" if m["present"] else "absent\n"
    if "files" in facts:
        raw["files"] = "".join(f"- {path}\n" if digest is None else f"{digest}  {path}\n"
                               for path, digest in facts["files"].items())
    if "compose" in facts:
        raw["compose"] = "".join(json.dumps({"Service": s, "State": st}) + "\n" for s, st in facts["compose"].items())
    if "services" in facts:
        raw["services"] = "services:\n" + "".join(f"  {s}:\n    image: x\n" for s in facts["services"]) + "\n---\n"
    if "cert" in facts:
        raw["cert"] = facts["cert"]
    from mailfleet.monitoring.plan_deploy import render_raw_facts as monitoring_raw_facts

    raw.update(monitoring_raw_facts(facts))  # the monitoring role's mon_* facts
    return raw
