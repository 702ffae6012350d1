"""Plan one host: facts and inventory in, steps with their changes out. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from mailfleet.deploy.model import HostPlan, PlannedStep, PlaybookStep
from mailfleet.deploy.parse_playbook import PHASES
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


def applicable_now(plan: HostPlan) -> list[PlannedStep]:
    """The steps to apply in this round: every change planned with full knowledge.

    Deferred steps wait for the next round (after the facts are gathered again); steps after a
    deferred one in a later phase that depends on it are deferred by their planners already.
    """
    return [step for step in plan.steps if step.status == "change" or (step.actions and step.status == "ok")]


def phase_of(step: PlannedStep) -> int:
    return PHASES[step.kind]
