"""``report --db FILE... --out DIR``: a static HTML report with charts (see mailfleet.report)."""

from __future__ import annotations

import time
from pathlib import Path

from invoke import Collection, task

from mailfleet.cli.common import print_json, reports_errors
from mailfleet.errors import MailfleetError


@task(iterable=["db"],
      help={"db": "a DMARC store and/or a Postfix log store (--db A B, repeat --db, or comma-separate); "
                  "kinds are detected by schema",
            "out": "folder to write index.html into (created if missing)",
            "days": "only the last N days (default: everything in the stores)",
            "title": "page title (default: Mail fleet report)",
            "json": "print {\"report\": PATH, \"dmarc\": DB|null, \"mailflow\": DB|null} as JSON"})
@reports_errors
def report(c, db=None, out=None, days=None, title="Mail fleet report", json=False):
    """A static HTML report (inline SVG charts, no network needed) of the DMARC and mail-flow dashboards."""
    from mailfleet.report.load import load_report
    from mailfleet.report.render_html import render_report_html
    from mailfleet.report.save import save_report

    paths = [Path(p.strip()) for spec in (db or []) for p in str(spec).split(",") if p.strip()]
    if not paths or not out:
        raise MailfleetError("report needs --db FILE (a DMARC and/or log store) and --out DIR, e.g. "
                             "`mailfleet report --db var/dmarc.sqlite --db var/logs.sqlite --out var/report`")
    if days is not None:
        try:
            days = int(days)
        except ValueError:
            raise MailfleetError(f"--days {days!r} is not a whole number of days") from None
        if days <= 0:
            raise MailfleetError("--days must be at least 1 (leave it out for everything)")
    data = load_report(paths, now=time.time(), days=days)
    target = save_report(render_report_html(data, title=title), Path(out))
    if json:
        print_json({"report": str(target), "dmarc": data.dmarc.db if data.dmarc else None,
                    "mailflow": data.mailflow.db if data.mailflow else None})
    else:
        print(f"wrote {target} (open it in a browser; it needs no network)")


# ``report --db A.sqlite B.sqlite --out DIR``: bare words after --db are more --db (cli.program).
report.variadic = "db"


def register(ns: Collection) -> None:
    ns.add_task(report)
