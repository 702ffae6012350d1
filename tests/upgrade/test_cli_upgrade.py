"""The command line's guards that act before any host is contacted, and the plan's rendering."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from mailfleet.cli.upgrade import plan_as_json, render_plan
from mailfleet.upgrade.plan import PlanRequest, plan_upgrade

from upgrade_fleets import all_need

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc


def _mailfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv" / "bin" / "mailfleet"), *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)


def test_a_new_rollout_is_refused_while_the_journal_holds_an_unfinished_one(tmp_path):
    journal = tmp_path / "j.jsonl"
    journal.write_text("\n".join(json.dumps(e) for e in [
        {"kind": "run", "run": "r1", "at": "2026-11-29T01:00:00+00:00", "state": "started", "target": "2026-09",
         "order": ["relay1", "mx1"], "from": {"relay1": "2026-07a", "mx1": "2026-07a"}},
        {"kind": "step", "run": "r1", "at": "2026-11-29T01:00:01+00:00", "host": "relay1", "step": "update",
         "state": "started", "head_before": "abc"},
    ]) + "\n")
    result = _mailfleet("upgrade", "--yes", "--now", "--inventory", "inventory/example.yaml", "--journal", str(journal))
    assert result.returncode == 1
    assert "unfinished rollout r1" in result.stderr
    assert "relay1 stopped inside step update" in result.stderr
    assert "mailfleet upgrade --resume" in result.stderr


def test_resume_without_an_unfinished_rollout_says_so(tmp_path):
    result = _mailfleet("upgrade", "--resume", "--inventory", "inventory/example.yaml",
                        "--journal", str(tmp_path / "none.jsonl"))
    assert result.returncode == 1 and "nothing to resume" in result.stderr


def test_plan_rendering_shows_local_and_utc_times(fleet):
    plan = plan_upgrade(PlanRequest(fleet, all_need(fleet), "2026-08", datetime(2026, 11, 26, 12, tzinfo=UTC)))
    text = render_plan(plan)
    assert "1. relay2" in text and "Sat 2026-11-28 02:00 Europe/Berlin (01:00 UTC)" in text
    data = plan_as_json(plan)
    assert data["starts_now"] is False
    assert data["hosts"][0]["start_local"] == "2026-11-28T02:00:00+01:00"
    assert [h["name"] for h in data["hosts"]][-1] == "mon1"
