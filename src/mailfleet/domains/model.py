"""What domain pushes work with: a host's observed Mailcow state, the operations that bring it to
the inventory's state, and conflicts that stop a push. Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DkimState:
    """What ``get/dkim/<domain>`` says: the selector and the public key (base64 SPKI)."""

    selector: str
    public_b64: str


@dataclass(frozen=True)
class AliasState:
    id: int
    goto: tuple[str, ...]


@dataclass(frozen=True)
class RelayhostState:
    id: int
    hostname: str


@dataclass(frozen=True)
class HostState:
    """One Mailcow host as read through its API, limited to what domain pushes compare."""

    host: str
    domains: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # ascii -> get/domain row
    dkim: Mapping[str, DkimState | None] = field(default_factory=dict)  # ascii -> key (None: no key)
    mailboxes: frozenset[str] = frozenset()  # local@ascii, lower case
    aliases: Mapping[str, AliasState] = field(default_factory=dict)  # address -> alias
    relayhosts: tuple[RelayhostState, ...] = ()
    mta_sts: Mapping[str, str] = field(default_factory=dict)  # ascii -> policy id mailfleet pushed
    other_domains: tuple[str, ...] = ()  # domains on the host outside the ones asked about


@dataclass(frozen=True)
class Op:
    """One change on one host. ``kind`` names what ``apply`` does; ``params`` never hold
    secrets (keys and passwords are looked up at apply time), so an Op can always be printed."""

    host: str
    domain: str  # ascii
    kind: str  # import_dkim | add_domain | add_mailbox | add_alias | edit_alias | wire_relayhost | mta_sts
    what: str  # for people: "import DKIM key s2026 (sha256:...)"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Conflict:
    """A state mailfleet will not overwrite on its own; the push of this domain stops."""

    host: str
    domain: str
    message: str


@dataclass(frozen=True)
class HostPlan:
    host: str
    ops: tuple[Op, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = ()
