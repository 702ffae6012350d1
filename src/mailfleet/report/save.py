"""Write the report: ``<out>/index.html``, atomically (a half-written report is never left behind)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mailfleet.errors import MailfleetError


def save_report(html: str, out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MailfleetError(f"cannot create the report folder {out_dir} ({exc.strerror}); "
                             "give --out a folder you can write to") from None
    target = out_dir / "index.html"
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".html", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
