"""Load the priority templates from the repository's ``mailcow/`` tree (effectful: reads files).

The templates are stored at the path their output lands on inside a Mailcow checkout, under
the repository's top-level ``mailcow/`` directory (``MAILFLEET_MAILCOW_DIR`` overrides it, for
an installed package).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from mailfleet.errors import MailfleetError

TEMPLATE_NAMES = (
    "data/conf/postfix/mailfleet_bulk_senders.regexp.j2",
    "data/conf/postfix/mailfleet_bulk_headers.regexp.j2",
    "data/conf/postfix/mailfleet_bulk.extra.cf.j2",
    "data/hooks/postfix/mailfleet-bulk-transport.sh.j2",
)


def mailcow_dir() -> Path:
    if os.environ.get("MAILFLEET_MAILCOW_DIR"):
        return Path(os.environ["MAILFLEET_MAILCOW_DIR"])
    return Path(__file__).resolve().parents[3] / "mailcow"


@functools.lru_cache(maxsize=4)
def load_templates(base: str | None = None) -> dict[str, str]:
    """Every priority template's text, keyed by its path under ``mailcow/``."""
    root = Path(base) if base else mailcow_dir()
    texts = {}
    for name in TEMPLATE_NAMES:
        path = root / name
        try:
            texts[name] = path.read_text()
        except OSError as exc:
            raise MailfleetError(f"template {path} cannot be read ({exc.strerror}); the priority configuration "
                                 "cannot be rendered. Run mailfleet from its repository or set "
                                 "MAILFLEET_MAILCOW_DIR to its mailcow/ directory") from None
    return texts
