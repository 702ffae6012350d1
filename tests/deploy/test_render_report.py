"""The plan as a table of host, step, change; the summary; the contract JSON."""

from __future__ import annotations

import json

from mailfleet.deploy.model import HostOutcome, PlannedStep
from mailfleet.deploy.render_report import render_json, render_summary, render_table

OUTCOMES = {
    "mx1": HostOutcome("mx1", True, [PlannedStep("mailcow.conf", "mailcow_conf", "change", ("SKIP_FTS: 'y' -> 'n'",)),
                                     PlannedStep("compose", "compose", "deferred", ("docker compose pull, up -d",)),
                                     PlannedStep("hostname", "hostname", "ok")]),
    "relay1": HostOutcome("relay1", True, [PlannedStep("mailcow checkout", "mailcow_checkout", "warning",
                                                       note="Mailcow is at 2026-09, the inventory pins 2026-07a")]),
    "tx1": HostOutcome("tx1", False, error="tx1: HOST KEY CHANGED. 10.0.0.3 presented SHA256:abc\nmore"),
    "mon1": HostOutcome("mon1", True, [PlannedStep("hostname", "hostname", "ok")]),
}


def test_table_rows() -> None:
    table = render_table(OUTCOMES, check=True).splitlines()
    assert table[0].split() == ["HOST", "STEP", "WOULD", "CHANGE"]
    body = [" ".join(line.split()) for line in table[1:]]
    assert body == [
        "mx1 mailcow.conf SKIP_FTS: 'y' -> 'n'",
        "mx1 compose (later) docker compose pull, up -d",
        "relay1 mailcow checkout WARNING: Mailcow is at 2026-09, the inventory pins 2026-07a",
        "tx1 - FAILED: tx1: HOST KEY CHANGED. 10.0.0.3 presented SHA256:abc",
        "mon1 - no changes",
    ]


def test_summary_shows_every_host_and_the_verdict() -> None:
    lines = render_summary(OUTCOMES, check=False).splitlines()
    assert lines == [
        "mx1: ok, changed 2 item(s)",
        "relay1: ok, nothing to change (1 warning, see above)",
        "tx1: FAILED - tx1: HOST KEY CHANGED. 10.0.0.3 presented SHA256:abc\nmore".splitlines()[0],
        "more",
        "mon1: ok, nothing to change",
        "4 host(s): 3 ok, 1 failed; 2 change(s) made",
    ]
    converged = {"mon1": OUTCOMES["mon1"]}
    assert render_summary(converged, check=True).endswith("zero changes - every host is converged")


def test_json_contract() -> None:
    data = json.loads(json.dumps(render_json(OUTCOMES)))
    assert set(data) == {"hosts"}
    assert data["hosts"]["mx1"]["ok"] is True and data["hosts"]["mx1"]["changes"] == 2
    assert data["hosts"]["mx1"]["steps"][0] == {"name": "mailcow.conf", "step": "mailcow_conf", "status": "change",
                                                "changed": True, "changes": ["SKIP_FTS: 'y' -> 'n'"]}
    assert data["hosts"]["tx1"] == {"ok": False, "changes": 0, "steps": [],
                                    "error": "tx1: HOST KEY CHANGED. 10.0.0.3 presented SHA256:abc\nmore"}
