"""What the static report shows: the dashboards' panels, each with the rows its query returned."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailfleet.monitoring.parse_panels import PanelQuery


@dataclass(frozen=True)
class PanelResult:
    query: PanelQuery
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


@dataclass(frozen=True)
class Section:
    """One store's views: ``kind`` is ``dmarc`` or ``mailflow``."""

    kind: str
    db: str
    first: float | None  # epoch seconds of the oldest and newest data in the range
    last: float | None
    panels: dict[int, PanelResult] = field(default_factory=dict)  # by panel id

    def panel(self, panel_id: int) -> PanelResult | None:
        return self.panels.get(panel_id)


@dataclass(frozen=True)
class Report:
    generated_at: float
    start: int
    end: int
    days: int | None  # None: everything in the stores
    dmarc: Section | None
    mailflow: Section | None
