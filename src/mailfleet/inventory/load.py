"""Read and write inventory files: round-trip YAML, every problem with its line, atomic saves.

``load_inventory`` never raises for a bad inventory; it returns the problems so
``inventory.check`` can print them all. ``load_valid_inventory`` is what every other task uses:
it refuses to go on while any problem remains.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mailfleet.errors import InventoryError, MailfleetError, Problem
from mailfleet.inventory.model import Fleet
from mailfleet.inventory.parse import parse_inventory


@dataclass
class Inventory:
    """An inventory file as loaded: its path, the round-trip document and the validated fleet."""

    path: Path
    doc: Any
    fleet: Fleet | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the inventory (``file:`` secrets, ``secrets_dir``) start here."""
        return self.path.resolve().parent

    @property
    def secrets_dir(self) -> Path:
        name = self.fleet.settings.secrets_dir if self.fleet else "secrets"
        return (self.base_dir / name).resolve()


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.width = 4096
    return yaml


def load_inventory(path: str | Path) -> Inventory:
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MailfleetError(
            f"inventory {source} does not exist; pass --inventory PATH, set MAILFLEET_INVENTORY, "
            "start the lab (`mailfleet lab.up` writes inventory/lab.yaml) or copy inventory/example.yaml"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MailfleetError(f"cannot read inventory {source}: {exc}") from None
    return parse_inventory_text(text, source, path)


def parse_inventory_text(text: str, source: str, path: Path | None = None) -> Inventory:
    try:
        doc = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"YAML syntax: {exc.problem or exc.context}"
        hint = "a duplicate key hides an earlier entry; merge the two" if "duplicate" in str(exc) else \
            "check indentation and quoting on this line and the one above"
        return Inventory(Path(path or source), None, None, [Problem(source, line, col, message, hint)])
    except YAMLError as exc:
        return Inventory(Path(path or source), None, None, [Problem(source, 1, 1, f"YAML: {exc}")])
    if doc is None:
        return Inventory(Path(path or source), doc, None,
                         [Problem(source, 1, 1, "the inventory is empty", "start from inventory/example.yaml")])
    result = parse_inventory(doc, source)
    return Inventory(Path(path or source), doc, result.fleet, result.problems)


def load_valid_inventory(path: str | Path) -> Inventory:
    inventory = load_inventory(path)
    if inventory.problems or inventory.fleet is None:
        raise InventoryError(inventory.problems, str(path))
    return inventory


def dump_inventory(doc: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(doc, buffer)
    return buffer.getvalue()


def save_inventory(inventory: Inventory) -> None:
    """Validate the changed document, then write it atomically (temp file, fsync, rename).

    A change that would make the inventory invalid is refused and the file is left as it was.
    """
    text = dump_inventory(inventory.doc)
    checked = parse_inventory_text(text, str(inventory.path), inventory.path)
    if checked.problems:
        raise InventoryError(checked.problems, f"{inventory.path} (the change was not written)")
    write_atomically(inventory.path, text)
    inventory.fleet = checked.fleet
    inventory.doc = checked.doc


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` so that readers see either the old file or the new one, never half of it."""
    path = Path(path)
    directory = path.resolve().parent
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
