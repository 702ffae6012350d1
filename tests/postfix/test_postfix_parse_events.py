"""Message events: delivery lines with optional fields in any order, long queue ids, rejects,
bounces; and every whyscream/postfix-grok-patterns case checked against its expected fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mailfleet.postfix.model import ACTIVE, BOUNCE, CLIENT, DELIVERY, EXPIRED, MSGID, PICKUP, REJECT, REMOVED
from mailfleet.postfix.parse_events import parse_event, parse_relay, transport_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postfix"

D_RCPT, D_ORIG, D_RELAY, D_CONN, D_DELAY, D_A, D_B, D_C, D_D, D_TLS, D_DSN, D_STATUS, D_REPLY, D_NEXT = range(5, 19)


def event(text: str, tag: str = "postfix/smtp"):
    return parse_event(1000.0, "mx1", tag, text)


def test_delivery_with_every_optional_field() -> None:
    e = event(
        "0D9633D: to=<jos@example.com>, orig_to=<bestuur@example.com>, relay=mail1.example.net[10.74.103.11]:25, "
        "conn_use=2, delay=11, delays=5.4/0.06/5.1/0.03, tls=dane, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as F12DF84004)"
    )
    assert e[0] == DELIVERY and e[3] == "0D9633D"
    assert e[D_RCPT] == "jos@example.com" and e[D_ORIG] == "bestuur@example.com"
    assert e[D_RELAY] == "mail1.example.net[10.74.103.11]:25" and e[D_CONN] == 2
    assert (e[D_DELAY], e[D_A], e[D_B], e[D_C], e[D_D]) == (11.0, 5.4, 0.06, 5.1, 0.03)
    assert (e[D_TLS], e[D_DSN], e[D_STATUS]) == ("dane", "2.0.0", "sent")
    assert e[D_REPLY] == "250 2.0.0 Ok: queued as F12DF84004" and e[D_NEXT] == "F12DF84004"


def test_delivery_fields_in_another_order_parse_the_same() -> None:
    a = event("7EE668039: to=<u@example.com>, relay=m.example.com[1.2.3.4]:25, delay=3.6, delays=0.08/0.02/0.85/0.14, tls=dane/!requiretls:nocertmatch, dsn=2.1.5, status=sent (250 ok)")
    b = event("7EE668039: to=<u@example.com>, tls=dane/!requiretls:nocertmatch, delays=0.08/0.02/0.85/0.14, relay=m.example.com[1.2.3.4]:25, delay=3.6, dsn=2.1.5, status=sent (250 ok)")
    assert a == b
    assert a[D_TLS] == "dane/!requiretls:nocertmatch"


def test_long_queue_ids_and_bare_recipients() -> None:
    e = event("4PcV4K5FPLz3tBr: to=ghdsgfhdslfh@localhost, relay=local, delay=0.05, delays=0.02/0/0/0.02, dsn=5.1.1, status=bounced (unknown user: \"ghdsgfhdslfh\")", "postfix/local")
    assert e[3] == "4PcV4K5FPLz3tBr" and e[D_RCPT] == "ghdsgfhdslfh@localhost" and e[D_STATUS] == "bounced"


def test_relay_none_and_local_forward() -> None:
    e = event("2DC5552A34: to=<user@yahoo.com>, relay=none, delay=63495, delays=63350/144/0/0, dsn=4.4.2, status=deferred (delivery temporarily suspended: lost connection)", "postfix/qmgr")
    assert e[D_RELAY] == "none" and e[D_B] == 144.0 and e[D_NEXT] is None
    forward = event("A1B2C3D4E5: to=<a@x.example>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (forwarded as 9F8E7D6C5B)", "postfix/local")
    assert forward[D_NEXT] == "9F8E7D6C5B"


@pytest.mark.parametrize(
    ("relay", "parts"),
    [
        ("mx00.gmx.net[212.227.15.9]:25", ("mx00.gmx.net", "212.227.15.9", 25)),
        ("gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b]:25", ("gmail-smtp-in.l.google.com", "2607:f8b0:400e:c04::1b", 25)),
        ("dovecot[private/dovecot-lmtp]", ("dovecot", "private/dovecot-lmtp", None)),
        ("local", ("local", None, None)),
        ("none", ("none", None, None)),
    ],
)
def test_relay_forms(relay: str, parts: tuple) -> None:
    assert parse_relay(relay) == parts


@pytest.mark.parametrize(
    ("tag", "transport"),
    [("postfix/smtp", "smtp"), ("postfix/bulk/smtp", "bulk"), ("enforced-tls-smtp/smtp", "enforced-tls-smtp"),
     ("postfix/lmtp", "lmtp"), ("smtp", "smtp"), ("postfix-out/smtp", "postfix-out")],
)
def test_transport_is_the_service_part_of_the_tag(tag: str, transport: str) -> None:
    assert transport_of(tag) == transport


def test_lifecycle_lines() -> None:
    assert event("6E93E593F2: client=mail9.sender56.example[185.227.230.80]", "postfix/smtpd")[:9] == (
        CLIENT, 1000.0, "mx1", "6E93E593F2", "postfix/smtpd", "mail9.sender56.example", "185.227.230.80", None, None)
    sasl = event("EB4B2C19E2: client=xxx[1.2.3.4], sasl_method=PLAIN, sasl_username=user@domain", "postfix/submission/smtpd")
    assert sasl[7] == "user@domain"
    reinject = event("C0FFEE1234: client=localhost[127.0.0.1], orig_queue_id=4C2B5A6, orig_client=m.example[192.0.2.9]", "postfix/10025/smtpd")
    assert reinject[8] == "4C2B5A6"
    assert event("0F5383D: message-id=<544D2523.30609@rhsoft.net>", "postfix/cleanup")[4] == "544D2523.30609@rhsoft.net"
    assert event("4104E3D: message-id=<>", "postfix/cleanup")[:5] == (MSGID, 1000.0, "mx1", "4104E3D", "")
    assert event("0F5383D: from=<owner@postfix.org>, size=5360, nrcpt=1 (queue active)", "postfix/qmgr")[4:] == ("owner@postfix.org", 5360, 1)
    assert event("0F5383D: from=<>, size=5360, nrcpt=1 (queue active)", "postfix/qmgr")[0] == ACTIVE
    assert event("0F5383D: removed", "postfix/qmgr")[0] == REMOVED
    assert event("BACE842E73: from=<noreply@domain.com>, status=force-expired, returned to sender", "postfix/qmgr")[:5] == (
        EXPIRED, 1000.0, "mx1", "BACE842E73", "noreply@domain.com")
    assert event("17CCA8044: sender non-delivery notification: ADD2F8052", "postfix/bounce")[4:] == ("sender non-delivery", "ADD2F8052")
    assert event("4B2C59F3A: uid=0 from=<fail2ban>", "postfix/pickup")[:6] == (PICKUP, 1000.0, "mx1", "4B2C59F3A", "postfix/pickup", "fail2ban")


def test_rejects_from_smtpd_postscreen_and_cleanup() -> None:
    smtpd = event("NOQUEUE: reject: RCPT from unknown[91.192.63.131]: 550 5.1.1 <jonas@club.example.org>: Recipient address rejected: User unknown; from=<rita@spam.example> to=<sven@example.net> proto=ESMTP helo=<ylmf-pc>", "postfix/smtpd")
    assert smtpd[0] == REJECT and smtpd[3] is None
    assert smtpd[5:11] == ("reject", "RCPT", "unknown", "91.192.63.131", 550, "5.1.1")
    assert smtpd[12:] == ("rita@spam.example", "sven@example.net", "ylmf-pc")
    screen = event("NOQUEUE: reject: RCPT from [77.158.254.222]:10233: 550 5.7.1 Service unavailable; client [77.158.254.222] blocked using zen.spamhaus.org; from=<n@spam29.example>, to=<m@shop.example>, proto=ESMTP, helo=<User>", "postfix/postscreen")
    assert screen[8] == "77.158.254.222" and screen[12:] == ("n@spam29.example", "m@shop.example", "User")
    milter = event("4104E3D: milter-reject: END-OF-MESSAGE from h.example[61.238.241.86]: 5.7.1 Blocked by SpamAssassin; from=<w@c.com> to=<v@example.com> proto=ESMTP helo=<e.com>", "postfix/cleanup")
    assert milter[3] == "4104E3D" and milter[5:7] == ("milter-reject", "END-OF-MESSAGE") and milter[10] == "5.7.1"
    assert event("NOQUEUE: reject: CONNECT from [1.2.3.4]:5678: too many connections", "postfix/postscreen")[5:9] == (
        "reject", "CONNECT", None, "1.2.3.4")


@pytest.mark.parametrize(
    "text",
    ["connect from a[192.0.2.1]", "warning: SASL authentication failure: Password verification failed",
     "statistics: max connection rate 1/60s for (smtpd:61.238.241.86) at Oct 26 18:13:50",
     "Trusted TLS connection established to mx[1.2.3.4]:25: TLSv1.3", "ABCDEF1234: skipped, still being delivered",
     "123456789AB: host example.com[123.45.67.89] said: 451 try later (in reply to RCPT TO command)"],
)
def test_lines_that_do_not_move_a_message_are_none(text: str) -> None:
    assert event(text, "postfix/smtp") is None


# --- whyscream/postfix-grok-patterns: every test case, checked against its expected fields ---

_DAEMON_OF_CASE = {"tls_features": "smtp", "command_counter_data": "smtpd", "delays": "smtp", "trivial_rewrite": "trivial-rewrite"}


def _cases() -> list[tuple[str, dict]]:
    yaml = YAML(typ="safe")
    return [(p.stem, yaml.load(p.read_text())) for p in sorted((FIXTURES / "whyscream-postfix-grok-patterns" / "test").glob("*.yaml"))]


CASES = _cases()


def test_there_are_whyscream_cases() -> None:
    assert len(CASES) == 191


@pytest.mark.parametrize(("name", "case"), CASES, ids=[name for name, _ in CASES])
def test_whyscream_case(name: str, case: dict) -> None:
    prefix = name.rsplit("_", 1)[0]
    daemon = _DAEMON_OF_CASE.get(prefix, prefix)
    data = case.get("data")
    if not isinstance(data, str):
        pytest.skip("multi-line or empty case")
    expected = case.get("results") or {}
    got = event(data, f"postfix/{daemon}")  # must never raise
    qid = expected.get("postfix_queueid")
    if expected.get("postfix_status") in ("sent", "deferred", "bounced") and qid and "to=" in data:
        assert got is not None and got[0] == DELIVERY, data
        assert got[3] == qid and got[D_STATUS] == expected["postfix_status"]
        if "postfix_smtp_response" in expected:
            assert got[D_REPLY] == expected["postfix_smtp_response"]
    if got is not None and got[0] == DELIVERY and "postfix_relay_hostname" in expected:
        host, ip, port = parse_relay(got[D_RELAY])
        assert host == expected["postfix_relay_hostname"]
        if "postfix_relay_ip" in expected:
            assert ip == expected["postfix_relay_ip"]
        if "postfix_relay_port" in expected:
            assert port == int(expected["postfix_relay_port"])
    if "postfix_bounce_queueid" in expected:
        assert got is not None and got[0] == BOUNCE and got[5] == expected["postfix_bounce_queueid"]
    if expected.get("postfix_milter_result") == "reject":
        assert got is not None and got[0] == REJECT and got[5] == "milter-reject"
    if got is not None and got[0] == REJECT and "postfix_client_ip" in expected:
        assert got[8] == expected["postfix_client_ip"]
    if got is not None and qid and got[3] is not None:
        assert got[3] == qid


def test_whyscream_tsv_every_payload_with_counts_per_event() -> None:
    """all_test_messages.tsv: (case file, grok pattern, payload); 11 rows are continuation
    lines of multi-line cases. Counts written down from reading the payloads."""
    import csv
    from collections import Counter

    counts: Counter = Counter()
    rows = 0
    with (FIXTURES / "whyscream-postfix-grok-patterns" / "all_test_messages.tsv").open() as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 3:
                counts["continuation"] += 1
                continue
            rows += 1
            prefix = row[0].rsplit(".", 1)[0].rsplit("_", 1)[0]
            got = event(row[2], f"postfix/{_DAEMON_OF_CASE.get(prefix, prefix)}")
            counts[got[0] if got else "no event"] += 1
    assert rows == 191
    assert counts == Counter({
        "no event": 139, "delivery": 22, "reject": 15, "continuation": 11, "bounce": 4, "msgid": 4,
        "removed": 2, "expired": 2, "pickup": 1, "active": 1, "client": 1,
    })
