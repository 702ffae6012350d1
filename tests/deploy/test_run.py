"""The deploy loop against a fake host that records every script it receives.

These prove the structure, not the shell: ``--check`` sends only the read-only fact script and
reads the API only; a converged host gets one fact round and nothing else; drift is applied in
ONE script and verified by a second fact round; a failure names its step; one host's failure
never hides another's.
"""

from __future__ import annotations

import re

import pytest
from deploy_helpers import (
    KEYS,
    FakeApi,
    FakeRemote,
    api_state,
    apply_patch,
    converged_facts,
    core_books,
    load_test_inventory,
    make_job,
    raw_facts,
)

from mailfleet.deploy.remote import RemoteResult
from mailfleet.deploy.run import deploy_fleet, deploy_host, select_hosts
from mailfleet.errors import HostKeyError, MailfleetError

MUTATING = ("base64 -d", "apt-get", "docker compose up", "docker compose restart", "docker compose pull", "git clone",
            "generate_config.sh", "mv -f", "chmod", "hostname mx1", "> /etc/", "mkswap", "swapon")
DRIFT = {"conf_set": {"SKIP_FTS": "y"}, "delete_files": ["data/conf/postfix/extra.cf"]}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def drifted_mx1():
    job = make_job(load_test_inventory(), "mx1")
    good = converged_facts(job)
    return job, good, apply_patch(good, DRIFT)


def test_check_sends_only_the_fact_script_and_reads_the_api() -> None:
    job, _, drifted = drifted_mx1()
    api = FakeApi(api_state(job, wired=True))
    remote = FakeRemote("mx1", raw_facts(drifted), api)
    outcome = deploy_host(remote, job, check=True)
    assert outcome.ok, outcome.error
    assert len(remote.scripts) == 1
    script = remote.scripts[0]
    assert "@@mf:" in script and not any(word in script for word in MUTATING), script
    assert {name for name, _, _ in api.calls} <= {"get_relayhosts", "get_domains"}
    changed = {s.name: list(s.changes) for s in outcome.steps if s.changed}
    assert changed == {
        "mailcow.conf": ["SKIP_FTS: 'y' -> 'n'"],
        "role files": ["data/conf/postfix/extra.cf: create (missing)"],
        "compose": ["docker compose pull, up -d (mailcow.conf changed)", "restart postfix-mailcow (their files changed)"],
    }


def test_a_converged_host_costs_one_fact_round_and_changes_nothing() -> None:
    job = make_job(load_test_inventory(), "mx1")
    api = FakeApi(api_state(job, wired=True))
    remote = FakeRemote("mx1", raw_facts(converged_facts(job)), api)
    outcome = deploy_host(remote, job, check=False)
    assert outcome.ok and outcome.changes == 0 and outcome.rounds == 0
    assert len(remote.scripts) == 1


def test_drift_is_applied_in_one_script_then_verified() -> None:
    job, good, drifted = drifted_mx1()
    api = FakeApi(api_state(job, wired=True))
    remote = FakeRemote("mx1", raw_facts(drifted), api)
    remote.on_apply = lambda script: remote.raw.update(raw_facts(good))  # the apply repairs the host
    outcome = deploy_host(remote, job, check=False)
    assert outcome.ok, outcome.error
    assert len(remote.scripts) == 3  # facts, ONE apply script, facts again
    apply = remote.scripts[1]
    assert "mailcow.conf" in apply and "extra.cf" in apply
    assert apply.index("mailcow.conf.mailfleet") < apply.index("docker compose up -d") < apply.index("restart postfix-mailcow")
    assert "get_containers" in {name for name, _, _ in api.calls}  # waited for the containers
    assert outcome.changes == 4


def test_a_failing_step_is_named_and_the_host_reported_failed() -> None:
    job, _, drifted = drifted_mx1()
    remote = FakeRemote("mx1", raw_facts(drifted), FakeApi(api_state(job, wired=True)))
    original = remote.run

    def run(script: str, *, timeout: int) -> RemoteResult:
        if "@@mf-step:" in script:
            remote.scripts.append(script)
            # fail inside the fragment that writes extra.cf, as a read-only disk would
            chunks = re.split(r"echo '@@mf-step:(\d+)@@'", script)
            index = next(chunks[i] for i in range(1, len(chunks), 2) if "extra.cf" in chunks[i + 1])
            printed = "".join(f"@@mf-step:{chunks[i]}@@\n" for i in range(1, len(chunks), 2) if int(chunks[i]) <= int(index))
            return RemoteResult(1, printed, "mv: cannot move: Read-only file system\n")
        return original(script, timeout=timeout)

    remote.run = run  # type: ignore[method-assign]
    outcome = deploy_host(remote, job, check=False)
    assert not outcome.ok
    assert "role files" in outcome.error and "Read-only file system" in outcome.error


def test_a_step_that_never_converges_is_an_error() -> None:
    job, _, drifted = drifted_mx1()
    remote = FakeRemote("mx1", raw_facts(drifted), FakeApi(api_state(job, wired=True)))  # apply changes nothing
    outcome = deploy_host(remote, job, check=False)
    assert not outcome.ok and "did not converge" in outcome.error


def test_one_hosts_failure_never_hides_anothers() -> None:
    inv = load_test_inventory()
    assert inv.fleet is not None

    def factory(host, sources):
        if host.name == "relay1":
            raise HostKeyError("relay1: HOST KEY CHANGED. ... presented SHA256:abc")
        job = make_job(inv, host.name)
        api = FakeApi(api_state(job, wired=True)) if host.runs_mailcow else None
        return FakeRemote(host.name, raw_facts(converged_facts(job)), api)

    outcomes = deploy_fleet(inv, select_hosts(inv.fleet, None, None, True), check=False, books=core_books(),
                            remote_factory=factory)
    assert set(outcomes) == {"mx1", "relay1", "tx1", "mon1"}
    assert not outcomes["relay1"].ok and "HOST KEY CHANGED" in outcomes["relay1"].error
    assert all(outcomes[h].ok and outcomes[h].changes == 0 for h in ("mx1", "tx1", "mon1"))


def test_host_selection() -> None:
    fleet = load_test_inventory().fleet
    assert fleet is not None
    assert [h.name for h in select_hosts(fleet, None, "outbound-relay", False)] == ["relay1", "tx1"]
    assert [h.name for h in select_hosts(fleet, "mx1,mon1", None, False)] == ["mx1", "mon1"]
    with pytest.raises(MailfleetError, match="exactly one"):
        select_hosts(fleet, "mx1", None, True)
    with pytest.raises(MailfleetError, match="no host 'mx9'"):
        select_hosts(fleet, "mx9", None, False)


def test_a_host_blocked_by_a_warning_says_why_it_cannot_converge() -> None:
    job = make_job(load_test_inventory(), "relay1")
    facts = converged_facts(job)
    facts["checkout"] = {"present": False, "head": "", "tag_commit": "", "origin": "", "describe": "", "contains": False}
    facts["mailcow_conf"] = {"present": False, "mode": "", "text": ""}
    import dataclasses

    one_dot = dataclasses.replace(job, host=dataclasses.replace(job.host, hostname="example.com"))
    remote = FakeRemote("relay1", raw_facts(facts))
    outcome = deploy_host(remote, one_dot, check=False)
    assert not outcome.ok
    assert "did not converge" in outcome.error and "one dot" in outcome.error
    assert all("generate_config.sh" not in script for script in remote.scripts)  # never run: it would prompt
