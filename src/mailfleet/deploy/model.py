"""The data deploy works with: playbook steps, planned steps, actions, per-host outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "change", "deferred", "warning"]


@dataclass(frozen=True)
class PlaybookStep:
    """One entry of a playbook: a name the user reads, a step kind, its parameters."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # "playbooks/common.yaml:12"


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    steps: tuple[PlaybookStep, ...]
    source: str = ""


@dataclass(frozen=True)
class Shell:
    """A mutating shell fragment, run on the host inside the apply script (``set -eu``)."""

    script: str
    timeout: int = 600


@dataclass(frozen=True)
class WaitRunning:
    """Poll the Mailcow API until every container runs (effectful, read-only)."""

    timeout: int = 600


@dataclass(frozen=True)
class ApiCall:
    """One Mailcow API write: ``method`` names a ``MailcowClient`` method; ``ref`` lets a later
    call use the id an earlier call read back (``{"relayhost": "@relay1"}``)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    binds: str = ""  # store the returned id under this name


Action = Shell | WaitRunning | ApiCall


@dataclass(frozen=True)
class PlannedStep:
    """What one playbook step would do on one host."""

    name: str
    kind: str
    status: Status
    changes: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    note: str = ""
    # Paths (relative to the Mailcow install dir) this step rewrites; the compose step reads them.
    touched: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.status == "change"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "step": self.kind, "status": self.status,
                               "changed": self.changed, "changes": list(self.changes)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class HostPlan:
    host: str
    steps: tuple[PlannedStep, ...]

    @property
    def changes(self) -> int:
        """Number of change lines across steps (what ``--json`` reports as ``changes``)."""
        return sum(len(step.changes) for step in self.steps if step.status in ("change", "deferred"))

    @property
    def deferred(self) -> bool:
        return any(step.status == "deferred" for step in self.steps)

    @property
    def pending(self) -> tuple[PlannedStep, ...]:
        return tuple(step for step in self.steps if step.status == "change")


@dataclass
class HostOutcome:
    """What happened on one host: the steps as planned/applied, or the error that stopped it."""

    host: str
    ok: bool
    steps: list[PlannedStep] = field(default_factory=list)
    error: str = ""
    checked_only: bool = False
    rounds: int = 0

    @property
    def changes(self) -> int:
        return sum(len(step.changes) for step in self.steps if step.status in ("change", "deferred"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "changes": self.changes, "steps": [s.to_json() for s in self.steps]}
        if self.error:
            out["error"] = self.error
        return out
