"""Every `mailfleet X` builds the whole task namespace first; building it loads no heavy package.

The task modules import the inventory (ruamel.yaml), DKIM and TLSA (cryptography), SSH (paramiko,
Fabric), DNS (dnspython), HTTP (requests), XML (lxml, defusedxml) and templates (jinja2) inside the
tasks that use them, so `mailfleet logs.summary --help` does not pay for all of them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

HEAVY = ("ruamel", "cryptography", "paramiko", "fabric", "lxml", "dns", "requests", "jinja2", "defusedxml")

LIST_MODULES = ("import json, sys; from mailfleet.cli import build_namespace; build_namespace(); "
                "print(json.dumps(sorted(sys.modules)))")
# The same imports, each task module through an `import` statement: -X importtime does not log
# importlib.import_module (build_namespace's discovery), so the chain would start below the task module.
TRACE = ("import pkgutil, mailfleet.cli as cli; "
         "[__import__(f'mailfleet.cli.{m.name}') for m in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name)]; "
         "cli.build_namespace()")

IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$")


def heavy_modules(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def import_chain(importtime_log: str, package: str) -> str:
    """``mailfleet.cli.dns -> mailfleet.dns.records -> ... -> ruamel.yaml``: who first imported ``package``.

    ``-X importtime`` prints a module after the modules it imported, each indented one step deeper
    than its importer, so the importer is the next line with less indentation."""
    entries = [(len(m.group(1)), m.group(2)) for m in map(IMPORT_LINE.match, importtime_log.splitlines()) if m]
    for i, (depth, name) in enumerate(entries):
        if name == package or name.startswith(package + "."):
            chain = [name]
            for later_depth, later_name in entries[i + 1:]:
                if later_depth < depth:
                    chain.append(later_name)
                    depth = later_depth
            return " -> ".join(reversed(chain))
    return f"{package} (not in the -X importtime log)"


def test_building_the_namespace_loads_no_heavy_package() -> None:
    done = subprocess.run([sys.executable, "-c", LIST_MODULES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = json.loads(done.stdout)
    assert "mailfleet.cli.dns" in modules and "mailfleet.cli.upgrade" in modules  # the namespace was built
    loaded = heavy_modules(modules)
    if loaded:
        traced = subprocess.run([sys.executable, "-X", "importtime", "-c", TRACE], capture_output=True, text=True,
                                timeout=120)
        chains = "\n  ".join(import_chain(traced.stderr, package) for package in loaded)
        raise AssertionError(f"building the task namespace imports {', '.join(loaded)}; move the import into "
                             f"the task that needs it (or under `if TYPE_CHECKING:`):\n  {chains}")


def test_the_chain_names_the_importer() -> None:
    log = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:        10 |         10 |         ruamel.yaml.main",
        "import time:        10 |         20 |       ruamel.yaml",
        "import time:        10 |         30 |     mailfleet.inventory.load",
        "import time:        10 |         10 |     mailfleet.dns.model",
        "import time:        10 |         50 |   mailfleet.dns.records",
        "import time:        10 |         60 | mailfleet.cli.dns",
    ])
    assert import_chain(log, "ruamel") == (
        "mailfleet.cli.dns -> mailfleet.dns.records -> mailfleet.inventory.load -> ruamel.yaml -> ruamel.yaml.main")
    assert heavy_modules(["mailfleet.dns.records", "dns.resolver", "json"]) == ["dns"]
