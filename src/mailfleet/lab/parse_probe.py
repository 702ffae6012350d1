"""Read the answer of the status probe ``lab.status`` runs on each host over SSH. Pure."""

from __future__ import annotations

import shlex


def render_probe_command(install_dir: str, api_port: int) -> str:
    """One shell command that prints the hostname, then ``service=state`` lines (cheap checks)."""
    conf = shlex.quote(f"{install_dir}/mailcow.conf")
    port = int(api_port)

    def tcp(name: str, port_no: int) -> str:
        return (f"if timeout 2 bash -c 'echo > /dev/tcp/127.0.0.1/{port_no}' 2>/dev/null; "
                f"then echo {name}=up; else echo {name}=down; fi")

    return "; ".join([
        "hostname",
        "if postfix status >/dev/null 2>&1; then echo postfix=up; else echo postfix=down; fi",
        f"if [ -f /etc/dovecot/lab-users ]; then {tcp('dovecot', 143)}; else echo dovecot=none; fi",
        f"if [ -f {conf} ]; then {tcp('mailcow_api', port)}; else echo mailcow_api=none; fi",
    ])


def parse_probe_output(text: str) -> dict[str, str]:
    """``{"hostname": ..., "postfix": "up"|"down", "dovecot": ..., "mailcow_api": ...}``;
    a missing line reads as ``unknown``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    result = {"hostname": "", "postfix": "unknown", "dovecot": "unknown", "mailcow_api": "unknown"}
    if not lines:
        return result
    result["hostname"] = lines[0]
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if sep and key in result and value in ("up", "down", "none"):
            result[key] = value
    return result
