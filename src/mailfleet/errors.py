"""The mailfleet error tree.

Every error a user can cause or meet carries a message that says what is, what should be,
the consequence and the next step. The command line turns a ``MailfleetError`` into a clean
exit with that message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation finding, pointing at where it is (octoDNS-style file:line:column)."""

    source: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:{self.column}"
        text = f"{where}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class MailfleetError(Exception):
    """Base of every error the command line reports without a traceback."""

    exit_code = 1


class InventoryError(MailfleetError):
    """The inventory is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        head = f"{source or 'inventory'}: {count} problem{'s' if count != 1 else ''}"
        body = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{head}\n{body}\nFix these and run `mailfleet inventory.check` again.")


class SecretError(MailfleetError):
    """A secret reference cannot be resolved."""


class RemoteError(MailfleetError):
    """A command on a host failed or the host could not be reached."""


class HostKeyError(RemoteError):
    """A host's SSH key is unknown or differs from the pinned one."""


class MailcowApiError(MailfleetError):
    """The Mailcow API answered with an HTTP error or a ``danger``/``error`` body."""


class IngestError(MailfleetError):
    """An input file cannot be ingested (it is quarantined, never half-stored)."""


class UnsafePlan(MailfleetError):
    """A plan would break a safety rule (e.g. every MX of a domain down at once)."""
