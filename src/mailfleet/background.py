"""Work a command may finish while the next task of the same invocation runs.

``mailfleet logs.ingest FILE --db DB logs.summary --db DB`` is one process running two
tasks. The ingest's last step on a fresh store, building the lookup indexes only ``trace``
reads (and checkpointing the write-ahead log), needs nothing from the summary and the
summary needs nothing from it, so it runs on a thread with its own SQLite connection while
the summary starts on the other core (SQLite releases the GIL while it works).

Rules for work started here: the data it follows is already committed, and whatever an
interruption leaves behind is safe and repaired later (a missing lookup index is rebuilt by
the next ingest). The threads are not daemons, so the interpreter waits for them; the
``mailfleet`` entry point also joins them before it exits and turns a failure into exit
code 1 (``wait_all``). A failure is printed when it happens, so it is seen under ``invoke``
too.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

_started: list[threading.Thread] = []
_failures: list[str] = []
_lock = threading.Lock()


def start(what: str, work: Callable[[], None]) -> None:
    """Run ``work`` on a thread; ``what`` names it in a failure message."""

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported, never lost
            message = f"{what} failed: {type(exc).__name__}: {exc}"
            with _lock:
                _failures.append(message)
            print(f"mailfleet: {message}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name=what)
    with _lock:
        _started.append(thread)
    thread.start()


def join_all() -> None:
    """Join everything started so far; failures stay for ``wait_all``. Called before the next
    write to a store (``postfix.ingest``), outside any transaction: the background work may
    need the write lock, and a thread busy in SQLite holds locks that a forked parser child
    would inherit, held, with nobody left to release them."""
    while True:
        with _lock:
            if not _started:
                return
            thread = _started.pop(0)
        thread.join()


def wait_all() -> list[str]:
    """Join everything started so far; return (and forget) the failures."""
    join_all()
    with _lock:
        failures = list(_failures)
        _failures.clear()
    return failures
