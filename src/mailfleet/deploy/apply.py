"""Apply planned steps to a host. The ONLY module in deploy that changes anything.

A round's shell fragments go to the host as ONE script (each step in its own subshell with
``set -eu``, a marker before each so a failure names its step); Python actions (waiting for
containers, API writes) run in plan order between the shell batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mailfleet.deploy.model import ApiCall, PlannedStep, Shell, WaitRunning
from mailfleet.deploy.remote import Remote
from mailfleet.errors import MailcowApiError, RemoteError

POLL_SECONDS = 2.0


def render_apply_script(batch: Sequence[tuple[int, PlannedStep, Shell]]) -> str:
    lines = ["export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    for index, _step, action in batch:
        lines.append(f"echo '@@mf-step:{index}@@'")
        # Not `( ... ) || exit`: POSIX shells ignore `set -e` inside a command that is part of
        # an || list, so a failing command would not stop its step. Test the status afterwards.
        lines.append(f"(\nset -eu\n{action.script}\n)\nmf_rc=$?; [ \"$mf_rc\" -eq 0 ] || exit \"$mf_rc\"")
    lines.append("echo '@@mf-step:done@@'")
    return "\n".join(lines) + "\n"


def _failed_step(stdout: str, batch: Sequence[tuple[int, PlannedStep, Shell]]) -> PlannedStep | None:
    last = None
    for line in stdout.splitlines():
        if line.startswith("@@mf-step:") and line.endswith("@@"):
            last = line[len("@@mf-step:"):-2]
    for index, step, _ in batch:
        if str(index) == last:
            return step
    return None


def apply_steps(remote: Remote, steps: Sequence[PlannedStep], *,
                sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Run every action of ``steps`` in order; raise ``RemoteError``/``MailcowApiError`` naming the step."""
    batch: list[tuple[int, PlannedStep, Shell]] = []
    bound: dict[str, Any] = {}

    def flush() -> None:
        if not batch:
            return
        script = render_apply_script(batch)
        timeout = sum(action.timeout for _, _, action in batch)
        result = remote.run(script, timeout=timeout)
        if result.exit_code != 0 or "@@mf-step:done@@" not in result.stdout:
            step = _failed_step(result.stdout, batch)
            tail = " | ".join((result.stderr.strip() or result.stdout.strip()).splitlines()[-8:])
            raise RemoteError(f"{remote.name}: step {step.name if step else '?'!r} failed (exit {result.exit_code}): "
                              f"{tail or 'no output'}")
        batch.clear()

    for index, step in enumerate(steps):
        for action in step.actions:
            if isinstance(action, Shell):
                batch.append((index, step, action))
                continue
            flush()
            if isinstance(action, WaitRunning):
                wait_running(remote, action.timeout, sleep=sleep, clock=clock)
            elif isinstance(action, ApiCall):
                call_api(remote, step, action, bound)
    flush()


def wait_running(remote: Remote, timeout: int, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Poll ``get/status/containers`` until every container is running, or fail naming the laggards."""
    reset = getattr(remote, "reset_api", None)
    if reset is not None:
        reset()  # a new installation has a new certificate and key: open the tunnel afresh
    deadline = clock() + timeout
    last = "no answer yet"
    while True:
        try:
            containers = remote.api().get_containers()
            laggards = sorted(name for name, info in containers.items() if str(info.get("state")) != "running")
            if containers and not laggards:
                return
            last = (f"not running: {', '.join(laggards)}" if laggards else "the API lists no containers")
        except (MailcowApiError, RemoteError) as exc:
            last = str(exc)
            if reset is not None:
                reset()
        if clock() >= deadline:
            raise RemoteError(f"{remote.name}: Mailcow did not come up within {timeout} s ({last}); "
                              "look at `docker compose ps` and `docker compose logs` on the host")
        sleep(POLL_SECONDS)


def call_api(remote: Remote, step: PlannedStep, action: ApiCall, bound: dict[str, Any]) -> None:
    api = remote.api()
    method = getattr(api, action.method, None)
    if method is None or action.method.startswith("_") or action.method.startswith("get"):
        raise RemoteError(f"{remote.name}: step {step.name!r} asks for an unknown API write {action.method!r}")
    kwargs = {key: (bound[value[1:]] if isinstance(value, str) and value.startswith("@") else value)
              for key, value in action.kwargs.items()}
    try:
        result = method(*action.args, **kwargs)
    except MailcowApiError as exc:
        raise MailcowApiError(f"step {step.name!r}: {exc}") from None
    if action.binds:
        bound[action.binds] = str(result)
