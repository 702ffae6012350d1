"""Helpers shared by the task modules: error translation, inventory defaults, output.

Tasks stay thin: parse flags, call the library, print. Errors the user can fix arrive as
``MailfleetError`` and leave as an Invoke ``Exit`` with the message and its exit code; the
traceback is kept only for bugs.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Exit

from mailfleet.errors import MailfleetError

F = TypeVar("F", bound=Callable[..., Any])

INVENTORY_ENV = "MAILFLEET_INVENTORY"
LAB_INVENTORY = Path("inventory/lab.yaml")
EXAMPLE_INVENTORY = Path("inventory/example.yaml")


def default_inventory_path(explicit: str | None = None) -> Path:
    """Pick the inventory: ``--inventory``, else ``$MAILFLEET_INVENTORY``, else the lab's
    inventory while a lab is up (``inventory/lab.yaml`` exists), else ``inventory/example.yaml``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(INVENTORY_ENV):
        return Path(os.environ[INVENTORY_ENV])
    if LAB_INVENTORY.exists():
        return LAB_INVENTORY
    return EXAMPLE_INVENTORY


def reports_errors(func: F) -> F:
    """Turn a ``MailfleetError`` into ``Exit(message, code)`` so the user sees a message, not a trace."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MailfleetError as exc:
            raise Exit(f"error: {exc}", code=getattr(exc, "exit_code", 1)) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
