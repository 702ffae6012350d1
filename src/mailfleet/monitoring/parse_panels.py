"""Read panels and their SQL out of a dashboard, and expand Grafana's macros the way it would.

Pure. Used by the tests (every panel's query against a real store) and by ``mailfleet report``
(the report shows the very queries Grafana shows). Only what the dashboards use is expanded:
Grafana's global ``$__from``/``$__to`` (epoch milliseconds, as frser-sqlite-datasource receives
them) and ``${name:sqlstring}``; anything else left in a query is an error, never silently wrong
SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailfleet.errors import MailfleetError

_SQLSTRING = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):sqlstring\}")
_LEFTOVER = re.compile(r"\$(__[A-Za-z]+|\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel_id: int
    title: str
    kind: str  # Grafana panel type: stat, timeseries, piechart, table
    sql: str
    columns: tuple[str, ...]
    time_series: bool
    unit: str
    description: str


def parse_panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every panel's (single) query, in dashboard order."""
    out = []
    for panel in dashboard.get("panels", []):
        targets = panel.get("targets") or []
        if len(targets) != 1:
            raise MailfleetError(f"dashboard {dashboard.get('uid')}: panel {panel.get('title')!r} has "
                                 f"{len(targets)} queries; mailfleet panels have exactly one")
        target = targets[0]
        out.append(PanelQuery(dashboard=str(dashboard.get("uid")), panel_id=int(panel["id"]),
                              title=str(panel["title"]), kind=str(panel["type"]), sql=str(target["queryText"]),
                              columns=tuple(target.get("mailfleetColumns", ())),
                              time_series=target.get("queryType") == "time series",
                              unit=str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")),
                              description=str(panel.get("description", ""))))
    return out


def parse_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Variable name -> the SQL that lists its values."""
    out = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable["query"]
        out[str(variable["name"])] = str(query["queryText"] if isinstance(query, dict) else query)
    return out


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_query(sql: str, start: int, end: int, variables: Mapping[str, Sequence[str]]) -> str:
    """``sql`` with the time range (epoch seconds) and variable values filled in, as Grafana would."""

    def values(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise MailfleetError(f"query uses ${{{name}}} but no value was given for it")
        chosen = list(variables[name])
        # Grafana expands an empty multi-value selection to nothing useful; NULL matches nothing.
        return ", ".join(sql_string(v) for v in chosen) if chosen else "NULL"

    text = sql.replace("$__from", str(int(start) * 1000)).replace("$__to", str(int(end) * 1000))
    text = _SQLSTRING.sub(values, text)
    leftover = _LEFTOVER.search(text)
    if leftover:
        raise MailfleetError(f"query keeps an unexpanded Grafana macro {leftover.group(0)!r}: {text[:120]}...")
    return text
