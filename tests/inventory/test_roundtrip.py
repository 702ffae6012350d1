"""Writing back keeps the user's file: the diff of a change is exactly the change."""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from mailfleet.errors import InventoryError
from mailfleet.inventory import load_valid_inventory, save_inventory
from mailfleet.inventory.merge import merge_domain, merge_host_key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    shutil.copy(REPO / "inventory" / "example.yaml", path)
    return path


def added_and_removed(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    return added, removed


def test_load_change_save_changes_only_that(example: Path) -> None:
    before = example.read_text()
    inv = load_valid_inventory(example)
    merge_domain(inv.doc, "new.example", {"inbound": {"mx1": 10, "mx2": 20}, "relay": "relay1",
                                          "dkim": {"selector": "s2026"}, "mailboxes": {"postmaster": {}}})
    save_inventory(inv)
    after = example.read_text()
    added, removed = added_and_removed(before, after)
    assert removed == []
    assert added == [
        "  new.example:",
        "    inbound: {mx1: 10, mx2: 20}",
        "    relay: relay1",
        "    dkim: {selector: s2026}",
        "    mailboxes: {postmaster: {}}",
    ]
    assert "# Internationalised names are fine" in after
    assert load_valid_inventory(example).fleet.domain("new.example").inbound_hosts == ("mx1", "mx2")


def test_host_key_change_is_one_line(example: Path) -> None:
    before = example.read_text()
    inv = load_valid_inventory(example)
    new_key = inv.fleet.hosts["mx2"].host_key
    assert merge_host_key(inv.doc, "mx1", new_key)
    save_inventory(inv)
    added, removed = added_and_removed(before, example.read_text())
    assert len(added) == 1 and len(removed) == 1
    assert added[0].strip() == f"host_key: {new_key}"


def test_invalid_change_is_refused_and_file_untouched(example: Path) -> None:
    before = example.read_text()
    stat_before = example.stat()
    inv = load_valid_inventory(example)
    merge_domain(inv.doc, "broken.example", {"inbound": {"relay1": 10}})
    with pytest.raises(InventoryError) as err:
        save_inventory(inv)
    assert "lacks the 'inbound' role" in str(err.value)
    assert example.read_text() == before
    assert example.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert [p for p in os.listdir(example.parent) if p.endswith(".tmp")] == []


def test_save_keeps_file_mode(example: Path) -> None:
    example.chmod(0o640)
    inv = load_valid_inventory(example)
    merge_host_key(inv.doc, "mx1", inv.fleet.hosts["mx2"].host_key)
    save_inventory(inv)
    assert example.stat().st_mode & 0o777 == 0o640


def test_first_domain_into_an_empty_flow_mapping_is_block_style(tmp_path: Path) -> None:
    text = (REPO / "inventory" / "example.yaml").read_text()
    head = text[: text.index("\ndomains:")] + "\ndomains: {}\n"
    path = tmp_path / "lab.yaml"
    path.write_text(head)
    inv = load_valid_inventory(path)
    merge_domain(inv.doc, "a.example", {"inbound": {"mx1": 10}})
    save_inventory(inv)
    assert path.read_text().endswith("domains:\n  a.example:\n    inbound: {mx1: 10}\n")
