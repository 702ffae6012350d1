"""The pure core stays pure: modules named parse_/render_/plan_/merge_/records/classify/rules/model
import nothing effectful and call no clock and no open()."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mailfleet"
PURE_NAME = re.compile(r"^(model|(parse|render|plan|merge|records|classify|rules)[a-z0-9_]*)\.py$")
EFFECTFUL_MODULES = {"fabric", "invoke", "paramiko", "requests", "httpx", "sqlite3", "socket", "subprocess",
                     "imaplib", "smtplib", "urllib.request", "dns.resolver", "dns.query", "mailfleet.ssh",
                     "shutil", "tempfile"}
FORBIDDEN_CALLS = {"open", "now", "utcnow", "time", "today", "system", "popen"}


def pure_modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if PURE_NAME.match(p.name) and "emulator" not in p.parts)


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if any(name == bad or name.startswith(bad + ".") for bad in EFFECTFUL_MODULES):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            qualifier = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if called == "open" or (called in FORBIDDEN_CALLS and qualifier in ("datetime", "time", "date", "os")):
                found.append(f"{path.name}:{node.lineno} calls {qualifier + '.' if qualifier else ''}{called}()")
    return found


def test_there_are_pure_modules_to_check() -> None:
    names = {p.name for p in pure_modules()}
    assert {"model.py", "parse.py", "merge.py", "parse_window.py", "rules_names.py"} <= names


def test_pure_modules_do_no_io() -> None:
    problems = [v for path in pure_modules() for v in violations(path)]
    assert problems == []


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "parse_bad.py"
    bad.write_text("import sqlite3\nfrom datetime import datetime\nx = datetime.now()\nopen('f')\n")
    assert len(violations(bad)) == 3
