"""Mailcow's business logic for the endpoints mailfleet uses, on a plain-dict state.

Each handler takes the database state (``db``: what MariaDB holds), the Redis state
(``redis``: DKIM keys) and the request, mutates the state in place and returns what
``json_api.php`` would print. The semantics follow ``functions.mailbox.inc.php``,
``functions.dkim.inc.php`` and ``functions.transports.inc.php`` (see
shared/reference/mailcow.md §1): business errors are entries with ``"type": "danger"`` (HTTP
200), empty GET results are ``{}``, add/relayhost/alias/transport return no id.

No I/O: key generation, password hashing and the clock are injected through ``Deps``.

The rules live in one module per object kind; this module keeps the entry points (the
dispatch table, ``run_write``, and every name it had before the split, re-exported):
``rules_domains``, ``rules_mailboxes``, ``rules_aliases``, ``rules_dkim``,
``rules_relayhosts``, ``rules_transports``, ``rules_mta_sts``, and ``rules_common`` for the
state's shape, ``Deps`` and the helpers they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .rules_aliases import add_alias, delete_alias, edit_alias, get_alias
from .rules_common import MIB, SECRET_FIELDS, Deps, Entry, State, _entry, new_state, valid_domain
from .rules_dkim import add_dkim, delete_dkim, get_dkim, import_dkim
from .rules_domains import DOMAIN_TEMPLATE, add_domain, delete_domain, edit_domain, get_domain
from .rules_mailboxes import add_mailbox, delete_mailbox, edit_mailbox, get_mailbox
from .rules_mta_sts import add_mta_sts, edit_mta_sts
from .rules_relayhosts import add_relayhost, delete_relayhost, edit_relayhost, get_relayhost
from .rules_transports import add_transport, delete_transport, edit_transport, get_transport

__all__ = [
    "DOMAIN_TEMPLATE", "MIB", "SECRET_FIELDS", "WRITE_HANDLERS", "Deps", "Entry", "State",
    "add_alias", "add_dkim", "add_domain", "add_mailbox", "add_mta_sts", "add_relayhost", "add_transport",
    "delete_alias", "delete_dkim", "delete_domain", "delete_mailbox", "delete_relayhost", "delete_transport",
    "edit_alias", "edit_domain", "edit_mailbox", "edit_mta_sts", "edit_relayhost", "edit_transport",
    "get_alias", "get_dkim", "get_domain", "get_mailbox", "get_relayhost", "get_transport",
    "import_dkim", "new_state", "run_write", "valid_domain",
]


# ---------------------------------------------------------------- dispatch tables

WRITE_HANDLERS: dict[tuple[str, str], Callable[..., list[Entry]]] = {
    ("add", "domain"): add_domain,
    ("edit", "domain"): edit_domain,
    ("delete", "domain"): delete_domain,
    ("add", "dkim"): add_dkim,
    ("add", "dkim_import"): import_dkim,
    ("delete", "dkim"): delete_dkim,
    ("add", "mailbox"): add_mailbox,
    ("edit", "mailbox"): edit_mailbox,
    ("delete", "mailbox"): delete_mailbox,
    ("add", "alias"): add_alias,
    ("edit", "alias"): edit_alias,
    ("delete", "alias"): delete_alias,
    ("add", "relayhost"): add_relayhost,
    ("edit", "relayhost"): edit_relayhost,
    ("delete", "relayhost"): delete_relayhost,
    ("add", "transport"): add_transport,
    ("edit", "transport"): edit_transport,
    ("delete", "transport"): delete_transport,
    ("add", "mta-sts"): add_mta_sts,
    ("edit", "mta-sts"): edit_mta_sts,
}


def run_write(action: str, category: str, db: State, redis: State, body: Any, deps: Deps) -> list[Entry] | None:
    """Run an add/edit/delete; None when Mailcow has no such route."""
    handler = WRITE_HANDLERS.get((action, category))
    if handler is None:
        return None
    if action == "add" and not isinstance(body, dict):
        return [_entry("danger", [category, action, body], "Cannot add item")]
    return handler(db, redis, body, deps)
