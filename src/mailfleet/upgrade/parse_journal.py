"""Read an upgrade journal back: what each run did, where it stopped, who was down when.

The journal is JSON lines, append-only (journal.py writes it). Each line is one event:

* ``{"kind": "run", "run": ID, "state": "started", "target", "order", "from", "at"}`` opens a run;
  later ``run`` lines move it to ``paused``, ``failed``, ``done``, ``resumed`` or ``abandoned``.
* ``{"kind": "step", "run", "host", "step", "state": "started"|"done"|"failed", "at", ...}``.
* ``{"kind": "host", "run", "host", "state": "done"|"failed"|"rolled-back"|"rollback-failed", "at"}``.

A step that was started and never ended means the controller stopped in the middle of it: the
replay reports it (``dangling``) so nobody has to guess which host is half-done.

Pure: lines in, state out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailfleet.upgrade.rules import DownInterval

# Steps of one host, in order. ``update`` is where Mailcow goes down; ``health`` passing (or a
# finished rollback) is where it is back.
STEPS = ("backup", "defer-bulk", "drain", "update", "health", "resume-bulk")
RELAY_ONLY_STEPS = ("defer-bulk", "drain", "resume-bulk")
FINISHED_RUN_STATES = ("done", "abandoned")


class JournalError(ValueError):
    """A journal line cannot be read; the message names the line."""


def steps_for(roles: Iterable[str]) -> tuple[str, ...]:
    relay = "outbound-relay" in roles
    return tuple(s for s in STEPS if relay or s not in RELAY_ONLY_STEPS)


@dataclass
class HostProgress:
    name: str
    status: str = "pending"          # pending | in-progress | done | failed | rolled-back | rollback-failed
    steps: dict[str, str] = field(default_factory=dict)  # step -> started | done | failed (current attempt)
    last_error: str | None = None
    head_before: str | None = None   # the commit the host was on when update.sh started

    def first_step_not_done(self, steps: Iterable[str]) -> str | None:
        return next((s for s in steps if self.steps.get(s) != "done"), None)


@dataclass
class RunState:
    run: str
    target: str
    order: list[str]
    from_versions: dict[str, str]
    started: datetime
    status: str = "running"          # running | paused | failed | done | abandoned
    roles: dict[str, list[str]] = field(default_factory=dict)
    hosts: dict[str, HostProgress] = field(default_factory=dict)
    dangling: list[tuple[str, str, datetime]] = field(default_factory=list)
    down: list[DownInterval] = field(default_factory=list)
    reason: str | None = None
    pin_on_success: bool = False
    host_minutes: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATES

    def next_host(self) -> str | None:
        return next((h for h in self.order if self.hosts[h].status != "done"), None)


def parse_lines(lines: Iterable[str], source: str = "journal") -> list[dict[str, Any]]:
    """Decode the journal; a torn last line (the controller died mid-write) is ignored, any other
    bad line is an error naming it."""
    entries: list[dict[str, Any]] = []
    lines = list(lines)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not line.endswith("\n"):
                break  # torn write at the very end: the step it described never happened
            raise JournalError(f"{source}:{number}: not a JSON journal entry ({exc.msg}); "
                               "the journal is damaged, move it aside and check the hosts by hand") from None
        if not isinstance(entry, dict) or "kind" not in entry or "run" not in entry:
            raise JournalError(f"{source}:{number}: entry lacks 'kind' or 'run'")
        entries.append(entry)
    return entries


def replay(entries: Iterable[Mapping[str, Any]]) -> list[RunState]:
    """Every run in the journal, oldest first, with each host's progress and down intervals."""
    runs: dict[str, RunState] = {}
    down_since: dict[tuple[str, str], datetime] = {}
    open_steps: dict[tuple[str, str, str], datetime] = {}
    for entry in entries:
        run_id = str(entry["run"])
        at = datetime.fromisoformat(str(entry["at"]))
        if entry["kind"] == "run":
            if entry["state"] == "started":
                runs[run_id] = RunState(run=run_id, target=str(entry["target"]), order=list(entry["order"]),
                                        from_versions=dict(entry.get("from", {})), started=at,
                                        roles={k: list(v) for k, v in entry.get("roles", {}).items()})
                runs[run_id].hosts = {h: HostProgress(h) for h in runs[run_id].order}
                runs[run_id].pin_on_success = bool(entry.get("pin_on_success", False))
                runs[run_id].host_minutes = entry.get("host_minutes")
            elif run_id in runs:
                runs[run_id].status = "running" if entry["state"] == "resumed" else str(entry["state"])
                runs[run_id].reason = entry.get("reason")
            continue
        state = runs.get(run_id)
        if state is None:
            continue
        host = str(entry["host"])
        progress = state.hosts.setdefault(host, HostProgress(host))
        if entry["kind"] == "step":
            step, step_state = str(entry["step"]), str(entry["state"])
            progress.steps[step] = step_state
            key = (run_id, host, step)
            if step_state == "started":
                open_steps[key] = at
                if entry.get("head_before"):
                    progress.head_before = str(entry["head_before"])
                progress.status = "in-progress"
                if step in ("update", "rollback") and (run_id, host) not in down_since:
                    down_since[(run_id, host)] = at
            else:
                open_steps.pop(key, None)
                if step_state == "failed":
                    progress.last_error = entry.get("error")
                if step == "health" and step_state == "done":
                    _close_down(state, down_since, run_id, host, at)
        elif entry["kind"] == "host":
            progress.status = str(entry["state"])
            if progress.status in ("done", "rolled-back"):
                _close_down(state, down_since, run_id, host, at)
            if progress.status in ("rolled-back", "failed", "rollback-failed"):
                progress.steps = {}   # a retry starts the host over (a fresh backup, a fresh drain)
                progress.head_before = None
    for (run_id, host), since in down_since.items():
        runs[run_id].down.append(DownInterval(host, since, None))
    for (run_id, host, step), since in open_steps.items():
        runs[run_id].dangling.append((host, step, since))
    return list(runs.values())


def _close_down(state: RunState, down_since: dict[tuple[str, str], datetime], run_id: str, host: str,
                at: datetime) -> None:
    since = down_since.pop((run_id, host), None)
    if since is not None:
        state.down.append(DownInterval(host, since, at))


def current_run(runs: list[RunState]) -> RunState | None:
    """The newest run, if it is unfinished (the one ``--resume`` continues)."""
    if runs and not runs[-1].finished:
        return runs[-1]
    return None
