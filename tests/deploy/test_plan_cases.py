"""The planner, table-driven (pyinfra's JSON cases): canned facts + the test fleet → expected steps.

Each ``cases/*.json`` names a host, a base state (``converged`` or ``fresh``), edits to its facts,
the API's answer, and for each step that is not ``ok`` its status and exact change lines.
Every step the case does not name must plan ``ok`` with no change: so a case also proves that
nothing else moves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_helpers import KEYS, api_state, apply_patch, converged_facts, fresh_facts, load_test_inventory, make_job, plan_input

from mailfleet.deploy.model import ApiCall, Shell, WaitRunning
from mailfleet.deploy.plan import plan_host

CASES = sorted((Path(__file__).parent / "cases").glob("*.json"))


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def test_there_are_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    case = json.loads(path.read_text())
    job = make_job(load_test_inventory(), case["host"])
    base = converged_facts(job) if case.get("base", "converged") == "converged" else fresh_facts(job)
    facts = apply_patch(base, case.get("patch", {}))
    api = case.get("api", "wired")
    api_facts = None if api is None else api_state(job, wired=(api == "wired")) if isinstance(api, str) else api
    plan = plan_host(job.steps, plan_input(job, facts, api_facts))
    by_name = {step.name: step for step in plan.steps}
    expected = case.get("expect", {})
    unknown = set(expected) - set(by_name)
    assert not unknown, f"the case names steps the host does not have: {unknown}"
    for step in plan.steps:
        want = expected.get(step.name, {"status": "ok", "changes": []})
        assert step.status == want["status"], f"{step.name}: {step.status} {step.changes} {step.note}"
        if "changes" in want:
            assert list(step.changes) == want["changes"], step.name
        for fragment in want.get("note_contains", []):
            assert fragment in step.note, (step.name, step.note)
        for fragment in want.get("script_contains", []):
            scripts = "\n".join(a.script for a in step.actions if isinstance(a, Shell))
            assert fragment in scripts, (step.name, fragment)
        if "api_calls" in want:
            calls = [[a.method, list(a.args), dict(a.kwargs)] for a in step.actions if isinstance(a, ApiCall)]
            assert calls == want["api_calls"], step.name
        if "waits" in want:
            assert any(isinstance(a, WaitRunning) for a in step.actions) is want["waits"], step.name
    assert plan.changes == case.get("total_changes", plan.changes)
