"""The task namespace shared by ``tasks.py`` (``invoke X``) and the ``mailfleet`` console script.

Each module in this package owns the tasks of one capability and exposes ``register(ns)``,
which adds its tasks or sub-collection to the root namespace. Modules are discovered, so a
new capability is one new file, never an edit to a shared list.
"""

from __future__ import annotations

import importlib
import pkgutil

from invoke import Collection

_NOT_TASK_MODULES = {"program", "common"}


def build_namespace() -> Collection:
    ns = Collection()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_TASK_MODULES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(ns)
    return ns
