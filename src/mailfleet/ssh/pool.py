"""Run one function per host on a bounded pool and collect every host's outcome.

One host's failure never hides another's (Fabric's ``GroupException.result``): the caller gets
an outcome for every host and decides afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from mailfleet.errors import MailfleetError
from mailfleet.inventory.model import Host

T = TypeVar("T")
MAX_PARALLEL_HOSTS = 8


@dataclass
class Outcome(Generic[T]):
    host: str
    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_on_hosts(hosts: Sequence[Host], work: Callable[[Host], T], *,
                 max_parallel: int = MAX_PARALLEL_HOSTS) -> dict[str, Outcome[T]]:
    """Call ``work(host)`` for each host, at most ``max_parallel`` at once; errors become outcomes.

    ``MailfleetError`` messages are kept as they are; any other exception is reported with its
    type so a bug on one host is visible without stopping the others.
    """

    def guarded(host: Host) -> Outcome[T]:
        try:
            return Outcome(host.name, value=work(host))
        except MailfleetError as exc:
            return Outcome(host.name, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one host's bug must not hide the others
            return Outcome(host.name, error=f"{type(exc).__name__}: {exc}")

    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(hosts)))) as pool:
        results = list(pool.map(guarded, hosts))
    return {outcome.host: outcome for outcome in results}
