"""Playbooks: ordered, named steps with parameters; every mistake reported at once with its line."""

from __future__ import annotations

import pytest

from mailfleet.deploy.parse_playbook import PlaybookError, merge_playbooks, parse_playbook
from mailfleet.deploy.sources import load_playbooks


def test_the_repository_playbooks_are_valid() -> None:
    books = load_playbooks()
    assert {"common", "mailcow", "inbound", "outbound-relay", "monitoring"} <= set(books)


def test_every_problem_is_reported_with_its_line() -> None:
    text = """name: bad
steps:
  - name: one
    step: packages
  - name: two
    step: pakages
    params: {}
  - name: three
    step: compose
    params: {pul: true}
    when: "x"
"""
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, "bad.yaml")
    message = str(info.value)
    assert "bad.yaml:3: step 'one' (packages) needs parameter 'packages'" in message
    assert "bad.yaml:5: unknown step kind 'pakages'" in message
    assert "bad.yaml:8: step 'three' (compose) has no parameter 'pul'" in message
    assert "no loops or conditions" in message


def test_phase_order_puts_role_files_before_compose_and_api_last() -> None:
    books = load_playbooks()
    steps = merge_playbooks([books["common"], books["mailcow"], books["outbound-relay"], books["inbound"]])
    names = [s.name for s in steps]
    assert names.index("relay trust") < names.index("compose") < names.index("containers running") < names.index("relayhosts")
    assert names[0] == "base packages"
