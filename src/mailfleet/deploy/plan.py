"""Plan one host: facts and inventory in, steps with their changes out. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from mailfleet.deploy.model import HostPlan, PlannedStep, PlaybookStep
from mailfleet.deploy.plan_steps import PLANNERS, PlanInput


def plan_host(steps: Sequence[PlaybookStep], inp: PlanInput) -> HostPlan:
    """Plan every step in order; each step sees the steps planned before it."""
    planned: list[PlannedStep] = []
    for step in steps:
        planned.append(PLANNERS[step.kind](step, inp, tuple(planned)))
    return HostPlan(inp.host.name, tuple(planned))


def playbooks_for(roles: Sequence[str], runs_mailcow: bool) -> list[str]:
    """Playbook names a host gets, in order: the common bootstrap, Mailcow's, then one per role."""
    names = ["common"]
    if runs_mailcow:
        names.append("mailcow")
    names += [role for role in roles]
    return names
