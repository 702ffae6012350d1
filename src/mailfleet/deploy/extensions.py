"""Step kinds contributed by other components (the monitoring role), registered in one place.

The deploy core keeps its tables (``STEP_KINDS``/``PHASES`` in ``parse_playbook``, ``PLANNERS`` in
``plan_steps``); a component adds a kind with ``register_step_kind``, giving what the core
needs for it: parameters, phase, planner, and optionally the facts it reads and the local
sources (rendered files) it plans against. The core calls ``load_extensions()`` before
parsing playbooks, ``extension_facts`` when listing facts and ``extension_sources`` when
loading a host's sources. Added for the monitoring role (src/mailfleet/monitoring/).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailfleet.deploy.facts import Fact
from mailfleet.deploy.model import PlaybookStep
from mailfleet.deploy.parse_playbook import PHASES, STEP_KINDS
from mailfleet.deploy.plan_steps import PLANNERS, StepPlanner
from mailfleet.inventory.model import Fleet, Host

# Modules that register step kinds when imported.
EXTENSION_MODULES = ("mailfleet.monitoring.load_deploy",)

FactsFor = Callable[[Host, Fleet, Sequence[PlaybookStep]], list[Fact]]
SourcesFor = Callable[[PlaybookStep, Host, Any], dict[str, str]]  # (step, host, Inventory)


@dataclass(frozen=True)
class StepKind:
    kind: str
    allowed: frozenset[str]
    required: frozenset[str]
    phase: int
    planner: StepPlanner
    facts: FactsFor | None = None
    sources: SourcesFor | None = None


EXTENSIONS: dict[str, StepKind] = {}


def register_step_kind(spec: StepKind) -> None:
    existing = EXTENSIONS.get(spec.kind)
    if spec.kind in STEP_KINDS and existing is None:
        raise ValueError(f"step kind {spec.kind!r} is a core kind; pick another name")
    EXTENSIONS[spec.kind] = spec
    STEP_KINDS[spec.kind] = (spec.allowed, spec.required)
    PHASES[spec.kind] = spec.phase
    PLANNERS[spec.kind] = spec.planner


def load_extensions() -> None:
    for name in EXTENSION_MODULES:
        importlib.import_module(name)


def extension_facts(host: Host, fleet: Fleet, steps: Sequence[PlaybookStep]) -> list[Fact]:
    facts: list[Fact] = []
    seen: set[str] = set()
    for kind in dict.fromkeys(step.kind for step in steps):
        spec = EXTENSIONS.get(kind)
        if spec is None or spec.facts is None:
            continue
        for fact in spec.facts(host, fleet, steps):
            if fact.name not in seen:
                seen.add(fact.name)
                facts.append(fact)
    return facts


def extension_sources(step: PlaybookStep, host: Host, inv: Any) -> dict[str, str] | None:
    spec = EXTENSIONS.get(step.kind)
    if spec is None or spec.sources is None:
        return None
    return spec.sources(step, host, inv)
