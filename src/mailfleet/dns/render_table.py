"""A record set for people (a table grouped by importance, each record with its reason) and for
scripts (JSON). Pure."""

from __future__ import annotations

from typing import Any

from mailfleet.dns.model import LEVELS, RecordSet


def render_table(records: RecordSet) -> str:
    origin = records.domain
    title = records.display_name if records.display_name == origin else f"{records.display_name} ({origin})"
    lines = [f"{title}: {len(records.records)} records"]
    width = min(max((len(r.relative_to(origin) or r.name + ".") for r in records.records), default=10), 28)
    for level in LEVELS:
        group = [r for r in records.records if r.level == level]
        if not group:
            continue
        lines += ["", level.upper()]
        for record in group:
            owner = record.relative_to(origin) or record.name + "."
            mark = " (pending)" if record.pending else ""
            lines.append(f"  {owner:<{width}}  {record.rtype:<5}  {record.value}{mark}")
            lines.append(f"      why: {record.why}")
    if records.notes:
        lines += ["", "NOTES"] + [f"  - {n}" for n in records.notes]
    return "\n".join(lines) + "\n"


def render_json(records: RecordSet) -> dict[str, Any]:
    origin = records.domain
    return {
        "domain": origin,
        "records": [{"name": r.name, "type": r.rtype, "value": r.value, "ttl": r.ttl, "why": r.why,
                     "level": r.level, "kind": r.kind, "pending": r.pending,
                     "in_zone": r.relative_to(origin) is not None} for r in records.records],
        "notes": list(records.notes),
    }
