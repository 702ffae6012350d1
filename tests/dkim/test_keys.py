"""Our DKIM keys: generated, stored 0600, read back, refused when unsafe or damaged."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from mailfleet.dkim.keys import key_path, load_key, new_key, save_key
from mailfleet.dkim.render_key import DkimKeyError, parse_dkim_tags, render_dkim_txt, render_public_key_b64
from mailfleet.errors import MailfleetError, SecretError


def test_a_new_key_is_rsa_2048_stored_0600_and_reads_back(tmp_path) -> None:
    key = new_key(tmp_path, "example.com", "s2026", 2048)
    assert not key.path.exists()  # nothing written before save_key
    save_key(key)
    assert key.path == tmp_path / "dkim" / "example.com.s2026.pem"
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.path.parent.stat().st_mode) == 0o700
    loaded = load_key(tmp_path, "example.com", "s2026")
    assert loaded is not None and loaded.public_b64 == key.public_b64 and loaded.bits == 2048
    der = base64.b64decode(loaded.public_b64)
    assert serialization.load_der_public_key(der).key_size == 2048


def test_save_never_overwrites_a_different_key(tmp_path) -> None:
    save_key(new_key(tmp_path, "example.com", "s1", 1024))
    with pytest.raises(MailfleetError, match="different key"):
        save_key(new_key(tmp_path, "example.com", "s1", 1024))


def test_unsafe_or_damaged_files_are_refused(tmp_path) -> None:
    assert load_key(tmp_path, "example.com", "s1") is None
    key = new_key(tmp_path, "example.com", "s1", 1024)
    save_key(key)
    os.chmod(key.path, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        load_key(tmp_path, "example.com", "s1")
    os.chmod(key.path, 0o600)
    key.path.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    with pytest.raises(MailfleetError, match="damaged"):
        load_key(tmp_path, "example.com", "s1")


def test_pkcs1_and_pkcs8_give_the_same_public_value(tmp_path) -> None:
    key = new_key(tmp_path, "example.com", "s1", 1024)
    private = serialization.load_pem_private_key(key.pem.encode(), password=None)
    pkcs1 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode()
    assert render_public_key_b64(pkcs1) == key.public_b64
    with pytest.raises(DkimKeyError):
        render_public_key_b64("not a key")


def test_the_txt_value_round_trips_through_tag_parsing(tmp_path) -> None:
    key = new_key(tmp_path, "example.com", "s1", 1024)
    text = render_dkim_txt(key.public_b64)
    assert text.startswith("v=DKIM1; k=rsa; p=")
    split = text[:100] + " " + text[100:]  # DNS answers may carry whitespace where strings were split
    assert parse_dkim_tags(split)["p"] == key.public_b64
    assert key_path(tmp_path, "xn--bcher-kva.example", "s1").name == "xn--bcher-kva.example.s1.pem"
