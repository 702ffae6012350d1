"""A fact round cut off before its end marker is run once more (it only reads), never planned."""

from __future__ import annotations

import pytest

from mailfleet.deploy.facts import Fact
from mailfleet.deploy.gather import gather_facts
from mailfleet.deploy.remote import RemoteResult
from mailfleet.errors import RemoteError

from deploy_helpers import FakeRemote

FACTS = [Fact("hostname", "hostname", lambda out: out.strip())]


class CutOffRemote(FakeRemote):
    """Drops the end of the output for the first ``cuts`` fact rounds."""

    def __init__(self, cuts: int) -> None:
        super().__init__("mx1", {"hostname": "mx1.example.com\n"})
        self.cuts = cuts

    def run(self, script: str, *, timeout: int) -> RemoteResult:
        result = super().run(script, timeout=timeout)
        if self.cuts > 0:
            self.cuts -= 1
            return RemoteResult(0, result.stdout.split("@end")[0][:-10], "")
        return result


def test_one_cut_off_round_is_retried() -> None:
    remote = CutOffRemote(cuts=1)
    assert gather_facts(remote, FACTS) == {"hostname": "mx1.example.com"}
    assert len(remote.scripts) == 2


def test_two_cut_off_rounds_are_an_error_that_says_so() -> None:
    remote = CutOffRemote(cuts=2)
    with pytest.raises(RemoteError, match="gathering facts failed twice"):
        gather_facts(remote, FACTS)
    assert len(remote.scripts) == 2
