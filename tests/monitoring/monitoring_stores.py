"""Support module (imported by tests/monitoring and tests/report conftests): stores filled by real ingests of the fixtures, through the command line users run.

DMARC: every report in tests/fixtures/dmarc (cry-inc, parsedmarc, tierpod). Postfix logs: the
synthetic Mailcow-shaped RFC 3339 log, the sergeymakinen and kumina exporter samples, and a
copy of the synthetic log as a bulk relay would write it (host ``relay1``, tag
``postfix/bulk/smtp``), since no public sample has a bulk transport.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
MAILFLEET = Path(sys.executable).with_name("mailfleet")
DMARC_SOURCES = ("cry-inc", "parsedmarc", "tierpod")
LOG_FILES = ("synthetic/mailcow-style-5k-rfc3339.log", "sergeymakinen-postfix_exporter/mail.log",
             "kumina-postfix_exporter/log_lines_from_tests.log")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(MAILFLEET), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    return done


def build_dmarc_db(folder: Path) -> Path:
    db = folder / "dmarc.sqlite"
    reports = [str(p) for src in DMARC_SOURCES for p in sorted((FIXTURES / "dmarc" / src).iterdir())
               if p.name not in ("LICENSE", "SOURCE.md")]
    _run("dmarc.ingest", ",".join(reports), "--db", str(db))
    return db


def build_logs_db(folder: Path) -> Path:
    db = folder / "logs.sqlite"
    bulk = folder / "relay1-bulk.log"
    text = (FIXTURES / "postfix" / LOG_FILES[0]).read_text()
    bulk.write_text(text.replace(" a3426da50090 ", " relay1 ").replace(" postfix/smtp[", " postfix/bulk/smtp["))
    files = [str(FIXTURES / "postfix" / name) for name in LOG_FILES] + [str(bulk)]
    done = _run("logs.ingest", ",".join(files), "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    return db
