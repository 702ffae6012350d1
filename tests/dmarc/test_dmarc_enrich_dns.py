"""Reverse DNS enrichment against a real (tiny) DNS server on loopback: answers, NXDOMAIN and a
lookup that times out are all cached; the parser never does any of this."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from mailfleet.dmarc.enrich import DnsPtrResolver, enrich_sources
from mailfleet.dmarc.ingest import ingest_source
from mailfleet.dmarc.store import load_store

ANSWERS = {"1.2.0.192.in-addr.arpa.": "mail-ed1-f41.google.com.", "2.2.0.192.in-addr.arpa.": None}


@pytest.fixture
def ptr_server() -> Iterator[str]:
    """Answers PTR for 192.0.2.1, NXDOMAIN for 192.0.2.2, and never answers anything else."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                continue
            query = dns.message.from_wire(wire)
            name = query.question[0].name.to_text()
            if name not in ANSWERS:
                continue  # silence: the client must time out
            response = dns.message.make_response(query)
            target = ANSWERS[name]
            if target is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "PTR", target))
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_enrich_against_a_local_resolver(ptr_server: str, tmp_path: Path) -> None:
    conn: sqlite3.Connection = load_store(tmp_path / "e.sqlite")
    xml = ("<feedback><report_metadata><org_name>o</org_name><email>a@o</email><report_id>1</report_id>"
           "<date_range><begin>0</begin><end>86399</end></date_range></report_metadata><policy_published>"
           "<domain>example.com</domain><p>none</p></policy_published>"
           + "".join(f"<record><row><source_ip>{ip}</source_ip><count>1</count><policy_evaluated>"
                     "<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
                     "<identifiers><header_from>example.com</header_from></identifiers></record>"
                     for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"))
           + "</feedback>").encode()
    assert ingest_source(conn, "r.xml", xml).stored == 1
    resolver = DnsPtrResolver(nameserver=ptr_server, timeout=0.5)
    result = enrich_sources(conn, resolver, ttl_seconds=3600, concurrency=4, clock=lambda: 1000)
    assert (result.looked_up, result.named, result.failed) == (3, 1, 1)
    rows = dict((ip, (ptr, sender, bool(error))) for ip, ptr, sender, error in
                conn.execute("SELECT ip, ptr, sender, error FROM ip_info"))
    assert rows == {"192.0.2.1": ("mail-ed1-f41.google.com", "Google", False),
                    "192.0.2.2": (None, None, False),
                    "192.0.2.3": (None, None, True)}
    assert enrich_sources(conn, resolver, clock=lambda: 2000).looked_up == 0
