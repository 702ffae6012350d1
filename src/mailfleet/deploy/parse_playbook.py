"""Read a playbook: an ordered list of named steps with parameters, nothing else.

No loops, no conditionals, no templating in playbooks: logic lives in the Python step kinds
(``plan_steps``). Every problem in a playbook is reported at once with file:line.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from mailfleet.deploy.model import Playbook, PlaybookStep
from mailfleet.errors import MailfleetError

# kind -> (allowed params, required params). The phase orders steps across playbooks.
STEP_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "packages": (frozenset({"packages"}), frozenset({"packages"})),
    "hostname": (frozenset(), frozenset()),
    "swap": (frozenset(), frozenset()),
    "sysctl": (frozenset({"values"}), frozenset()),
    "docker": (frozenset(), frozenset()),
    "mailcow_checkout": (frozenset(), frozenset()),
    "mailcow_generate_config": (frozenset({"timeout"}), frozenset()),
    "mailcow_conf": (frozenset({"overrides"}), frozenset({"overrides"})),
    "mailcow_files": (frozenset({"templates", "priority"}), frozenset({"templates"})),
    "compose": (frozenset({"pull"}), frozenset()),
    "wait_running": (frozenset({"timeout"}), frozenset()),
    "relayhost_wiring": (frozenset({"port"}), frozenset()),
}
PHASES: dict[str, int] = {
    "packages": 0, "hostname": 0, "swap": 0, "sysctl": 0, "docker": 1, "mailcow_checkout": 2,
    "mailcow_generate_config": 3, "mailcow_conf": 4, "mailcow_files": 5, "compose": 6, "wait_running": 7,
    "relayhost_wiring": 8,
}


class PlaybookError(MailfleetError):
    """A playbook file is malformed; lists every problem."""


def parse_playbook(text: str, source: str) -> Playbook:
    """Parse and validate one playbook file's text."""
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(io.StringIO(text))
    except YAMLError as exc:
        raise PlaybookError(f"{source}: not valid YAML: {exc}") from None
    problems: list[str] = []
    if not isinstance(doc, Mapping):
        raise PlaybookError(f"{source}: a playbook is a mapping with name, description and steps")
    for key in doc:
        if key not in ("name", "description", "steps"):
            problems.append(f"{source}:{_line(doc, key)}: unknown key {key!r}; allowed: name, description, steps")
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append(f"{source}: steps must be a non-empty list")
        raw_steps = []
    steps: list[PlaybookStep] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_steps):
        where = f"{source}:{_item_line(raw_steps, index)}"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: a step is a mapping with name, step and params")
            continue
        unknown = set(raw) - {"name", "step", "params"}
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} in a step; "
                            "playbooks have no loops or conditions: write a step kind instead")
        name, kind = raw.get("name"), raw.get("step")
        params = raw.get("params") or {}
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: the step has no name")
            continue
        if name in names:
            problems.append(f"{where}: step name {name!r} is used twice")
        names.add(name)
        if kind not in STEP_KINDS:
            problems.append(f"{where}: unknown step kind {kind!r}; known: {', '.join(sorted(STEP_KINDS))}")
            continue
        if not isinstance(params, Mapping):
            problems.append(f"{where}: params of {name!r} must be a mapping")
            continue
        allowed, required = STEP_KINDS[kind]
        for key in params:
            if key not in allowed:
                problems.append(f"{where}: step {name!r} ({kind}) has no parameter {key!r}"
                                + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""))
        for key in required - set(params):
            problems.append(f"{where}: step {name!r} ({kind}) needs parameter {key!r}")
        steps.append(PlaybookStep(name=name, kind=kind, params=_plain(params), source=where))
    if problems:
        raise PlaybookError(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))
    return Playbook(name=str(doc.get("name", source)), description=str(doc.get("description", "")),
                    steps=tuple(steps), source=source)


def merge_playbooks(playbooks: list[Playbook]) -> tuple[PlaybookStep, ...]:
    """The steps of several playbooks in one order: by phase, then playbook order, then position.

    So a role's files land before Compose starts even though the role playbook comes after the
    common one, and API wiring comes last, once Mailcow runs.
    """
    indexed = [(PHASES[step.kind], p, i, step) for p, book in enumerate(playbooks) for i, step in enumerate(book.steps)]
    return tuple(step for *_, step in sorted(indexed, key=lambda item: item[:3]))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _line(mapping: Any, key: Any) -> int:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return 0


def _item_line(seq: Any, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return 0
