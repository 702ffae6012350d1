"""The ``mailfleet`` console script: an Invoke ``Program`` over the same namespace as ``tasks.py``."""

from __future__ import annotations

from invoke import Program

from mailfleet import __version__
from mailfleet.cli import build_namespace


def main() -> None:
    program = Program(namespace=build_namespace(), version=__version__, name="mailfleet", binary="mailfleet")
    program.run()
