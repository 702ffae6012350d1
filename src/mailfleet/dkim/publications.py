"""Which DKIM keys a domain publishes right now: the inventory's selector (signing) plus, during
a rotation, the next or the previous one. Reads key files and rotation state (I/O)."""

from __future__ import annotations

from pathlib import Path

from mailfleet.dkim.keys import load_key
from mailfleet.dkim.rotation import load_rotation
from mailfleet.dns.records import DkimPublication
from mailfleet.inventory.model import Domain


def load_publications(secrets_dir: Path, domain: Domain) -> list[DkimPublication]:
    def public(selector: str) -> str | None:
        key = load_key(secrets_dir, domain.ascii, selector)
        return key.public_b64 if key else None

    active = domain.dkim.selector
    out = [DkimPublication(active, public(active), "active")]
    state = load_rotation(secrets_dir, domain.ascii)
    if state is not None:
        if state.phase == "published" and state.new_selector != active:
            out.append(DkimPublication(state.new_selector, public(state.new_selector), "next"))
        elif state.phase == "switched" and state.old_selector != active:
            out.append(DkimPublication(state.old_selector, public(state.old_selector), "previous"))
    return out
