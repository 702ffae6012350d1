"""Load what a plan needs from disk and secrets: playbooks, templates, overrides, API keys.

Effectful (reads files, resolves secrets) and nothing else: rendering happens in
``render_files`` and planning in ``plan``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mailfleet.deploy.extensions import extension_sources, load_extensions
from mailfleet.deploy.model import Playbook, PlaybookStep
from mailfleet.deploy.parse_playbook import PlaybookError, merge_playbooks, parse_playbook
from mailfleet.deploy.plan import playbooks_for
from mailfleet.deploy.render_files import render_conf_overrides, render_template, template_context
from mailfleet.errors import MailfleetError
from mailfleet.inventory.load import Inventory
from mailfleet.inventory.model import Host
from mailfleet.secrets import resolve_secret

REPO_ROOT = Path(__file__).resolve().parents[3]


def playbooks_dir() -> Path:
    return Path(os.environ.get("MAILFLEET_PLAYBOOKS_DIR") or REPO_ROOT / "playbooks")


def mailcow_dir() -> Path:
    return Path(os.environ.get("MAILFLEET_MAILCOW_DIR") or REPO_ROOT / "mailcow")


def load_playbooks(directory: Path | None = None) -> dict[str, Playbook]:
    """Every ``*.yaml`` playbook in ``playbooks/``, parsed and validated, keyed by file stem."""
    folder = directory or playbooks_dir()
    load_extensions()  # step kinds other components add (the monitoring role)
    books: dict[str, Playbook] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            books[path.stem] = parse_playbook(path.read_text(encoding="utf-8"), str(path))
        except PlaybookError as exc:
            problems.append(str(exc))
    if problems:
        raise PlaybookError("\n".join(problems))
    if "common" not in books:
        raise PlaybookError(f"{folder}/common.yaml is missing: every host starts with the common bootstrap")
    return books


def host_steps(host: Host, books: dict[str, Playbook]) -> tuple[PlaybookStep, ...]:
    names = [n for n in playbooks_for(host.roles, host.runs_mailcow) if n in books]
    return merge_playbooks([books[n] for n in names])


@dataclass(frozen=True)
class HostSources:
    """What the planner needs besides facts, for one host."""

    files: dict[str, dict[str, str]] = field(default_factory=dict)  # step name -> path -> content
    executable: frozenset[str] = frozenset()
    conf_overrides: dict[str, str] = field(default_factory=dict)
    api_key: str = ""


def load_host_sources(host: Host, inv: Inventory, steps: tuple[PlaybookStep, ...]) -> HostSources:
    """Render templates and overrides for ``host``; resolve its API key. Raises with what to fix."""
    fleet = inv.fleet
    assert fleet is not None
    base = mailcow_dir()
    api_key = ""
    if host.runs_mailcow:
        if host.api_key is None:
            raise MailfleetError(f"{host.name}: no api_key in the inventory; add `api_key: file:secrets/{host.name}.api-key`")
        api_key = resolve_secret(host.api_key, inv.base_dir)
        if not re.fullmatch(r"[A-Za-z0-9-]{16,}", api_key):
            raise MailfleetError(
                f"{host.name}: the API key in {host.api_key} is not 16 or more of a-z, A-Z, 0-9 and '-'; Mailcow "
                "silently strips other characters, so the key would never match. Generate a new one, e.g. "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(24).replace(\"_\", \"-\"))'`")
    context = template_context(host, fleet)
    context["priority_extra_cf"] = _priority_extra_cf(host, fleet)
    files: dict[str, dict[str, str]] = {}
    executable: set[str] = set()
    overrides: dict[str, str] = {}
    for step in steps:
        extra = extension_sources(step, host, inv)
        if extra is not None:  # a step kind another component registered (deploy.extensions)
            files[step.name] = extra
        elif step.kind == "mailcow_files":
            rendered: dict[str, str] = {}
            for template in step.params["templates"]:
                path = base / template
                try:
                    text = path.read_text(encoding="utf-8")
                except OSError as exc:
                    raise MailfleetError(f"template {path} cannot be read ({exc.strerror}); step {step.name!r} "
                                         f"in {step.source} names it") from None
                target = template[:-3] if template.endswith(".j2") else template
                rendered[target] = render_template(text, context, str(path))
            if step.params.get("priority"):
                extra, extra_exec = _priority_files(host, fleet)
                for path, content in extra.items():
                    rendered[path] = content
                executable |= extra_exec
            files[step.name] = rendered
        elif step.kind == "mailcow_conf":
            path = base / step.params["overrides"]
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise MailfleetError(f"overrides file {path} cannot be read ({exc.strerror})") from None
            overrides.update(render_conf_overrides(text, str(path), host, fleet, api_key))
    return HostSources(files=files, executable=frozenset(executable), conf_overrides=overrides, api_key=api_key)


def _priority_extra_cf(host: Host, fleet) -> str:  # type: ignore[no-untyped-def]
    try:
        from mailfleet.priority import render_extra_cf
    except ImportError:  # the priority component is optional
        return ""
    return render_extra_cf(fleet, host)


def _priority_files(host: Host, fleet) -> tuple[dict[str, str], set[str]]:  # type: ignore[no-untyped-def]
    try:
        from mailfleet.priority import EXECUTABLE_PATHS, render_files
    except ImportError:
        return {}, set()
    files = render_files(fleet, host)
    return files, {p for p in files if p in EXECUTABLE_PATHS}
