"""The monitoring host's scheduled jobs: what runs, how often, and the files that schedule it.

Pure. One job runner script (``/opt/mailfleet/bin/mailfleet-job NAME``) holds every command line,
so systemd timers and cron run exactly the same thing, and so does a person or a test ("run it
as the timer would"). Jobs: ``dmarc-fetch`` (the report mailbox over IMAP) and one
``logs-pull-<host>`` per mail host (``logs.pull --host <host>``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Fleet
from mailfleet.monitoring.model import MonitoringLayout

_EVERY = re.compile(r"^([1-9][0-9]?)(min|h)$")
JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,60}$")


@dataclass(frozen=True)
class ImapSource:
    """Where ``dmarc.fetch`` reads reports; ``password_ref`` is relative to the host's config dir."""

    host: str
    port: int
    user: str
    password_ref: str
    starttls: bool = False
    cafile: str = ""


@dataclass(frozen=True)
class Job:
    name: str
    argv: tuple[str, ...]
    every: str  # "15min", "1h"
    why: str


def parse_every(text: str) -> tuple[int, str]:
    found = _EVERY.match(str(text).strip())
    if not found:
        raise MailfleetError(f"schedule {text!r} is not understood; write minutes or hours: 5min, 15min, 1h")
    amount, unit = int(found.group(1)), found.group(2)
    if (unit == "min" and 60 % amount) or (unit == "h" and 24 % amount):
        raise MailfleetError(f"schedule {text!r} does not divide the {'hour' if unit == 'min' else 'day'}; "
                             "pick 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 min or 1, 2, 3, 4, 6, 8, 12 h")
    return amount, unit


def mail_hosts(fleet: Fleet) -> list[str]:
    """Hosts whose Postfix logs are pulled: every host that runs Mailcow."""
    return sorted(name for name, host in fleet.hosts.items() if host.runs_mailcow)


def plan_jobs(fleet: Fleet, layout: MonitoringLayout, imap: ImapSource | None, *, dmarc_every: str,
              logs_every: str) -> list[Job]:
    parse_every(dmarc_every)
    parse_every(logs_every)
    base = (layout.mailfleet,)
    jobs: list[Job] = []
    if imap is not None:
        argv = [*base, "dmarc.fetch", "--db", layout.dmarc_db, "--inventory", layout.inventory,
                "--imap-host", imap.host, "--imap-port", str(imap.port), "--user", imap.user,
                "--password-ref", imap.password_ref]
        if imap.starttls:
            argv.append("--starttls")
        if imap.cafile:
            argv += ["--cafile", imap.cafile]
        jobs.append(Job("dmarc-fetch", tuple(argv), dmarc_every, f"DMARC reports from {imap.user} at {imap.host}"))
    for name in mail_hosts(fleet):
        jobs.append(Job(f"logs-pull-{name}", (*base, "logs.pull", "--host", name, "--db", layout.logs_db,
                                              "--inventory", layout.inventory), logs_every,
                        f"Postfix logs of {name}"))
    for job in jobs:
        if not JOB_NAME.match(job.name):
            raise MailfleetError(f"host name in job {job.name!r} cannot name a systemd unit; rename the host")
    return jobs


def render_job_runner(jobs: Sequence[Job], layout: MonitoringLayout) -> str:
    """``mailfleet-job NAME``: one lock per job, the group-writable umask Grafana's reads need,
    the environment file, output appended to ``/var/log/mailfleet/NAME.log``."""
    cases = "".join(f"  {job.name}) set -- {shlex.join(job.argv)} ;;\n" for job in jobs)
    names = " ".join(job.name for job in jobs) or "(none)"
    return f"""#!/bin/sh
# Runs one mailfleet monitoring job (written by mailfleet deploy; do not edit).
# Called by the systemd timers or /etc/cron.d/mailfleet; run it by hand the same way:
#   {layout.root}/bin/mailfleet-job NAME      NAME: {names}
set -eu
umask 0002
job=${{1:-}}
case "$job" in
{cases}  *) echo "mailfleet-job: unknown job '$job'; jobs: {names}" >&2; exit 2 ;;
esac
if [ -f {shlex.quote(layout.config_dir + '/mailfleet.env')} ]; then
  set -a; . {shlex.quote(layout.config_dir + '/mailfleet.env')}; set +a
fi
mkdir -p /var/log/mailfleet /run/mailfleet
cd {shlex.quote(layout.config_dir)}
exec 9>"/run/mailfleet/$job.lock"
if ! flock -n 9; then echo "mailfleet-job: $job is still running; skipped" >&2; exit 0; fi
printf '%s start %s\\n' "$(date -u +%FT%TZ)" "$job" >> "/var/log/mailfleet/$job.log"
status=0
"$@" >> "/var/log/mailfleet/$job.log" 2>&1 || status=$?
# SQLite creates files 0644 whatever the umask; Grafana (group {layout.data_gid}) needs rw for WAL reads.
chmod g+rw {shlex.quote(layout.data_dir)}/*.sqlite* 2>/dev/null || true
printf '%s end %s exit %s\\n' "$(date -u +%FT%TZ)" "$job" "$status" >> "/var/log/mailfleet/$job.log"
exit "$status"
"""


def _on_calendar(every: str) -> str:
    amount, unit = parse_every(every)
    return f"*:0/{amount}:00" if unit == "min" else f"0/{amount}:00:00"


def _cron(every: str) -> str:
    amount, unit = parse_every(every)
    if unit == "min":
        return "* * * * *" if amount == 1 else f"*/{amount} * * * *"
    return "0 * * * *" if amount == 1 else f"0 */{amount} * * *"


def render_systemd_units(jobs: Sequence[Job], layout: MonitoringLayout) -> dict[str, str]:
    """``/etc/systemd/system`` file name -> content: one template service, one timer per job."""
    units = {"mailfleet-job@.service": f"""# Written by mailfleet deploy (monitoring role); do not edit.
[Unit]
Description=mailfleet monitoring job %i
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart={layout.root}/bin/mailfleet-job %i
TimeoutStartSec=1h
"""}
    for job in jobs:
        units[f"mailfleet-{job.name}.timer"] = f"""# Written by mailfleet deploy (monitoring role); do not edit.
[Unit]
Description=mailfleet: {job.why}, every {job.every}

[Timer]
OnCalendar={_on_calendar(job.every)}
RandomizedDelaySec=30
Persistent=true
Unit=mailfleet-job@{job.name}.service

[Install]
WantedBy=timers.target
"""
    return units


def render_cron(jobs: Sequence[Job], layout: MonitoringLayout) -> str:
    lines = ["# mailfleet monitoring jobs: written by mailfleet deploy (monitoring role); do not edit.",
             "SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ""]
    for job in jobs:
        lines.append(f"# {job.why}")
        lines.append(f"{_cron(job.every)} root {layout.root}/bin/mailfleet-job {job.name}")
    return "\n".join(lines) + "\n"


def parse_cron_jobs(text: str) -> dict[str, str]:
    """Job name -> schedule from an ``/etc/cron.d/mailfleet`` (for tests and status)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[5] == "root" and parts[6].endswith("/mailfleet-job"):
            out[parts[7]] = " ".join(parts[:5])
    return out


def imap_from_fleet(fleet: Fleet, params: Mapping[str, object], secrets_dir: str) -> ImapSource | None:
    """The report mailbox: ``fleet.dmarc_reports`` at its domain's first inbound host (IMAPS 993);
    its password is the mailbox password ``add-domain`` generated, unless the step overrides it."""
    user = str(params.get("imap_user") or fleet.settings.dmarc_reports or "")
    if not user:
        return None
    host = str(params.get("imap_host") or "")
    if not host:
        domain = fleet.domains.get(user.rpartition("@")[2])
        if domain is None or not domain.inbound:
            return None
        first = sorted(domain.inbound, key=lambda item: item[1])[0][0]
        host = fleet.hosts[first].hostname
    password_ref = str(params.get("imap_password_ref") or f"file:{secrets_dir}/mailboxes/{user}.password")
    starttls = bool(params.get("imap_starttls", False))
    port = int(params.get("imap_port") or (143 if starttls else 993))
    return ImapSource(host=host, port=port, user=user, password_ref=password_ref, starttls=starttls,
                      cafile=str(params.get("imap_cafile") or ""))
