"""Set a domain's DKIM selector in the round-trip inventory document. Pure (edits the tree it
is handed); everything else in the file stays as the user wrote it."""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap


def merge_dkim_selector(doc: Any, domain_key: str, selector: str) -> bool:
    """Return whether the document changed. ``domain_key`` is the name as written in the file."""
    entry = doc["domains"][domain_key]
    dkim = entry.get("dkim")
    if dkim is None:
        dkim = CommentedMap()
        dkim.fa.set_flow_style()
        entry["dkim"] = dkim
    if dkim.get("selector") == selector:
        return False
    dkim["selector"] = selector
    return True
