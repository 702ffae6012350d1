"""Render the bulk-transport configuration of one Mailcow host, the Mailcow way.

Pure: takes the fleet, a host and the template texts (``templates.load_templates`` reads them),
returns text. What lands where (paths relative to the Mailcow install dir):

* ``data/conf/postfix/mailfleet_bulk_senders.regexp``: sender -> ``bulk:<next hop>``
  (``/opt/postfix/conf/...`` inside postfix-mailcow; untracked in Mailcow's checkout, which
  ``update.sh`` leaves alone).
* ``data/conf/postfix/mailfleet_bulk_headers.regexp``: header rule -> ``FILTER bulk:<next hop>``.
* ``data/hooks/postfix/mailfleet-bulk-transport.sh``: the hook that adds the ``bulk`` service to
  master.cf at every start (deploy must make it executable, 0755).
* :func:`render_extra_cf`: the block deploy's ``extra.cf`` template includes verbatim. Mailcow
  reads only ``extra.cf`` (no include directory), so the main.cf lines cannot be a file of ours.

Every choice that a measured trap depends on is made here, not left to the operator: the bulk
window is always set explicitly (never the default 20), Mailcow's sender map is re-stated after
ours, and header FILTERs run in the submission cleanup service, not in ``smtp_header_checks``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import jinja2

from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Fleet, Host
from mailfleet.priority.classify import HostBulkRules, plan_host_rules
from mailfleet.priority.rules import applies_backoff, check_concurrency, initial_concurrency, source_address_host

SENDERS_PATH = "data/conf/postfix/mailfleet_bulk_senders.regexp"
HEADERS_PATH = "data/conf/postfix/mailfleet_bulk_headers.regexp"
HOOK_PATH = "data/hooks/postfix/mailfleet-bulk-transport.sh"
EXTRA_CF_TEMPLATE = "data/conf/postfix/mailfleet_bulk.extra.cf.j2"
# Mailcow's own value of the parameter we prepend to (data/conf/postfix/main.cf).
MAILCOW_SENDER_MAP = "proxy:mysql:/opt/postfix/conf/sql/mysql_sender_dependent_default_transport_maps.cf"
EXECUTABLE_PATHS = frozenset({HOOK_PATH})


class PriorityConfigError(MailfleetError):
    """The inventory's bulk rules or limits would render a configuration that backfires."""


def _host(fleet: Fleet, host: Host | str) -> Host:
    name = host if isinstance(host, str) else host.name
    if name not in fleet.hosts:
        raise PriorityConfigError(f"no host {name!r} in the inventory; hosts are {', '.join(fleet.hosts)}")
    return fleet.hosts[name]


def _rules(fleet: Fleet, host: Host) -> HostBulkRules:
    rules = plan_host_rules(fleet, host.name)
    problems = list(rules.problems)
    problems += [f"{f.message} ({f.hint})" for f in check_concurrency(fleet.settings.bulk_transport)
                 if f.level == "error"]
    if problems:
        raise PriorityConfigError(
            f"the bulk transport for {host.name} is not rendered; nothing was changed:\n  - " + "\n  - ".join(problems)
            + "\nFix the inventory and run `mailfleet inventory.check`, then deploy again.")
    return rules


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, autoescape=False)


def _context(fleet: Fleet, host: Host, rules: HostBulkRules) -> dict[str, object]:
    settings = fleet.settings.bulk_transport
    bind_parameter = ""
    if settings.source_address and source_address_host(fleet) == host.name:
        version = ipaddress.ip_address(settings.source_address).version
        bind_parameter = "smtp_bind_address6" if version == 6 else "smtp_bind_address"
    return {
        "host": host.name,
        "senders": rules.senders,
        "headers": rules.headers,
        "action": rules.header_action,
        "settings": settings,
        "initial_concurrency": initial_concurrency(settings),
        "backoff": applies_backoff(fleet, host.name),
        "mailcow_sender_map": MAILCOW_SENDER_MAP,
        "bind_parameter": bind_parameter,
        "source_address": settings.source_address or "",
        "relay_cleanup": host.has_role("outbound-relay") and not host.has_role("inbound"),
    }


def render_files(fleet: Fleet, host: Host | str, templates: Mapping[str, str] | None = None) -> dict[str, str]:
    """Files to place into the host's Mailcow checkout: relative path -> content.

    Empty for a host that runs no Mailcow. Raises :class:`PriorityConfigError` (with every
    problem) instead of rendering a configuration that would backfire."""
    entry = _host(fleet, host)
    if not entry.runs_mailcow:
        return {}
    texts = templates if templates is not None else _default_templates()
    rules = _rules(fleet, entry)
    context = _context(fleet, entry, rules)
    env = _environment()
    return {
        SENDERS_PATH: env.from_string(texts[SENDERS_PATH + ".j2"]).render(context),
        HEADERS_PATH: env.from_string(texts[HEADERS_PATH + ".j2"]).render(context),
        HOOK_PATH: env.from_string(texts[HOOK_PATH + ".j2"]).render(context),
    }


def render_extra_cf(fleet: Fleet, host: Host | str, templates: Mapping[str, str] | None = None) -> str:
    """The block deploy's ``extra.cf`` includes verbatim (it must come after any other
    ``sender_dependent_default_transport_maps`` line there). Empty for a host without Mailcow."""
    entry = _host(fleet, host)
    if not entry.runs_mailcow:
        return ""
    texts = templates if templates is not None else _default_templates()
    rules = _rules(fleet, entry)
    return _environment().from_string(texts[EXTRA_CF_TEMPLATE]).render(_context(fleet, entry, rules))


def _default_templates() -> Mapping[str, str]:
    from mailfleet.priority.templates import load_templates  # reads the repository's mailcow/ tree

    return load_templates()
