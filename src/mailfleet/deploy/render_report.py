"""Show a deploy: the plan as a table of host, step, change; a summary line per host. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailfleet.deploy.model import HostOutcome


def render_json(outcomes: Mapping[str, HostOutcome]) -> dict[str, Any]:
    return {"hosts": {name: outcome.to_json() for name, outcome in outcomes.items()}}


def render_table(outcomes: Mapping[str, HostOutcome], *, check: bool) -> str:
    rows: list[tuple[str, str, str]] = []
    for name, outcome in outcomes.items():
        shown = False
        for step in outcome.steps:
            if step.status in ("change", "deferred"):
                prefix = "(later) " if step.status == "deferred" else ""
                for line in step.changes:
                    rows.append((name, step.name, prefix + line))
                    shown = True
            elif step.status == "warning":
                rows.append((name, step.name, "WARNING: " + step.note))
                shown = True
        if not outcome.ok:
            rows.append((name, "-", "FAILED: " + outcome.error.splitlines()[0]))
        elif not shown:
            rows.append((name, "-", "no changes"))
    head = ("HOST", "STEP", "WOULD CHANGE" if check else "CHANGE")
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) if rows else len(head[i]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines += [f"{h:<{widths[0]}}  {s:<{widths[1]}}  {c}" for h, s, c in rows]
    return "\n".join(lines)


def render_summary(outcomes: Mapping[str, HostOutcome], *, check: bool) -> str:
    lines = []
    for name, outcome in outcomes.items():
        if not outcome.ok:
            lines.append(f"{name}: FAILED - {outcome.error}")
        else:
            warnings = sum(1 for step in outcome.steps if step.status == "warning")
            tail = f" ({warnings} warning{'s' if warnings != 1 else ''}, see above)" if warnings else ""
            if outcome.changes:
                verb = "would change" if check else "changed"
                lines.append(f"{name}: ok, {verb} {outcome.changes} item(s){tail}")
            else:
                lines.append(f"{name}: ok, nothing to change{tail}")
    failed = sum(1 for o in outcomes.values() if not o.ok)
    total = sum(o.changes for o in outcomes.values() if o.ok)
    verdict = f"{len(outcomes)} host(s): {len(outcomes) - failed} ok, {failed} failed; "
    if total == 0:
        verdict += "zero changes" + ("" if failed else " - every host is converged")
    else:
        verdict += f"{total} change(s) {'planned' if check else 'made'}"
    lines.append(verdict)
    return "\n".join(lines)
