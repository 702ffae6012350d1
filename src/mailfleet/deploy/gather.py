"""Gather a host's facts: one batched read-only script per round, then the API if it runs.

Nothing here changes a host: the fact commands are ``facts.py``'s read-only commands, and the
API is only read (``get/relayhost/all``, ``get/domain/all``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from mailfleet.deploy.facts import Fact
from mailfleet.deploy.parse_facts import parse_fact_output, render_fact_script
from mailfleet.deploy.remote import Remote
from mailfleet.errors import MailcowApiError, RemoteError

FACT_TIMEOUT = 120


# A fact round only reads, so a round cut off before its end marker is safe to run again;
# one retry covers a session dropped by a host that has just booted.
FACT_ATTEMPTS = 2


def gather_facts(remote: Remote, facts: Sequence[Fact]) -> dict[str, Any]:
    raw: dict[str, str] = {}
    for attempt in range(1, FACT_ATTEMPTS + 1):
        nonce = secrets.token_hex(8)
        script = render_fact_script({fact.name: fact.command for fact in facts}, nonce)
        result = remote.run(script, timeout=FACT_TIMEOUT)
        try:
            raw = parse_fact_output(result.stdout, nonce)
            break
        except ValueError as exc:
            if attempt < FACT_ATTEMPTS:
                continue
            tail = result.stderr.strip().splitlines()[-3:]
            raise RemoteError(f"{remote.name}: gathering facts failed twice: {exc} (exit {result.exit_code})"
                              + (f" ({' | '.join(tail)})" if tail else "")) from None
    parsed: dict[str, Any] = {}
    for fact in facts:
        try:
            parsed[fact.name] = fact.parse(raw.get(fact.name, ""))
        except (ValueError, KeyError, IndexError) as exc:
            raise RemoteError(f"{remote.name}: cannot read fact {fact.name!r}: {exc}") from None
    return parsed


def mailcow_running(facts: dict[str, Any]) -> bool:
    services = facts.get("services") or []
    states = facts.get("compose") or {}
    return bool(services) and all(states.get(s) == "running" for s in services) \
        and "BEGIN CERTIFICATE" in str(facts.get("cert", ""))


def gather_api_facts(remote: Remote) -> dict[str, Any] | None:
    """Relayhosts and domains as the host's Mailcow API reports them (None when it does not answer)."""
    try:
        api = remote.api()
        return {"relayhosts": api.get_relayhosts(), "domains": api.get_domains()}
    except MailcowApiError as exc:
        raise RemoteError(f"{remote.name}: Mailcow runs but its API does not answer: {exc}") from None
