"""Pure parsers for the facts deploy gathers, and for the batched fact script's output.

Facts are (command, parse) pairs (pyinfra's idea). All of a host's fact commands run in ONE
shell script per round; each command's output is framed by a marker carrying a random nonce
chosen per run, so no file content (mailcow.conf, a certificate) can forge a frame.
"""

from __future__ import annotations

import json
import re
from typing import Any


def render_fact_script(commands: dict[str, str], nonce: str) -> str:
    """One POSIX shell script that runs every fact command and frames its output."""
    if not re.fullmatch(r"[A-Za-z0-9]{8,64}", nonce):
        raise ValueError("nonce must be 8-64 letters or digits")
    parts = ["export LC_ALL=C"]
    for name, command in commands.items():
        if not re.fullmatch(r"[a-z_:.0-9-]+", name):
            raise ValueError(f"bad fact name {name!r}")
        parts.append(f"printf '\\n@@mf:{nonce}:{name}@@\\n'")
        parts.append(f"{{ {command}\n}} 2>/dev/null")
    parts.append(f"printf '\\n@@mf:{nonce}:@end@@\\n'")
    return "\n".join(parts) + "\n"


def parse_fact_output(stdout: str, nonce: str) -> dict[str, str]:
    """Split the script's output into ``{fact name: exact output}``.

    Raises ``ValueError`` when the end marker is missing (the script was cut off): a partial
    fact set must never be planned against.
    """
    pattern = re.compile(rf"\n@@mf:{nonce}:([a-z_:.0-9@-]+)@@\n")
    pieces = pattern.split("\n" + stdout if not stdout.startswith("\n") else stdout)
    names = pieces[1::2]
    if not names or names[-1] != "@end":
        raise ValueError("the fact script did not finish (no end marker); the host may have cut the session")
    bodies = pieces[2::2]
    return {name: body for name, body in zip(names[:-1], bodies[:-1], strict=True)}


def parse_packages(output: str) -> dict[str, bool]:
    """``dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n'`` → name → installed."""
    result: dict[str, bool] = {}
    for line in output.splitlines():
        name, _, status = line.partition("\t")
        if name:
            name = name.split(":", 1)[0]  # strip :amd64
            result[name] = result.get(name, False) or status.strip().startswith("ii")
    return result


# Fact values shared with the compose fact: ``compose=<COMPOSE_VIA_PS>`` means "judge Compose by
# whether `docker compose ps` works"; a failing `ps` reports the pseudo service COMPOSE_FAILED.
COMPOSE_VIA_PS = "via-ps"
COMPOSE_FAILED = "@compose-failed"


def parse_docker(output: str) -> dict[str, Any]:
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    compose = values.get("compose", "").strip() or None
    return {"docker": values.get("docker") == "yes", "compose": compose}


def parse_os(output: str) -> dict[str, str]:
    parts = output.split()
    return {"id": parts[0] if parts else "", "codename": parts[1] if len(parts) > 1 else ""}


def parse_hostname(output: str) -> dict[str, str]:
    lines = [line.strip() for line in output.splitlines()]
    return {"running": lines[0] if lines else "", "file": lines[1] if len(lines) > 1 else ""}


def parse_swap_kib(output: str) -> int:
    """Total swap in KiB from ``/proc/swaps``."""
    total = 0
    for line in output.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():
            total += int(fields[2])
    return total


def parse_sysctl(output: str) -> dict[str, str]:
    """``key<TAB>value`` lines; whitespace inside values normalised like ``sysctl -n``."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            values[key] = " ".join(value.split())
    return values


def parse_checkout(output: str) -> dict[str, Any]:
    """``absent``, or ``present`` then HEAD, the pinned tag's commit (``none`` if the tag is
    unknown), the origin URL, the nearest tag and ``contains`` if HEAD includes the pinned tag."""
    lines = output.splitlines()
    if not lines or lines[0].strip() != "present":
        return {"present": False, "head": "", "tag_commit": "", "origin": "", "describe": "", "contains": False}

    def get(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    tag = get(2)
    return {"present": True, "head": get(1), "tag_commit": "" if tag == "none" else tag, "origin": get(3),
            "describe": get(4), "contains": get(5) == "contains"}


def parse_mailcow_conf(output: str) -> dict[str, Any]:
    """``absent``, or the file mode on the first line and the exact content after it."""
    head, sep, content = output.partition("\n")
    if head.strip() == "absent" or not sep and not head.strip().isdigit():
        return {"present": False, "mode": "", "text": ""}
    return {"present": True, "mode": head.strip(), "text": content}


def parse_file_hashes(output: str) -> dict[str, str | None]:
    """``sha256sum`` lines, or ``- PATH`` for a missing file → path → hex or None."""
    hashes: dict[str, str | None] = {}
    for line in output.splitlines():
        digest, _, path = line.partition("  ")
        if digest == "-" or line.startswith("- "):
            hashes[line[2:]] = None
        elif path:
            hashes[path] = digest
    return hashes


def parse_compose_ps(output: str) -> dict[str, str]:
    """``docker compose ps --format json`` (a JSON array, or one object per line) → service → state."""
    text = output.strip()
    if not text:
        return {}
    items: list[Any] = []
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    states: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict) and item.get("Service"):
            states[str(item["Service"])] = str(item.get("State", "")).lower()
    return states


def parse_compose_services(output: str) -> list[str]:
    """Service names of ``docker-compose.yml`` and its override (YAML documents split by ``---``)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    names: list[str] = []
    for part in re.split(r"(?m)^---\s*$", output):
        if not part.strip():
            continue
        try:
            doc = YAML(typ="safe", pure=True).load(part)
        except YAMLError as exc:
            raise ValueError(f"docker-compose file is not valid YAML: {exc}") from None
        services = doc.get("services") if isinstance(doc, dict) else None
        if isinstance(services, dict):
            names += [str(name) for name in services if str(name) not in names]
    return names
