"""Parse in a forked child while this process writes SQLite: two cores, two stages.

The child reads the file, parses and correlates, and sends row batches through a pipe; the
parent inserts each batch while the child works on the next. Rows travel as ``marshal``
(plain tuples, lists, strings, numbers): several times cheaper than pickle on both ends.
Frames start with a kind byte: R rows, D done (the totals), E error. A child that dies or
fails makes the parent raise, so the caller's transaction rolls back.
"""

from __future__ import annotations

import gc
import marshal
import multiprocessing
import pickle
import sqlite3
from pathlib import Path
from typing import Any

from mailfleet.errors import IngestError
from mailfleet.postfix import store
from mailfleet.postfix.parse_line import SyslogClock
from mailfleet.postfix.produce import Producer, Totals, open_log, produce_file


def _worker(
    path: Path, offset: int, sniff: bytes, clock: SyslogClock, next_id: int, open_messages: list,
    host: str | None, pipe: Any,
) -> None:  # fmt: skip
    """Child process: produce batches into the pipe; the parent writes them to SQLite."""
    gc.disable()
    try:
        producer = Producer(
            next_id, open_messages, host, lambda batch: pipe.send_bytes(b"R" + marshal.dumps(batch))
        )
        with open_log(path) as handle:
            handle.seek(offset)
            totals = produce_file(handle, offset, sniff, clock, producer)
        pipe.send_bytes(b"D" + pickle.dumps(totals))
    except BaseException as exc:  # report, never hang the parent
        try:
            pipe.send_bytes(b"E" + f"{type(exc).__name__}: {exc}".encode())
        except OSError:
            pass
    finally:
        pipe.close()


def produce_in_child(
    conn: sqlite3.Connection, path: Path, offset: int, sniff: bytes, clock: SyslogClock, next_id: int,
    open_messages: list, host: str | None,
) -> Totals:  # fmt: skip
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_worker, args=(path, offset, sniff, clock, next_id, open_messages, host, send), daemon=True
    )
    child.start()
    send.close()
    try:
        while True:
            try:
                frame = receive.recv_bytes()
            except EOFError:
                raise IngestError(f"the parser process for {path} died; nothing from it was stored.") from None
            kind = frame[:1]
            if kind == b"R":
                store.save_rows(conn, *marshal.loads(frame[1:]), first_new_id=next_id)
            elif kind == b"D":
                return pickle.loads(frame[1:])
            else:
                reason = frame[1:].decode(errors="replace")
                raise IngestError(f"parsing {path} failed ({reason}); nothing from it was stored.")
    finally:
        receive.close()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
