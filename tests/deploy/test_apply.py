"""The apply side: waiting for containers names the laggard; API writes use ids read back."""

from __future__ import annotations

import subprocess

import pytest

from mailfleet.deploy.apply import apply_steps, render_apply_script, wait_running
from mailfleet.deploy.model import ApiCall, PlannedStep, Shell
from mailfleet.errors import RemoteError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Api:
    def __init__(self, states: list[dict[str, str]]) -> None:
        self.states = states
        self.calls: list[tuple] = []

    def get_containers(self) -> dict[str, dict[str, str]]:
        states = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {name: {"state": state} for name, state in states.items()}

    def add_relayhost(self, hostname: str) -> int:
        self.calls.append(("add_relayhost", hostname))
        return 12

    def edit_domain(self, domain: str, **attr: str) -> None:
        self.calls.append(("edit_domain", domain, attr))


class Remote:
    name = "mx1"

    def __init__(self, api: Api) -> None:
        self._api = api
        self.scripts: list[str] = []

    def api(self) -> Api:
        return self._api

    def reset_api(self) -> None:
        pass

    def run(self, script: str, *, timeout: int):
        self.scripts.append(script)
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=10)
        from mailfleet.deploy.remote import RemoteResult
        return RemoteResult(done.returncode, done.stdout, done.stderr)


def test_wait_returns_once_every_container_runs() -> None:
    clock = Clock()
    api = Api([{"postfix-mailcow": "starting", "nginx-mailcow": "running"},
               {"postfix-mailcow": "running", "nginx-mailcow": "running"}])
    wait_running(Remote(api), 60, sleep=clock.sleep, clock=clock)
    assert clock.now == 2.0


def test_wait_times_out_naming_the_laggard() -> None:
    clock = Clock()
    api = Api([{"postfix-mailcow": "running", "sogo-mailcow": "restarting"}])
    with pytest.raises(RemoteError, match=r"did not come up within 30 s \(not running: sogo-mailcow\)"):
        wait_running(Remote(api), 30, sleep=clock.sleep, clock=clock)


def test_relayhost_id_read_back_is_used_by_the_next_call() -> None:
    api = Api([{}])
    step = PlannedStep("relayhosts", "relayhost_wiring", "change", changes=("x",), actions=(
        ApiCall("add_relayhost", ("[10.0.0.1]:25",), binds="[10.0.0.1]:25"),
        ApiCall("edit_domain", ("a.example",), {"relayhost": "@[10.0.0.1]:25"}),
    ))
    apply_steps(Remote(api), [step])
    assert api.calls == [("add_relayhost", "[10.0.0.1]:25"), ("edit_domain", "a.example", {"relayhost": "12"})]


def test_shell_steps_run_in_one_script_and_a_failure_names_its_step(tmp_path) -> None:
    marker = tmp_path / "ran"
    steps = [
        PlannedStep("first", "mailcow_files", "change", actions=(Shell(f"cd /tmp; touch {marker}"),)),
        PlannedStep("second", "compose", "change", actions=(Shell("false; echo never"),)),
        PlannedStep("third", "compose", "change", actions=(Shell(f"rm {marker}"),)),
    ]
    remote = Remote(Api([{}]))
    with pytest.raises(RemoteError, match="step 'second' failed"):
        apply_steps(remote, steps)
    assert len(remote.scripts) == 1 and marker.exists()  # third never ran


def test_a_step_cannot_change_the_next_ones_directory() -> None:
    script = render_apply_script([(0, PlannedStep("a", "x", "change"), Shell("cd /")),
                                  (1, PlannedStep("b", "x", "change"), Shell("test \"$PWD\" != /"))])
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, cwd="/tmp", timeout=10)
    assert result.returncode == 0 and "@@mf-step:done@@" in result.stdout
