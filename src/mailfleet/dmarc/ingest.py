"""Ingest report files into the store: stream each report's records into SQLite, quarantine the rest.

One input file is a savepoint and each report inside it a nested one, so a report is stored
wholly or not at all, a bad report in a zip does not cost its siblings, and a file that breaks a
cap (``Unsafe``) leaves nothing behind. Duplicates are recognised by the natural key as soon as the
header is read (the rest of the report is not even parsed) and by the content hash at the end.
A rejected file is copied to the quarantine directory with a ``.reason.txt`` beside it; the
batch always goes on.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from mailfleet.dmarc import store
from mailfleet.dmarc.extract import Payload, iter_payloads
from mailfleet.dmarc.model import Limits, Record, Rejected, ReportMeta, TlsReport, Unsafe
from mailfleet.dmarc.parse_aggregate import AggregateParser
from mailfleet.dmarc.parse_input import parse_input
from mailfleet.dmarc.parse_tlsrpt import parse_tlsrpt
from mailfleet.errors import IngestError

BATCH = 2000
COMMIT_EVERY = 200
PARALLEL_MAX_BYTES = 8 * 1024 * 1024
Clock = Callable[[], float]


@dataclass
class FileResult:
    file: str
    stored: int = 0
    duplicates: int = 0
    tls_stored: int = 0
    tls_duplicates: int = 0
    records: int = 0
    messages: int = 0
    warnings: list[str] = field(default_factory=list)
    rejected: str = ""
    quarantined: str = ""

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "stored": self.stored, "duplicates": self.duplicates,
                "tls_stored": self.tls_stored, "tls_duplicates": self.tls_duplicates, "records": self.records,
                "messages": self.messages, "warnings": self.warnings, "rejected": self.rejected,
                "quarantined": self.quarantined}


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.rejected]

    def as_json(self) -> dict[str, object]:
        return {
            "files": len(self.files), "stored": self.total("stored"), "duplicates": self.total("duplicates"),
            "tls_stored": self.total("tls_stored"), "records": self.total("records"),
            "messages": self.total("messages"),
            "rejected": [{"file": f.file, "reason": f.rejected, "quarantined": f.quarantined} for f in self.rejected],
            "results": [f.as_json() for f in self.files],
        }


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is not one (cron, pipes, tests)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = max(total, 1)
        self.done = 0
        self._last = 0.0

    def advance(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        width = 30
        filled = width * self.done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label[-40:]:<40}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def gather_files(paths: Iterable[str | Path], skip: Path | None = None) -> list[Path]:
    """Expand directories (recursively, sorted, hidden entries and ``skip`` left out)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                 and (skip is None or Path(root, d).resolve() != skip.resolve()))
                found.extend(Path(root, f) for f in sorted(files) if not f.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise IngestError(f"{path} does not exist or is not a file or directory; check the path")
    return found


def ingest_paths(conn: sqlite3.Connection, paths: Iterable[str | Path], *, limits: Limits | None = None,
                 quarantine: Path | None = None, clock: Clock = time.time,
                 progress: Progress | None = None, commit_every: int = COMMIT_EVERY,
                 workers: int = 1) -> IngestSummary:
    """Ingest files and directories. Each report is atomic (a savepoint); commits are grouped every
    ``commit_every`` files because a commit costs more than parsing a 20-record report. A crash
    loses at most the uncommitted group, which the next run simply ingests again (idempotent).

    With ``workers`` > 1, files up to ``PARALLEL_MAX_BYTES`` are parsed in that many forked
    processes while this one writes to SQLite (one writer, as SQLite wants); bigger files are
    always streamed here, so memory stays bounded by the streaming parser, not by file size."""
    limits = limits or Limits()
    files = gather_files(paths, skip=quarantine)
    progress = progress or Progress(len(files))
    progress.total = max(len(files), 1)
    summary = IngestSummary()
    parallel: list[Path] = []
    serial: list[Path] = []
    for path in files:
        small = workers > 1 and _size(path) <= PARALLEL_MAX_BYTES
        (parallel if small else serial).append(path)
    if len(parallel) < 2 * workers:
        serial, parallel = files, []
    pending = 0

    def finish(path: Path, result: FileResult) -> None:
        nonlocal pending
        if result.rejected and quarantine is not None:
            result.quarantined = str(save_quarantine(quarantine, path.name, path, result.rejected))
        summary.files.append(result)
        progress.advance(path.name)
        pending += 1
        if pending >= commit_every:
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            pending = 0

    conn.execute("BEGIN")
    try:
        if parallel:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                outcomes = pool.map(_parse_path, [str(p) for p in parallel], [limits] * len(parallel),
                                    chunksize=8)
                for path, outcome in zip(parallel, outcomes):
                    finish(path, save_outcome(conn, outcome, now=int(clock())))
        for path in serial:
            try:
                handle = open(path, "rb")
            except OSError as exc:
                finish(path, FileResult(str(path), rejected=f"cannot read it: {exc.strerror}"))
                continue
            with handle:
                finish(path, ingest_source(conn, str(path), handle, limits=limits, clock=clock))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        progress.close()
    return summary


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class ParsedReport:
    """A parsed aggregate report in the shape the writer needs: metadata plus plain row tuples."""

    meta: ReportMeta
    rows: list[tuple[object, ...]]
    messages: int
    warnings: tuple[str, ...]
    sha256: str
    source: str


@dataclass(frozen=True)
class ParsedFile:
    file: str
    reports: list[ParsedReport]
    tls_reports: list[TlsReport]
    warnings: list[str]
    error: str = ""


def _parse_path(path: str, limits: Limits) -> ParsedFile:
    """Worker side of parallel ingest: parse one small file whole (pure work, no SQLite)."""
    try:
        with open(path, "rb") as handle:
            outcome = parse_input(path, handle, limits)
    except OSError as exc:
        return ParsedFile(path, [], [], [], error=f"cannot read it: {exc.strerror}")
    except Exception as exc:  # noqa: BLE001 - untrusted input must never stop the batch
        return ParsedFile(path, [], [], [], error=_unexpected(exc))
    reports = [ParsedReport(r.meta, store.record_rows(r.records), sum(x.count for x in r.records), r.warnings,
                            r.content_sha256, r.source) for r in outcome.reports]
    return ParsedFile(path, reports, outcome.tls_reports, outcome.warnings, outcome.error)


def save_outcome(conn: sqlite3.Connection, outcome: ParsedFile, now: int) -> FileResult:
    """Store already-parsed reports of one input atomically (the parallel path's writer side)."""
    result = FileResult(outcome.file)
    if outcome.error:
        result.rejected = outcome.error
        return result
    conn.execute("SAVEPOINT input")
    try:
        for report in outcome.reports:
            _store_parsed(conn, report, now, result)
        for tls in outcome.tls_reports:
            if store.save_tls_report(conn, tls, now):
                result.tls_stored += 1
            else:
                result.tls_duplicates += 1
            result.warnings.extend(tls.warnings)
        result.warnings.extend(outcome.warnings)
        conn.execute("RELEASE input")
    except BaseException:
        conn.execute("ROLLBACK TO input")
        conn.execute("RELEASE input")
        raise
    return result


def ingest_source(conn: sqlite3.Connection, name: str, source: BinaryIO | bytes, *, limits: Limits | None = None,
                  clock: Clock = time.time,
                  before_commit: Callable[[sqlite3.Connection, FileResult], None] | None = None) -> FileResult:
    """Ingest one input (a file object or bytes) atomically; never raises for bad input.

    The input is a savepoint: outside a transaction it commits when done, inside one (grouped
    commits in ``ingest_paths``) it joins it. ``before_commit`` runs inside that savepoint when
    something was stored or recognised, so a caller's bookkeeping (``dmarc.fetch`` remembering a
    message) is atomic with the reports."""
    limits = limits or Limits()
    result = FileResult(name)
    now = int(clock())
    skipped: list[str] = []
    conn.execute("SAVEPOINT input")
    try:
        for payload in iter_payloads(name, source, limits):
            conn.execute("SAVEPOINT report")
            try:
                if payload.kind == "aggregate":
                    _ingest_aggregate(conn, payload, limits, now, result)
                else:
                    report = parse_tlsrpt(payload.chunks, payload.name, limits)
                    if store.save_tls_report(conn, report, now):
                        result.tls_stored += 1
                    else:
                        result.tls_duplicates += 1
                    result.warnings.extend(report.warnings)
                conn.execute("RELEASE report")
            except Unsafe:
                raise
            except Rejected as exc:
                conn.execute("ROLLBACK TO report")
                conn.execute("RELEASE report")
                skipped.append(exc.reason)
        found = result.stored + result.duplicates + result.tls_stored + result.tls_duplicates
        if not found:
            raise Rejected(skipped[0] if skipped else "no report found in it")
        result.warnings.extend(skipped)
        if before_commit is not None:
            before_commit(conn, result)
        conn.execute("RELEASE input")
    except Rejected as exc:
        conn.execute("ROLLBACK TO input")
        conn.execute("RELEASE input")
        return FileResult(name, rejected=exc.reason.removeprefix(f"{name}: "))
    except sqlite3.Error:
        conn.execute("ROLLBACK TO input")
        conn.execute("RELEASE input")
        raise  # the database is the problem (disk full, locked): stop, do not quarantine good files
    except Exception as exc:  # noqa: BLE001 - untrusted input must never stop the batch
        conn.execute("ROLLBACK TO input")
        conn.execute("RELEASE input")
        return FileResult(name, rejected=_unexpected(exc))
    except BaseException:
        conn.execute("ROLLBACK TO input")
        conn.execute("RELEASE input")
        raise
    return result


def _unexpected(exc: Exception) -> str:
    return (f"could not be read ({exc.__class__.__name__}: {exc}); the file is kept in quarantine, "
            "please report it as a mailfleet bug")


def _ingest_aggregate(conn: sqlite3.Connection, payload: Payload, limits: Limits, now: int,
                      result: FileResult) -> None:
    parser = AggregateParser(payload.name, limits)
    pending: list[Record] = []
    report_pk = 0
    meta = None
    for chunk in payload.chunks:
        pending.extend(parser.feed(chunk))
        if not report_pk:
            meta = parser.early_meta
            if meta is not None:
                if store.report_key_exists(conn, meta):
                    result.duplicates += 1
                    return
                report_pk = store.save_report_header(conn, meta, payload.name, now)
        if report_pk and len(pending) >= BATCH:
            store.save_records(conn, report_pk, meta, pending)  # type: ignore[arg-type]
            pending.clear()
    final_meta, warnings, sha256, messages = parser.close()
    if store.report_hash_exists(conn, sha256) or (not report_pk and store.report_key_exists(conn, final_meta)):
        conn.execute("ROLLBACK TO report")
        result.duplicates += 1
        return
    if not report_pk:
        report_pk = store.save_report_header(conn, final_meta, payload.name, now)
    if pending:
        store.save_records(conn, report_pk, final_meta, pending)
    store.save_report_footer(conn, report_pk, final_meta, warnings, sha256, parser.record_count, messages)
    result.stored += 1
    result.records += parser.record_count
    result.messages += messages
    result.warnings.extend(f"{payload.name}: {w}" for w in warnings)


def _store_parsed(conn: sqlite3.Connection, report: ParsedReport, now: int, result: FileResult) -> None:
    """Store one fully parsed report unless its key or content is already there."""
    meta = report.meta
    if store.report_key_exists(conn, meta) or store.report_hash_exists(conn, report.sha256):
        result.duplicates += 1
        return
    pk = store.save_report_header(conn, meta, report.source, now)
    store.save_record_rows(conn, pk, meta, report.rows)
    store.save_report_footer(conn, pk, meta, report.warnings, report.sha256, len(report.rows), report.messages)
    result.stored += 1
    result.records += len(report.rows)
    result.messages += report.messages
    result.warnings.extend(f"{report.source}: {w}" for w in report.warnings)


def save_quarantine(directory: Path, name: str, source: Path | bytes, reason: str) -> Path:
    """Copy a rejected input to ``directory`` (named by its hash, so the same junk is kept once)
    with its reason next to it. Streams: an oversized file is never read into memory."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name)[-80:] or "input"
    target = directory / f"{digest.hexdigest()[:16]}-{safe}"
    if not target.exists():
        tmp = target.with_name(target.name + ".part")
        if isinstance(source, bytes):
            tmp.write_bytes(source)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
    return target
