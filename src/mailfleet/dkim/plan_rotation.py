"""Decide the next step of a DKIM key rotation. Pure: state, clock and DNS visibility in.

Mailcow signs a domain with one key at a time, so a rotation publishes the new key first,
switches signing once DNS serves it (a receiver must never meet a signature whose key it
cannot fetch), and keeps the old record for a grace period (mail signed before the switch
may still be queued or re-checked) before it is retired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailfleet.dkim.rotation import RotationState
from mailfleet.inventory.rules_names import check_selector

DEFAULT_GRACE = timedelta(days=7)


@dataclass(frozen=True)
class RotationStep:
    kind: str  # start | wait_dns | switch | wait_retire | retire
    message: str
    new_selector: str = ""
    old_selector: str = ""


def next_selector(current: str, now: datetime, taken: set[str] | None = None) -> str:
    """``s`` + year and month (``s202611``), with a letter appended when that is taken."""
    taken = (taken or set()) | {current}
    base = f"s{now:%Y%m}"
    if base not in taken:
        return base
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if base + letter not in taken:
            return base + letter
    raise ValueError("no free selector this month")


def plan_rotation(state: RotationState | None, current_selector: str, now: datetime, *,
                  requested_selector: str | None = None, new_visible: bool = False,
                  grace: timedelta = DEFAULT_GRACE) -> RotationStep:
    if state is None:
        selector = check_selector(requested_selector) if requested_selector else next_selector(current_selector, now)
        if selector == current_selector:
            raise ValueError(f"the new selector must differ from the current one ({current_selector})")
        return RotationStep("start", f"generate a new key under selector {selector} and publish it next to "
                            f"{current_selector}; signing stays on {current_selector}", selector, current_selector)
    if requested_selector and requested_selector != state.new_selector:
        raise ValueError(f"a rotation to {state.new_selector} is under way (phase {state.phase}); finish it first")
    if state.phase == "published":
        if not new_visible:
            return RotationStep("wait_dns", f"DNS does not serve {state.new_selector}._domainkey yet; publish the record "
                                "and run dkim.rotate again (signing stays on the old key)",
                                state.new_selector, state.old_selector)
        return RotationStep("switch", f"DNS serves {state.new_selector}; every signing host switches to it, "
                            f"{state.old_selector} stays published", state.new_selector, state.old_selector)
    switched = state.switched_time() or now
    if now - switched < grace:
        until = switched + grace
        return RotationStep("wait_retire", f"signing with {state.new_selector} since {switched:%Y-%m-%d %H:%M} UTC; "
                            f"keep {state.old_selector} published until {until:%Y-%m-%d %H:%M} UTC, then run "
                            "dkim.rotate again", state.new_selector, state.old_selector)
    return RotationStep("retire", f"retire {state.old_selector}: remove its record from DNS",
                        state.new_selector, state.old_selector)
