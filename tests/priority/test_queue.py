"""Queue shape and the pause/resume/push controls, against a scripted host (no SSH)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from mailfleet.cli.queue import format_report
from mailfleet.priority.parse_queue import parse_postqueue_json, shape_queue
from mailfleet.priority.classify import fleet_sender_rules
from mailfleet.priority.queue import QueueError, postfix_command, run_queue_command

NOW = 1_795_910_500


def entry(qid, queue, sender, rcpts, age=10, reason=""):
    return json.dumps({"queue_name": queue, "queue_id": qid, "arrival_time": NOW - age, "message_size": 1200,
                       "forced_expire": False, "sender": sender,
                       "recipients": [{"address": r, **({"delay_reason": reason} if reason else {})} for r in rcpts]})


LISTING = "\n".join([
    entry("A1B2C3D4E5", "active", "newsletter@example.com", ["a@gmail.test"]),
    entry("A1B2C3D4E6", "active", "newsletter+c7@example.com", ["b@gmail.test", "c@outlook.test"]),
    entry("A1B2C3D4E7", "incoming", "x@news.example.com", ["d@gmail.test"]),
    entry("B1B2C3D4E8", "deferred", "reset@example.com", ["e@gmail.test"], age=400,
          reason="host gmail.test[10.0.0.1] said: 421 too many connections"),
    entry("B1B2C3D4E9", "incoming", "reset@example.com", ["f@gmail.test"], age=3),
    entry("C1B2C3D4EA", "hold", "offers@shop.example", ["g@gmail.test"], age=900),
    entry("C1B2C3D4EB", "deferred", "", ["h@gmail.test"], age=60, reason="connection timed out"),
    "not json at all",
    json.dumps({"queue_name": "active", "queue_id": "bad id;rm", "sender": "a@b"}),
])


def test_parse_reports_bad_lines_without_failing():
    listing = parse_postqueue_json(LISTING)
    assert len(listing.messages) == 7
    assert len(listing.errors) == 2 and all("skipped" in e for e in listing.errors)


def test_shape_by_class_queue_and_transport(example_fleet):
    addresses, domains = fleet_sender_rules(example_fleet)
    shape = shape_queue(parse_postqueue_json(LISTING), addresses, domains, now=NOW, active_limit=20000)
    bulk, tx = shape["classes"]["bulk"], shape["classes"]["transactional"]
    assert bulk["messages"] == 4 and bulk["recipients"] == 5
    assert bulk["by_queue"] == {"incoming": 1, "active": 2, "deferred": 0, "hold": 1, "maildrop": 0}
    assert tx["messages"] == 3 and tx["by_queue"]["deferred"] == 2 and tx["by_queue"]["incoming"] == 1
    assert tx["oldest_age_seconds"] == 400
    assert bulk["oldest_age_seconds"] == 10  # held mail does not count as waiting
    assert shape["transports"] == {"bulk": 4, "default": 3}
    assert bulk["top_destinations"][0] == {"domain": "gmail.test", "recipients": 4}
    assert any("421 too many connections" in r for r in tx["deferred_reasons"])
    assert any("2 transactional message(s) are deferred" in w for w in shape["warnings"])


def test_full_active_queue_warns(example_fleet):
    addresses, domains = fleet_sender_rules(example_fleet)
    shape = shape_queue(parse_postqueue_json(LISTING), addresses, domains, now=NOW, active_limit=2)
    assert any("active queue holds 2 of 2" in w for w in shape["warnings"])


@dataclass
class Result:
    stdout: str = ""
    stderr: str = ""
    exited: int = 0


@dataclass
class ScriptedHost:
    """Answers the commands queue.py sends; records them and what they got on stdin."""

    listing: str
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    fail: str | None = None
    transport_maps: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def run(self, command, hide=True, warn=True, in_stream=None):
        assert in_stream is not None, "every remote command must say what its stdin is (False or a stream)"
        stdin = in_stream.read() if in_stream else None
        self.calls.append((command, stdin))
        if self.fail and self.fail in command:
            return Result(stderr='service "postfix-mailcow" is not running', exited=1)
        if command.endswith("postqueue -j"):
            return Result(self.listing)
        if "qmgr_message_active_limit" in command:
            return Result("20000\n")
        if command.endswith("postconf -h transport_maps"):
            return Result(self.transport_maps)
        if " cat " in command:
            return Result(self.files.get(command.rsplit(" ", 1)[1], ""), exited=0 if command.rsplit(" ", 1)[1] in
                          self.files else 1)
        if "postsuper -h -" in command or "postsuper -H -" in command:
            # like the real thing: move the messages; no count on a non-terminal stderr
            target = "hold" if "-h -" in command else "deferred"
            moved = set(stdin.split())
            rows = [json.loads(line) for line in self.listing.splitlines() if line.startswith("{")]
            self.listing = "\n".join(json.dumps({**r, "queue_name": target}) if r["queue_id"] in moved
                                     else json.dumps(r) for r in rows)
            return Result()
        return Result()


def test_commands_run_inside_postfix_mailcow(example_fleet):
    command = postfix_command(example_fleet, ["postqueue", "-i", "A1B2C3D4E5"])
    assert command == ("cd /opt/mailcow-dockerized && docker compose exec -T postfix-mailcow "
                       "postqueue -i A1B2C3D4E5")


def test_pause_holds_exactly_the_queued_bulk(example_fleet):
    host = ScriptedHost(LISTING)
    report = run_queue_command(host, example_fleet, "mx1", pause_bulk=True)
    hold = [c for c in host.calls if "postsuper -h -" in c[0]]
    assert len(hold) == 1
    assert sorted(hold[0][1].split()) == ["A1B2C3D4E5", "A1B2C3D4E6", "A1B2C3D4E7"]  # not the held one, no resets
    assert report["action"]["kind"] == "pause-bulk" and report["action"]["selected"] == 3
    assert report["action"]["done"] == 3  # counted from the queue after the move
    assert report["classes"]["bulk"]["by_queue"]["hold"] == 4


def test_resume_releases_held_bulk_and_starts_a_queue_run(example_fleet):
    host = ScriptedHost(LISTING)
    report = run_queue_command(host, example_fleet, "mx1", resume_bulk=True)
    release = [c for c in host.calls if "postsuper -H -" in c[0]]
    assert release and release[0][1].split() == ["C1B2C3D4EA"]
    assert any(c[0].endswith("postqueue -f") for c in host.calls)
    assert report["action"]["selected"] == 1 and report["action"]["done"] == 1
    assert report["classes"]["bulk"]["by_queue"]["hold"] == 0


def test_push_one_message(example_fleet):
    host = ScriptedHost(LISTING)
    run_queue_command(host, example_fleet, "mx1", push="B1B2C3D4E8")
    assert host.calls[-3][0].endswith("postqueue -i B1B2C3D4E8") or any(
        c[0].endswith("postqueue -i B1B2C3D4E8") for c in host.calls)
    host = ScriptedHost(LISTING)
    run_queue_command(host, example_fleet, "mx1", push="C1B2C3D4EA")  # held: released first
    commands = [c[0] for c in host.calls]
    assert commands.index(next(c for c in commands if c.endswith("postsuper -H C1B2C3D4EA"))) < \
        commands.index(next(c for c in commands if c.endswith("postqueue -i C1B2C3D4EA")))


@pytest.mark.parametrize("kwargs,message", [
    ({"push": "NOSUCHID99"}, "no message NOSUCHID99"),
    ({"push": "x; reboot"}, "not a Postfix queue id"),
    ({"pause_bulk": True, "resume_bulk": True}, "choose one of"),
])
def test_refusals_change_nothing(example_fleet, kwargs, message):
    host = ScriptedHost(LISTING)
    with pytest.raises(QueueError, match=message):
        run_queue_command(host, example_fleet, "mx1", **kwargs)
    assert not any("postsuper" in c[0] or "postqueue -i" in c[0] for c in host.calls)


def test_monitoring_host_has_no_queue(example_fleet):
    with pytest.raises(QueueError, match="runs no Mailcow"):
        run_queue_command(ScriptedHost(LISTING), example_fleet, "mon1")


def test_failed_remote_command_says_what_to_check(example_fleet):
    from mailfleet.errors import RemoteError

    with pytest.raises(RemoteError, match="postfix-mailcow running"):
        run_queue_command(ScriptedHost(LISTING, fail="postqueue -j"), example_fleet, "mx1")


def test_text_report(example_fleet):
    report = run_queue_command(ScriptedHost(LISTING), example_fleet, "mx1")
    text = format_report(report)
    assert text.splitlines()[0].startswith("mx1: 7 message(s) queued")
    assert "by transport: bulk 4, default 3" in text


def test_report_names_transport_entries_that_steal_bulk(example_fleet):
    host = ScriptedHost(LISTING, transport_maps=(
        "pcre:/opt/postfix/conf/custom_transport.pcre, pcre:/opt/postfix/conf/local_transport, "
        "proxy:mysql:/opt/postfix/conf/sql/mysql_transport_maps.cf, inline:{ gmail.test=:[10.0.0.9]:25 }"),
        files={"/opt/postfix/conf/custom_transport.pcre": "/^.*@partner\\.test$/ smtp:[gw.partner.test]\n",
               "/opt/postfix/conf/local_transport": "/localhost$/  local:\n"})
    report = run_queue_command(host, example_fleet, "mx1")
    warnings = [f for f in report["findings"] if f["level"] == "warning"]
    assert len(warnings) == 1 and "partner" in warnings[0]["message"]
    assert any("mysql_transport_maps" in f["message"] and f["level"] == "info" for f in report["findings"])
    assert "partner" in format_report(report)
