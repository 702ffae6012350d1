"""``dkim.rotate``: carry out the next rotation step for one domain (I/O).

Steps (see ``plan_rotation``): start (new key saved under a new selector, state written, the
new record shown for publishing); switch (once DNS serves it: every signing host imports the
new key, then the inventory's selector moves); retire (after the grace period the old record
leaves the expected set). Each run does at most one step; a failed switch leaves the state as
it was, so the next run retries it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailfleet.dkim.keys import DkimKey, load_key, new_key, save_key
from mailfleet.dkim.plan_rotation import DEFAULT_GRACE, RotationStep, plan_rotation
from mailfleet.dkim.render_key import render_dkim_txt
from mailfleet.dkim.rotation import RotationState, load_rotation, remove_rotation, save_rotation
from mailfleet.domains.merge_selector import merge_dkim_selector
from mailfleet.domains.push import ClientOpener, default_opener
from mailfleet.errors import MailfleetError
from mailfleet.inventory.load import Inventory, save_inventory
from mailfleet.inventory.model import Domain, Host
from mailfleet.ssh import run_on_hosts

# (record name, expected TXT value) -> does DNS serve it?
Visibility = Callable[[str, str], bool]


@dataclass
class RotationResult:
    step: RotationStep
    done: list[str] = field(default_factory=list)
    host_errors: dict[str, str] = field(default_factory=dict)
    record: tuple[str, str] | None = None  # the record to publish (start)


def _switch_host(inv: Inventory, domain: Domain, key: DkimKey, opener: ClientOpener) -> Callable[[Host], str]:
    def work(host: Host) -> str:
        with opener(host, inv) as client:
            have = client.get_dkim(domain.ascii) or {}
            if "".join(str(have.get("pubkey") or "").split()) == key.public_b64 and \
                    have.get("dkim_selector") == key.selector:
                return "already signing with the new key"
            client.import_dkim(domain.ascii, selector=key.selector, private_key_pem=key.pem, overwrite=True)
            return f"now signs {domain.name} with {key.selector}"
    return work


def rotate_dkim(inv: Inventory, domain_name: str, now: datetime, visible: Visibility, *,
                selector: str | None = None, grace: timedelta = DEFAULT_GRACE, check: bool = False,
                opener: ClientOpener = default_opener) -> RotationResult:
    assert inv.fleet is not None
    domain = inv.fleet.domain(domain_name)
    if domain is None:
        raise MailfleetError(f"{domain_name!r} is not in {inv.path}; add it with `mailfleet add-domain` first")
    state = load_rotation(inv.secrets_dir, domain.ascii)
    new_visible = False
    if state is not None and state.phase == "published":
        pending = load_key(inv.secrets_dir, domain.ascii, state.new_selector)
        if pending is None:
            raise MailfleetError(f"the rotation of {domain.name} expects the key secrets/dkim/{domain.ascii}."
                                 f"{state.new_selector}.pem, which is missing; restore it or remove "
                                 f"secrets/dkim/{domain.ascii}.rotation.json and start again")
        new_visible = visible(f"{state.new_selector}._domainkey.{domain.ascii}", render_dkim_txt(pending.public_b64))
    try:
        step = plan_rotation(state, domain.dkim.selector, now, requested_selector=selector, new_visible=new_visible,
                             grace=grace)
    except ValueError as exc:
        raise MailfleetError(f"dkim.rotate {domain.name}: {exc}") from None
    result = RotationResult(step)
    if check or step.kind in ("wait_dns", "wait_retire"):
        return result
    if step.kind == "start":
        if load_key(inv.secrets_dir, domain.ascii, step.new_selector) is not None:
            raise MailfleetError(f"a key for selector {step.new_selector} already exists; pass --selector NAME")
        key = new_key(inv.secrets_dir, domain.ascii, step.new_selector, domain.dkim.key_size)
        save_key(key)
        save_rotation(inv.secrets_dir, RotationState(domain.ascii, step.old_selector, step.new_selector, "published",
                                                     now.isoformat()))
        result.record = (f"{step.new_selector}._domainkey.{domain.ascii}", render_dkim_txt(key.public_b64))
        result.done.append(f"generated {key.bits}-bit key {step.new_selector} ({key.path})")
        return result
    if step.kind == "switch":
        assert state is not None
        key = load_key(inv.secrets_dir, domain.ascii, state.new_selector)
        assert key is not None
        hosts = [inv.fleet.hosts[h] for h in domain.signing_hosts]
        outcomes = run_on_hosts(hosts, _switch_host(inv, domain, key, opener))
        for name, outcome in outcomes.items():
            if outcome.ok:
                result.done.append(f"{name}: {outcome.value}")
            else:
                result.host_errors[name] = outcome.error or "failed"
        if result.host_errors:
            return result  # state unchanged: the next run retries the hosts that failed
        if merge_dkim_selector(inv.doc, domain.name, state.new_selector):
            save_inventory(inv)
            result.done.append(f"inventory: {domain.name} signs with selector {state.new_selector}")
        save_rotation(inv.secrets_dir, RotationState(domain.ascii, state.old_selector, state.new_selector, "switched",
                                                     state.started_at, now.isoformat()))
        return result
    remove_rotation(inv.secrets_dir, domain.ascii)
    result.done.append(f"rotation finished; remove {step.old_selector}._domainkey.{domain.ascii} from DNS")
    return result
