"""Carry out a host's planned ops through its Mailcow API, in order, one at a time (I/O).

Order matters and is the plan's: the DKIM import comes before ``add/domain`` (which is sent with
``key_size: 0``), so Mailcow never generates a key of its own. A failure stops this host's
push at that op; what was done before stays done and is reported, and a rerun plans only
what is still missing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailfleet.dkim.keys import DkimKey
from mailfleet.domains.model import Op, RelayhostState
from mailfleet.domains.plan_push import find_relayhost
from mailfleet.domains.pushed import save_pushed_mta_sts
from mailfleet.errors import MailcowApiError, MailfleetError
from mailfleet.inventory.load import write_atomically
from mailfleet.inventory.model import Fleet
from mailfleet.mailcow.client import MailcowClient
from mailfleet.mailcow.parse_api import parse_id
from mailfleet.secrets import generate_token, resolve_secret

_PASSWORD_LOCK = threading.Lock()


@dataclass
class HostResult:
    host: str
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PushError(MailfleetError):
    """A host's push stopped at one op; carries what was done before it."""

    def __init__(self, message: str, result: HostResult) -> None:
        super().__init__(message)
        self.result = result


def mailbox_password(op: Op, base_dir: Path, secrets_dir: Path) -> str:
    """The inventory's password secret, else one generated once into the secrets folder (0600),
    shared by every inbound host of the domain and never printed."""
    ref = str(op.params.get("password_ref") or "")
    if ref:
        return resolve_secret(ref, base_dir)
    path = secrets_dir / "mailboxes" / f"{op.params['local_part']}@{op.domain}.password"
    with _PASSWORD_LOCK:  # hosts are pushed in parallel; both inbound hosts need the same password
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(path, generate_token(24) + "\n", mode=0o600)
        return resolve_secret(f"file:{path}", base_dir)


def _mta_sts(client: MailcowClient, op: Op, result: HostResult, state_dir: Path) -> bool:
    body = {"domain": op.domain, "version": "STSv1", "mode": op.params["mode"], "mx": ",".join(op.params["mx"]),
            "max_age": op.params["max_age"], "active": 1}
    try:
        client.post("add", "mta-sts", body)
    except MailcowApiError as exc:
        if "HTTP 404" in str(exc):
            result.warnings.append(f"{op.domain}: this Mailcow has no MTA-STS API (added in 2025-09), so the policy "
                                   "was not pushed; upgrade Mailcow or serve the policy yourself")
            return False
        if "exist" not in str(exc):
            raise
        # A policy is there already (pushed before our record of it, or changed): edit replaces it.
        client.edit("mta-sts", [op.domain], {k: v for k, v in body.items() if k != "domain"})
    save_pushed_mta_sts(state_dir, op.host, op.domain, op.params["policy_id"])
    return True


def _wire_relayhost(client: MailcowClient, fleet: Fleet, op: Op) -> None:
    relay = fleet.hosts[op.params["relay"]]
    existing = [RelayhostState(rid, str(r.get("hostname", ""))) for r in client.get_relayhosts()
                if (rid := parse_id(r.get("id"))) is not None]
    found = find_relayhost(existing, relay)
    relayhost_id = found.id if found else client.add_relayhost(op.params["nexthop"])
    client.edit_domain(op.domain, relayhost=str(relayhost_id))


def apply_ops(client: MailcowClient, fleet: Fleet, ops: Sequence[Op], keys: Mapping[str, DkimKey],
              base_dir: Path, secrets_dir: Path, result: HostResult) -> HostResult:
    state_dir = secrets_dir / "state"
    for op in ops:
        try:
            if op.kind == "import_dkim":
                key = keys[op.domain]
                client.import_dkim(op.domain, selector=op.params["selector"], private_key_pem=key.pem,
                                   overwrite=bool(op.params.get("overwrite")))
            elif op.kind == "add_domain":
                client.add_domain(op.domain, **op.params["attributes"])
            elif op.kind == "add_mailbox":
                client.add_mailbox(op.params["local_part"], op.domain,
                                   password=mailbox_password(op, base_dir, secrets_dir),
                                   quota_mb=op.params["quota_mb"], name=op.params.get("name") or "")
            elif op.kind == "add_alias":
                client.add_alias(op.params["address"], op.params["goto"])
            elif op.kind == "edit_alias":
                client.edit("alias", [str(op.params["id"])], {"goto": ",".join(op.params["goto"])})
            elif op.kind == "wire_relayhost":
                _wire_relayhost(client, fleet, op)
            elif op.kind == "mta_sts":
                if not _mta_sts(client, op, result, state_dir):
                    continue
            else:  # pragma: no cover - a planner bug
                raise MailfleetError(f"unknown op kind {op.kind!r}")
        except MailfleetError as exc:
            result.error = f"stopped at '{op.what}': {exc}"
            raise PushError(f"{op.host}: {result.error}", result) from None
        result.done.append(op.what)
    return result
