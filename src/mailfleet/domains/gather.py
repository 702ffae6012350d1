"""Read what a Mailcow host holds for the inventory's domains, through its API (I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mailfleet.domains.model import AliasState, DkimState, HostState, RelayhostState
from mailfleet.domains.pushed import load_pushed_mta_sts
from mailfleet.inventory.model import Domain
from mailfleet.mailcow.client import MailcowClient
from mailfleet.mailcow.parse_api import parse_id


def _goto(value: object) -> tuple[str, ...]:
    return tuple(sorted(t.strip().lower() for t in str(value or "").split(",") if t.strip()))


def gather_host_state(client: MailcowClient, host: str, domains: Sequence[Domain], state_dir: Path) -> HostState:
    wanted = {d.ascii for d in domains}
    rows = {str(r.get("domain_name", "")).lower(): r for r in client.get_domains()}
    dkim: dict[str, DkimState | None] = {}
    for name in sorted(wanted):
        answer = client.get_dkim(name)
        pub = "".join(str((answer or {}).get("pubkey") or "").split())
        dkim[name] = DkimState(str(answer.get("dkim_selector") or ""), pub) if answer and pub else None
    mailboxes = frozenset(str(m.get("username", "")).lower() for m in client.get_mailboxes()
                          if str(m.get("domain", "")).lower() in wanted)
    aliases: dict[str, AliasState] = {}
    for alias in client.get_aliases():
        address = str(alias.get("address", "")).lower()
        alias_id = parse_id(alias.get("id"))
        if address.rpartition("@")[2] in wanted and alias_id is not None:
            aliases[address] = AliasState(alias_id, _goto(alias.get("goto")))
    relayhosts = tuple(RelayhostState(rid, str(r.get("hostname", ""))) for r in client.get_relayhosts()
                       if (rid := parse_id(r.get("id"))) is not None)
    pushed: Mapping[str, str] = load_pushed_mta_sts(state_dir, host)
    return HostState(host=host, domains={k: v for k, v in rows.items() if k in wanted}, dkim=dkim,
                     mailboxes=mailboxes, aliases=aliases, relayhosts=relayhosts,
                     mta_sts={k: v for k, v in pushed.items() if k in wanted},
                     other_domains=tuple(sorted(k for k in rows if k not in wanted)))
