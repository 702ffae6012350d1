"""The emulator's HTTPS API reproduces Mailcow's quirks (shared/reference/mailcow.md §1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator_support import RO_KEY, RW_KEY, ApiServer, start_api, stop_api, write_conf


def cert(api: ApiServer) -> str:
    """Pin the server's self-signed certificate (it names 127.0.0.1)."""
    return str(api.project / "data/assets/ssl/cert.pem")


def get(api: ApiServer, path: str, key: str | None = RW_KEY) -> requests.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return requests.get(api.url(path), headers=headers, verify=cert(api), timeout=30)


def post(api: ApiServer, path: str, body: object, key: str | None = RW_KEY, **kwargs: object) -> requests.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    return requests.post(api.url(path), json=body, headers=headers, verify=cert(api), timeout=30, **kwargs)


def rsa_pem(fmt: serialization.PrivateFormat, bits: int = 1024) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    return pem, base64.b64encode(der).decode()


def test_missing_or_wrong_key_is_401_authentication_failed(api: ApiServer) -> None:
    for key in (None, "wrong-key"):
        answer = get(api, "get/domain/all", key)
        assert answer.status_code == 401
        assert answer.json() == {"type": "error", "msg": "authentication failed"}
        assert answer.headers["X-Mailcow-Emulator"] == "1"


def test_key_characters_outside_the_alphabet_are_stripped(api: ApiServer) -> None:
    assert get(api, "get/domain/all", RW_KEY + "!$_ ").status_code == 200


def test_loopback_client_is_the_docker_gateway_for_api_allow_from(project: Path, tmp_path: Path) -> None:
    write_conf(project, API_ALLOW_FROM="127.0.0.1")
    server = start_api(project, tmp_path / "docker2", tmp_path / "pf.log")
    try:
        answer = get(server, "get/domain/all")
        assert answer.status_code == 401
        assert answer.json() == {"type": "error", "msg": "api access denied for ip 172.22.1.1"}
    finally:
        stop_api(server)


def test_without_api_allow_from_no_key_works(project: Path, tmp_path: Path) -> None:
    write_conf(project, API_ALLOW_FROM="")
    server = start_api(project, tmp_path / "docker3", tmp_path / "pf.log")
    try:
        assert get(server, "get/domain/all").status_code == 401
    finally:
        stop_api(server)


def test_read_only_key_reads_but_cannot_write(api: ApiServer) -> None:
    assert get(api, "get/domain/all", RO_KEY).status_code == 200
    answer = post(api, "add/domain", {"domain": "example.org"}, RO_KEY)
    assert answer.status_code == 403
    assert answer.json() == {"type": "error", "msg": "API read/write access denied"}
    assert get(api, "get/domain/all").json() == {}


def test_routing_errors(api: ApiServer) -> None:
    assert get(api, "get/frobnicate/all").status_code == 404
    assert get(api, "get/frobnicate/all").json() == {"type": "error", "msg": "route not found"}
    assert get(api, "add/domain").status_code == 405
    assert post(api, "add/frobnicate", {"x": 1}).status_code == 404
    bad = requests.post(api.url("add/domain"), data=b"{nope", verify=cert(api), timeout=30,
                        headers={"X-API-Key": RW_KEY, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["msg"] == "Request body doesn't contain valid json!"
    untyped = requests.post(api.url("add/domain"), data=b'{"domain": "a.org"}', verify=cert(api), timeout=30,
                            headers={"X-API-Key": RW_KEY, "Content-Type": "text/plain"})
    assert untyped.status_code == 400


def test_business_errors_are_http_200_danger_and_empty_results_are_objects(api: ApiServer) -> None:
    assert get(api, "get/domain/all").json() == {}
    assert get(api, "get/relayhost/all").json() == {}
    first = post(api, "add/domain", {"domain": "example.org", "key_size": 0})
    assert first.status_code == 200 and first.json()[-1]["msg"] == ["domain_added", "example.org"]
    again = post(api, "add/domain", {"domain": "example.org"})
    assert again.status_code == 200
    assert again.json() == [{"type": "danger", "log": ["mailbox", "add", "domain", {"domain": "example.org"}, None],
                             "msg": ["domain_exists", "example.org"]}]
    host = post(api, "add/domain", {"domain": "mail.lab.test"})
    assert host.status_code == 200 and host.json()[0]["msg"] == ["domain_cannot_match_hostname", "mail.lab.test"]
    assert get(api, "get/domain/nope.org").json() == {}
    assert get(api, "get/dkim/example.org").json() == {}


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_dkim_import_derives_the_public_key_and_survives_add_domain(api: ApiServer, fmt) -> None:
    pem, public = rsa_pem(fmt)
    imported = post(api, "add/dkim_import", {"domain": "example.org", "dkim_selector": "s2026",
                                             "private_key_file": pem.replace("\n", "\r\n")})
    assert imported.json()[0]["msg"] == ["dkim_added", "example.org"]
    added = post(api, "add/domain", {"domain": "example.org"})
    assert [e["msg"][0] for e in added.json()] == ["domain_add_dkim_available", "domain_added"]
    dkim = get(api, "get/dkim/example.org").json()
    assert dkim == {"pubkey": public, "length": "1024", "dkim_txt": f"v=DKIM1;k=rsa;t=s;s=email;p={public}",
                    "dkim_selector": "s2026", "privkey": ""}
    other, _ = rsa_pem(serialization.PrivateFormat.PKCS8)
    clash = post(api, "add/dkim_import", {"domain": "example.org", "dkim_selector": "s2027", "private_key_file": other})
    assert clash.json()[0]["type"] == "danger" and clash.json()[0]["msg"][0] == "dkim_domain_or_sel_exists"
    junk = post(api, "add/dkim_import", {"domain": "example.org", "dkim_selector": "s1", "private_key_file": "nope",
                                         "overwrite_existing": 1})
    assert junk.json()[0]["type"] == "danger"
    assert post(api, "delete/dkim", ["example.org"]).json()[0]["msg"] == ["dkim_removed", "example.org"]
    assert get(api, "get/dkim/example.org").json() == {}


def test_add_domain_generates_a_real_rsa_key(api: ApiServer) -> None:
    post(api, "add/domain", {"domain": "example.org", "key_size": 1024})
    dkim = get(api, "get/dkim/example.org").json()
    der = __import__("base64").b64decode(dkim["pubkey"])
    key = serialization.load_der_public_key(der)
    assert key.key_size == 1024 and dkim["dkim_selector"] == "dkim"


def test_show_dkim_priv_keys_returns_the_pem_base64(api: ApiServer, project: Path, tmp_path: Path) -> None:
    (project / "data/web/inc").mkdir(parents=True, exist_ok=True)
    (project / "data/web/inc/vars.local.inc.php").write_text("<?php\n$SHOW_DKIM_PRIV_KEYS = true;\n")
    pem, _ = rsa_pem(serialization.PrivateFormat.PKCS8)
    post(api, "add/dkim_import", {"domain": "x.org", "dkim_selector": "s", "private_key_file": pem})
    assert get(api, "get/dkim/x.org").json()["privkey"] == ""  # read at start, like PHP's vars
    stop_api(api)
    server = start_api(project, api.root, api.postfix_log)
    try:
        import base64

        assert base64.b64decode(get(server, "get/dkim/x.org").json()["privkey"]).decode().strip() == pem.strip()
    finally:
        stop_api(server)


def test_relayhost_and_alias_ids_must_be_read_back(api: ApiServer) -> None:
    added = post(api, "add/relayhost", {"hostname": "[10.77.0.13]:25", "username": "", "password": ""})
    assert added.json() == [{"type": "success", "log": ["relayhost", "add", {"hostname": "[10.77.0.13]:25",
                                                                                "username": "", "password": ""}],
                             "msg": ["relayhost_added", ""]}]
    assert get(api, "get/relayhost/all").json()[0]["id"] == 1
    assert get(api, "get/relayhost/1").json()["hostname"] == "[10.77.0.13]:25"


def test_state_survives_a_restart_and_realises_postfix_maps(api: ApiServer, project: Path) -> None:
    post(api, "add/domain", {"domain": "example.org", "key_size": 0})
    post(api, "add/mailbox", {"local_part": "alice", "domain": "example.org", "password": "s3cret!", "password2": "s3cret!"})
    post(api, "add/transport", {"destination": "other.org", "nexthop": "10.77.0.12:25"})
    stop_api(api)
    server = start_api(project, api.root, api.postfix_log)
    try:
        assert get(server, "get/mailbox/alice@example.org").json()["username"] == "alice@example.org"
    finally:
        stop_api(server)
    maps = api.root / "volumes/mailcowdockerized_postfix-vol-1/_data"
    assert "alice@example.org example.org/alice/Maildir/" in (maps / "virtual_mailbox_maps").read_text()
    assert "other.org smtp:[10.77.0.12]:25" in (maps / "transport_maps").read_text()
    passwd = (api.root / "mailcow-emulator/mailcowdockerized/dovecot/passwd").read_text()
    assert passwd.startswith("alice@example.org:{SSHA256}") and "s3cret!" not in passwd
    db = (api.root / "volumes/mailcowdockerized_mysql-vol-1/_data/emulator-db.json")
    assert "s3cret!" not in db.read_text() and oct(db.stat().st_mode & 0o777) == "0o600"


def test_status_endpoints(api: ApiServer, project: Path) -> None:
    assert get(api, "get/status/containers").json() == {}
    state = api.root / "mailcow-emulator/mailcowdockerized/containers.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"services": {"postfix-mailcow": {
        "state": "running", "started_at": "2026-11-29T00:00:00.000000000Z", "image": "ghcr.io/mailcow/postfix:3.10.12-1"}}}))
    assert get(api, "get/status/containers").json() == {"postfix-mailcow": {
        "type": "info", "container": "postfix-mailcow", "state": "running",
        "started_at": "2026-11-29T00:00:00.000000000Z", "image": "ghcr.io/mailcow/postfix:3.10.12-1"}}
    assert get(api, "get/status/version").json() == {"version": "unknown"}


def test_version_comes_from_app_info(project: Path, tmp_path: Path) -> None:
    (project / "data/web/inc").mkdir(parents=True)
    (project / "data/web/inc/app_info.inc.php").write_text('<?php\n  $MAILCOW_GIT_VERSION="2026-09";\n?>\n')
    server = start_api(project, tmp_path / "d", tmp_path / "pf.log")
    try:
        assert get(server, "get/status/version").json() == {"version": "2026-09"}
    finally:
        stop_api(server)


POSTFIX_LOG = """\
Nov 28 23:55:19 h2 postfix/postfix-script[3496]: starting the Postfix mail system
Nov 28 23:55:22 h2 postfix/smtpd[3580]: connect from unknown[10.77.0.11]
Nov 28 23:55:23 h2 postfix/smtp[3720]: warning: no MX host for other.example
Nov 28 23:55:24 h2 postfix/qmgr[3500]: EDDF718688C: removed
"""


def test_postfix_logs_newest_first_in_mailcow_shape(api: ApiServer) -> None:
    api.postfix_log.write_text(POSTFIX_LOG)
    rows = get(api, "get/logs/postfix/3").json()
    assert [r["message"] for r in rows] == ["EDDF718688C: removed", "warning: no MX host for other.example",
                                            "connect from unknown[10.77.0.11]"]
    assert rows[0]["program"] == "postfix/qmgr" and rows[0]["priority"] == "info" and rows[0]["time"].isdigit()
    assert rows[1]["priority"] == "warn"


def test_faults_answer_500_then_heal(api: ApiServer) -> None:
    faults = api.root / "mailcow-emulator/faults.json"
    faults.parent.mkdir(parents=True, exist_ok=True)
    faults.write_text(json.dumps({"api-errors": {"mode": "500"}}))
    answer = get(api, "get/status/version")
    assert answer.status_code == 500 and "mailcow emulator" in answer.json()["msg"]
    faults.write_text(json.dumps({"api-errors": {"mode": "slow", "delay_s": 0.2}}))
    assert get(api, "get/status/version").status_code == 200
    faults.unlink()
    assert get(api, "get/status/version").status_code == 200


def test_mail_queue_flush_and_delete_answer_like_mailcow(api: ApiServer) -> None:
    assert post(api, "edit/mailq", {"action": "flush"}).json() == {"type": "success", "msg": "Task completed"}
    assert post(api, "delete/mailq", {"action": "super_delete"}).json() == {"type": "success", "msg": "Task completed"}
    assert post(api, "edit/mailq", {"action": "explode"}).json()["type"] == "danger"
    assert post(api, "edit/mailq", {"action": "flush"}, RO_KEY).status_code == 403
    assert get(api, "get/mailq/all").json() == {}
