"""The monitoring role's planners (pure), on the deploy tests' fleet with canned facts."""

from __future__ import annotations

import base64
import copy
import hashlib
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import converged_facts, load_test_inventory, plan_input

from mailfleet.deploy.model import Shell
from mailfleet.deploy.plan import plan_host
from mailfleet.errors import MailfleetError
from mailfleet.monitoring.model import MonitoringLayout
from mailfleet.monitoring.plan_deploy import CRON_FILE, GENERATE_PREFIX, WHEEL_PREFIX
from mailfleet.monitoring.render_jobs import (ImapSource, parse_cron_jobs, parse_every, plan_jobs, render_cron,
                                              render_job_runner, render_systemd_units)

LAYOUT = MonitoringLayout()


@pytest.fixture(scope="module")
def job():  # type: ignore[no-untyped-def]
    """mon1 of the deploy tests' fleet with every step of its playbooks, the monitoring role's too."""
    from mailfleet.deploy.run import HostJob
    from mailfleet.deploy.sources import host_steps, load_host_sources, load_playbooks

    from mailfleet.monitoring import load_deploy

    # A small fake wheelhouse: these tests plan, they need names, digests and bytes, not pip
    # (the lab test builds and installs the real one).
    wheels = {"mailfleet-0.1.0-py3-none-any.whl": b"mailfleet wheel", "dep-1.0-py3-none-any.whl": b"dependency"}
    manifest = "# mailfleet wheelhouse\n# python 3.11\n" + "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(wheels.items()))
    fake = (manifest, {name: base64.encodebytes(data).decode() for name, data in wheels.items()})
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(load_deploy._WHEELHOUSE_CACHE, str(load_deploy.REPO_ROOT), fake)
        inv = load_test_inventory()
        host = inv.fleet.hosts["mon1"]
        steps = host_steps(host, load_playbooks())
        return HostJob(host, inv.fleet, steps, load_host_sources(host, inv, steps))


def _plan(job, facts):  # type: ignore[no-untyped-def]
    return {s.name: s for s in plan_host(job.steps, plan_input(job, facts, None)).steps}


def _script(step) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(a.script for a in step.actions if isinstance(a, Shell))


def test_jobs_cron_and_timers() -> None:
    fleet = load_test_inventory().fleet
    imap = ImapSource("mx1.mail.example.com", 993, "dmarc@example.com", "file:/etc/mailfleet/secrets/x")
    jobs = plan_jobs(fleet, LAYOUT, imap, dmarc_every="15min", logs_every="5min")
    names = [j.name for j in jobs]
    assert names[0] == "dmarc-fetch" and "logs-pull-mon1" not in names
    assert {n for n in names if n.startswith("logs-pull-")} == {f"logs-pull-{h}" for h in ("mx1", "relay1", "tx1")}
    cron = parse_cron_jobs(render_cron(jobs, LAYOUT))
    assert cron == {"dmarc-fetch": "*/15 * * * *", **{n: "*/5 * * * *" for n in names[1:]}}
    units = render_systemd_units(jobs, LAYOUT)
    assert "OnCalendar=*:0/15:00" in units["mailfleet-dmarc-fetch.timer"]
    assert "Unit=mailfleet-job@logs-pull-mx1.service" in units["mailfleet-logs-pull-mx1.timer"]
    assert "ExecStart=/opt/mailfleet/bin/mailfleet-job %i" in units["mailfleet-job@.service"]
    fetch = jobs[0].argv
    assert fetch[:2] == (LAYOUT.mailfleet, "dmarc.fetch") and "--password-ref" in fetch and PASSWORDLESS(fetch)
    for bad in ("7min", "every hour", "0min", "5h"):
        with pytest.raises(MailfleetError):
            parse_every(bad)
    assert parse_every("1h") == (1, "h")


def PASSWORDLESS(argv: tuple[str, ...]) -> bool:
    """The password itself never appears on a command line, only its reference."""
    return all("secret" not in a or a.startswith("file:") for a in argv)


def test_runner_is_valid_shell_and_refuses_unknown_jobs(tmp_path: Path) -> None:
    fleet = load_test_inventory().fleet
    runner = tmp_path / "mailfleet-job"
    runner.write_text(render_job_runner(plan_jobs(fleet, LAYOUT, None, dmarc_every="15min", logs_every="5min"),
                                        LAYOUT))
    assert subprocess.run(["sh", "-n", str(runner)]).returncode == 0
    done = subprocess.run(["sh", str(runner), "no-such-job"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "logs-pull-mx1" in done.stderr


def test_converged_monitoring_host_plans_nothing(job) -> None:  # type: ignore[no-untyped-def]
    for init in ("cron", "systemd"):
        facts = converged_facts(job)
        from mailfleet.monitoring.plan_deploy import converged_facts as mon_converged

        facts.update(mon_converged(job.steps, job.sources.files, init=init))
        steps = _plan(job, facts)
        assert all(s.status == "ok" for n, s in steps.items() if n != "jobs"), [(s.name, s.changes) for s in steps.values()]
        # The test fleet keeps no report-mailbox password: nothing to change, but said, not hidden.
        assert steps["jobs"].status == "warning" and not steps["jobs"].changes
        assert "dmarc.fetch not scheduled" in steps["jobs"].note


def test_fresh_cron_host_gets_files_secrets_and_cron(job) -> None:  # type: ignore[no-untyped-def]
    facts = converged_facts(job)
    facts["mon_files"] = {"files": {}, "datadir": ""}
    facts["mon_init"] = {"init": "cron", "timers": {}}
    jobs = _plan(job, facts)["jobs"]
    assert jobs.status == "change"
    assert any(c.startswith(CRON_FILE) for c in jobs.changes)
    assert not any("/etc/systemd/system" in c for c in jobs.changes)
    script = _script(jobs)
    assert "install -d -m 2775 -o 0 -g 472 /var/lib/mailfleet" in script
    secrets = [k for k in job.sources.files["jobs"] if "/secrets/" in k]
    for key in secrets:  # written 0600, their folders 0700, their content never in a change line
        assert key.startswith("host:/etc/mailfleet/")
        assert f"chown 0:0 {key[len('host:'):]}" in script
        assert not any(job.sources.files["jobs"][key].strip()[:20] in c for c in jobs.changes)
    grafana = _plan(job, facts)["grafana"]
    assert grafana.changes[-1].startswith("docker compose up -d")


def test_systemd_host_enables_timers_and_drops_stale_ones(job) -> None:  # type: ignore[no-untyped-def]
    from mailfleet.monitoring.plan_deploy import converged_facts as mon_converged

    facts = converged_facts(job)
    facts.update(mon_converged(job.steps, job.sources.files, init="systemd"))
    facts = copy.deepcopy(facts)
    facts["mon_init"]["timers"]["mailfleet-logs-pull-mx1.timer"] = ("disabled", "inactive")
    facts["mon_files"]["files"]["/etc/systemd/system/mailfleet-logs-pull-gone.timer"] = ("0" * 64, "644", 0, 0)
    jobs = _plan(job, facts)["jobs"]
    script = _script(jobs)
    assert "systemctl disable --now mailfleet-logs-pull-gone.timer" in script
    assert "systemctl enable --now" in script and "systemctl daemon-reload" in script
    assert any("enable and start 1 timer(s): mailfleet-logs-pull-mx1.timer" == c for c in jobs.changes)


def test_install_uploads_only_what_differs_and_refuses_another_python(job) -> None:  # type: ignore[no-untyped-def]
    facts = converged_facts(job)
    from mailfleet.monitoring.plan_deploy import converged_facts as mon_converged

    facts.update(mon_converged(job.steps, job.sources.files))
    wheels = [k[len(WHEEL_PREFIX):] for k in job.sources.files["mailfleet"] if k.startswith(WHEEL_PREFIX)]
    own = next(w for w in wheels if w.startswith("mailfleet-"))
    changed = copy.deepcopy(facts)
    changed["mon_install"]["manifest"][own] = "0" * 64
    changed["mon_install"]["installed"] = "old"
    step = _plan(job, changed)["mailfleet"]
    assert step.changes[0].startswith("upload 1 wheel(s)") and "pip --no-index" in step.changes[-1]
    script = _script(step)
    assert script.count("base64 -d") == 1 + 1  # the wheel and the MANIFEST
    assert "--no-index --find-links /opt/mailfleet/wheels mailfleet" in script
    other = copy.deepcopy(facts)
    other["mon_install"]["python"] = "3.9"
    refused = _plan(job, other)["mailfleet"]
    assert refused.status == "warning" and "Python 3.9" in refused.note


def test_grafana_password_generated_on_the_host_when_not_kept(job) -> None:  # type: ignore[no-untyped-def]
    keys = job.sources.files["grafana"]
    target = "/opt/mailfleet/grafana/secrets/grafana_admin_password"
    assert GENERATE_PREFIX + target in keys and "host:" + target not in keys  # the test fleet keeps none
    assert not any(key.startswith("/") for step in job.sources.files.values() for key in step)  # never absolute
    facts = converged_facts(job)
    facts["mon_files"] = {"files": {}, "datadir": ""}
    step = _plan(job, facts)["grafana"]
    script = _script(step)
    assert "/dev/urandom" in script and f"chown 472:0 {target}" in script and f"chmod 0400 {target}" in script


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="needs systemd-analyze (package systemd)")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd itself reads the units (no running systemd needed): calendar specs, ExecStart, Unit=."""
    layout = MonitoringLayout(root=str(tmp_path / "root"))
    (tmp_path / "root" / "bin").mkdir(parents=True)
    runner = tmp_path / "root" / "bin" / "mailfleet-job"
    runner.write_text("#!/bin/sh\n")
    runner.chmod(0o755)
    imap = ImapSource("mx1.mail.example.com", 993, "dmarc@example.com", "file:/etc/mailfleet/secrets/x")
    jobs = plan_jobs(load_test_inventory().fleet, layout, imap, dmarc_every="15min", logs_every="5min")
    units = tmp_path / "units"
    units.mkdir()
    for name, text in render_systemd_units(jobs, layout).items():
        (units / name).write_text(text)
    names = [f"./{p.name}" for p in sorted(units.glob("*.timer"))] + ["./mailfleet-job@logs-pull-mx1.service"]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=units, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    (units / "mailfleet-dmarc-fetch.timer").write_text(
        (units / "mailfleet-dmarc-fetch.timer").read_text().replace("OnCalendar=*:0/15:00", "OnCalendar=sometimes"))
    broken = subprocess.run(["systemd-analyze", "verify", "--man=no", "./mailfleet-dmarc-fetch.timer"], cwd=units,
                            capture_output=True, text=True, timeout=60)
    assert "Failed to parse calendar specification" in broken.stderr  # the check can fail


def test_fact_parsers_read_what_the_commands_print() -> None:
    from mailfleet.monitoring.plan_deploy import (parse_files_fact, parse_init_fact, parse_install_fact,
                                                  render_raw_facts)

    files = parse_files_fact("600 0 0 " + "a" * 64 + "  /etc/mailfleet/secrets/k\n"
                             "400 472 0 " + "b" * 64 + "  /opt/mailfleet/grafana/secrets/grafana_admin_password\n"
                             "datadir 2775 0 472\nsecretdir 755 /etc/mailfleet/secrets/lab\n"
                             "stat: cannot stat 'x': No such file or directory\n")
    assert files["files"]["/etc/mailfleet/secrets/k"] == ("a" * 64, "600", 0, 0)
    assert files["files"]["/opt/mailfleet/grafana/secrets/grafana_admin_password"][1:] == ("400", 472, 0)
    assert files["datadir"] == "2775 0 472" and files["secret_dirs"] == {"/etc/mailfleet/secrets/lab": "755"}
    install = parse_install_fact("# python 3.11\n" + "c" * 64 + "  x-1-py3-none-any.whl\n@@\nd1\n@@\n3.11\n@@\nvenv-ok\n")
    assert install == {"manifest": {"x-1-py3-none-any.whl": "c" * 64}, "installed": "d1", "python": "3.11", "venv": True}
    assert parse_install_fact("@@\n@@\n3.9\n@@\n") == {"manifest": {}, "installed": "", "python": "3.9", "venv": False}
    init = parse_init_fact("systemd\nmailfleet-dmarc-fetch.timer enabled active\n")
    assert init == {"init": "systemd", "timers": {"mailfleet-dmarc-fetch.timer": ("enabled", "active")}}
    assert parse_init_fact("cron\n")["init"] == "cron"
    again = {k: v for k, v in files.items() if k != "secret_dirs"}
    assert parse_files_fact(render_raw_facts({"mon_files": again})["mon_files"])["files"] == files["files"]
