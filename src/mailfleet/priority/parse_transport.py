"""Read the entries of Postfix transport tables, to find the ones that would steal bulk mail.

Pure. ``transport_maps`` is a list of tables (``postconf -h transport_maps``); the kinds whose
contents are text mailfleet can read are parsed here: ``inline:{...}``, ``texthash:``/``hash:``/
``lmdb:``/``btree:`` source files (``key value``), and ``regexp:``/``pcre:`` files
(``/pattern/ result``, including ``if``/``endif`` blocks, whose inner lines count too). Tables
answered by a server (``mysql:``, ``proxy:mysql:``, ``ldap:``, ...) cannot be read here: they are
returned as unchecked, so the report can say where to look (Mailcow: Routing -> Transport maps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILE_KINDS = {"texthash", "hash", "lmdb", "btree", "cdb", "dbm", "regexp", "pcre"}


@dataclass(frozen=True)
class TableRef:
    kind: str  # "inline", "regexp", "mysql", ... (a proxy: prefix removed)
    spec: str  # the whole "kind:rest" as written
    path: str  # a file path, or "" for inline and server tables


def _split_top_level(text: str) -> list[str]:
    """Split on commas and whitespace outside ``{...}`` (Postfix's list syntax)."""
    items: list[str] = []
    depth, current = 0, []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        if depth == 0 and (char == "," or char.isspace()):
            if current:
                items.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        items.append("".join(current))
    return items


def parse_table_list(value: str) -> list[TableRef]:
    """``postconf -h transport_maps`` -> the tables it names, in lookup order."""
    refs: list[TableRef] = []
    for spec in _split_top_level(value.strip()):
        kind_part = spec[6:] if spec.startswith("proxy:") else spec
        kind, _, rest = kind_part.partition(":")
        refs.append(TableRef(kind=kind, spec=spec, path=rest if kind in FILE_KINDS else ""))
    return refs


def parse_inline(spec: str) -> list[tuple[str, str]]:
    """``inline:{ a=smtp:[x], { b = :[y] } }`` -> [(a, smtp:[x]), (b, :[y])]."""
    body = spec.partition("{")[2].rpartition("}")[0]
    entries: list[tuple[str, str]] = []
    for item in _split_top_level(body):
        item = item.strip()
        if item.startswith("{") and item.endswith("}"):
            item = item[1:-1]
        key, sep, value = item.partition("=")
        if sep and key.strip():
            entries.append((key.strip(), value.strip()))
    return entries


def parse_table_text(kind: str, text: str) -> list[tuple[str, str]]:
    """Entries of a file table: (key or /pattern/, result)."""
    entries: list[tuple[str, str]] = []
    logical: list[str] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0].isspace() and logical:
            logical[-1] += " " + raw.strip()
        else:
            logical.append(raw.strip())
    for line in logical:
        if kind in ("regexp", "pcre"):
            if re.match(r"^(if|endif)\b", line, re.IGNORECASE) or line.upper().startswith(("IF ", "ENDIF")):
                continue
            match = re.match(r"^!?(\S)(.*?)\1([a-zA-Z]*)\s+(.*)$", line)
            if match:
                entries.append((f"/{match.group(2)}/", match.group(4).strip()))
        else:
            parts = line.split(None, 1)
            if len(parts) == 2:
                entries.append((parts[0], parts[1].strip()))
    return entries
