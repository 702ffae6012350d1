"""The ``mailfleet`` console script: an Invoke ``Program`` over the same namespace as ``tasks.py``.

Invoke has no variadic positional arguments, but the command-line contract has
``dmarc.parse FILE...``. A task opts in by setting ``task.variadic = "<iterable flag>"``; extra
bare words after its positional arguments become repeated ``--<flag> WORD`` before Invoke parses
them. ``tasks.py`` turns the same behaviour on for ``invoke`` so both entry points agree.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from invoke import Collection, Program

from mailfleet import __version__, background
from mailfleet.cli import build_namespace

_original_parse_tasks = Program.parse_tasks


def expand_variadic(argv: Sequence[str], collection: Collection) -> list[str]:
    """Rewrite ``task a b c --json`` into ``task a --path b --path c --json`` for variadic tasks."""
    names = set(collection.task_names)
    for aliases in collection.task_names.values():
        names.update(aliases)
    out: list[str] = []
    task = None
    value_flags: set[str] = set()
    positional_left = 0
    expect_value = False
    for word in argv:
        if expect_value:
            out.append(word)
            expect_value = False
            continue
        if word in names and not word.startswith("-"):
            task = collection[word]
            value_flags = set()
            for arg in task.get_arguments():
                if arg.kind is not bool:
                    for name in arg.names:
                        value_flags.add(f"--{name.replace('_', '-')}" if len(name) > 1 else f"-{name}")
            positional_left = len(task.positional)
            out.append(word)
            continue
        if word.startswith("-"):
            out.append(word)
            expect_value = word in value_flags and "=" not in word
            continue
        variadic = getattr(task, "variadic", None) if task is not None else None
        if positional_left > 0 or not variadic:
            positional_left -= 1
            out.append(word)
        else:
            out.extend([f"--{variadic}", word])
    return out


def help_first(argv: Sequence[str], collection: Collection) -> list[str]:
    """``TASK --help`` → ``--help TASK``: otherwise Invoke hands ``--help`` to a required argument."""
    words = list(argv)
    for flag in ("--help", "-h"):
        if flag in words:
            tasks = [w for w in words[: words.index(flag)] if w in collection.task_names]
            if tasks:
                return ["--help", tasks[-1]]
    return words


def _parse_tasks_with_variadic(self: Program) -> None:
    self.core.unparsed = expand_variadic(self.core.unparsed, self.collection)
    _original_parse_tasks(self)


def enable_variadic_arguments() -> None:
    """Teach Invoke's ``Program`` (``invoke`` and ``mailfleet`` alike) the variadic rewrite."""
    Program.parse_tasks = _parse_tasks_with_variadic  # type: ignore[method-assign]


def _run_then_wait(program: Program, argv: list[str]) -> None:
    """Run the tasks, then wait for work they left running (``mailfleet.background``, e.g. the
    trace indexes after ``logs.ingest``); a failure there makes a successful run exit 1 (it
    was printed when it happened)."""
    try:
        program.run(argv)
    except SystemExit as exc:
        if background.wait_all() and exc.code in (0, None):
            sys.exit(1)
        raise
    if background.wait_all():
        sys.exit(1)


def main() -> None:
    enable_variadic_arguments()
    namespace = build_namespace()
    program = Program(namespace=namespace, version=__version__, name="mailfleet", binary="mailfleet")
    try:
        _run_then_wait(program, [sys.argv[0], *help_first(sys.argv[1:], namespace)])
    except BrokenPipeError:
        # `mailfleet dmarc.summary ... | head`: the reader left; stop quietly, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
