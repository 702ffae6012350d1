"""mailfleet's own Mailcow API client against the emulator: the two must agree, or the lab
would test mailfleet against something it cannot talk to."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator_support import RO_KEY, RW_KEY, ApiServer

client_module = pytest.importorskip("mailfleet.mailcow.client")


def make_client(api: ApiServer, key: str = RW_KEY):
    client = client_module.MailcowClient(api.base, key, label="emu")
    client.session.verify = str(api.project / "data/assets/ssl/cert.pem")
    client.session.trust_env = False  # a REQUESTS_CA_BUNDLE in the environment would override verify
    return client


def test_the_client_drives_domains_dkim_mailboxes_aliases_routing_and_status(api: ApiServer) -> None:
    client = make_client(api)
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    client.import_dkim("example.org", selector="s2026", private_key_pem=pem)
    client.add_domain("example.org")
    assert client.get_dkim("example.org")["dkim_selector"] == "s2026"
    assert client.get_domain("example.org")["domain_name"] == "example.org"
    assert client.get_domain("missing.org") is None
    client.add_mailbox("alice", "example.org", password="Pw-1234567")
    assert client.get_mailbox("alice@example.org")["username"] == "alice@example.org"
    alias_id = client.add_alias("info@example.org", ["alice@example.org"])
    relay_id = client.add_relayhost("[10.77.0.13]:587", username="relay", password="pw")
    client.edit_domain("example.org", relayhost=str(relay_id))
    transport_id = client.add_transport("partner.org", "[10.77.0.14]:25")
    assert (alias_id, relay_id, transport_id) == (1, 1, 1)
    assert client.get_domain("example.org")["relayhost"] == "1"
    policy = {"domain": "example.org", "version": "STSv1", "mode": "enforce", "mx": "mx1.example.org",
              "max_age": 86400, "active": 1}
    client.post("add", "mta-sts", policy)
    with pytest.raises(client_module.MailcowApiError):
        client.post("add", "mta-sts", policy)  # add refuses an existing policy; edit replaces it
    client.edit("mta-sts", ["example.org"], {"mode": "testing"})
    assert client.get_containers() == {}
    assert client.get_version() == "unknown"
    with pytest.raises(client_module.MailcowApiError, match="domain_exists"):
        client.add_domain("example.org")
    client.delete_alias(alias_id)
    client.delete_transport(transport_id)
    client.delete_relayhost(relay_id)
    client.edit_mailbox("alice@example.org", active=0)
    with pytest.raises(client_module.MailcowApiError):
        client.delete_domain("example.org")  # not empty: domain_not_empty
    client.close()


def test_the_client_reports_the_read_only_key(api: ApiServer) -> None:
    client = make_client(api, RO_KEY)
    assert client.get_domains() == []
    with pytest.raises(client_module.MailcowApiError, match="HTTP 403"):
        client.add_domain("example.org")
    client.close()
