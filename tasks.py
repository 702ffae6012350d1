"""Invoke entry point: ``invoke --list`` here equals ``mailfleet --list`` anywhere.

The tasks live in ``mailfleet.cli`` so the installed console script carries them too.
"""

from mailfleet.cli import build_namespace
from mailfleet.cli.program import enable_variadic_arguments

enable_variadic_arguments()
ns = build_namespace()
