"""Validators for the names and addresses an inventory holds. Pure: each returns the
normalised value or raises ``ValueError`` with a message that says what would be right."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct

import idna

from mailfleet.inventory.model import SecretRef

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
DKIM_KEY_SIZES = (1024, 2048, 3072, 4096)


def to_ascii_domain(name: str) -> str:
    """Return the IDNA (xn--) form of a domain name, lower case, without a trailing dot."""
    text = (name or "").strip().rstrip(".")
    if not text:
        raise ValueError("the domain name is empty")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"{name!r} is not a valid domain name ({exc})") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError(f"{name!r} has no dot; a mail domain needs at least two labels, e.g. example.com")
    if len(ascii_name) > 253:
        raise ValueError(f"{name!r} is longer than 253 characters")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(f"{name!r} has an invalid label {label!r}: use letters, digits and inner hyphens, 1-63 characters")
    if labels[-1].isdigit():
        raise ValueError(f"{name!r} ends in a numeric label; that is an address, not a domain")
    return ascii_name


def check_fqdn(name: str) -> str:
    """A host's FQDN (Mailcow's MAILCOW_HOSTNAME): a domain name with at least three labels,
    because Mailcow's generate_config.sh stops to ask when the hostname has only one dot."""
    ascii_name = to_ascii_domain(name)
    if ascii_name.count(".") < 2:
        raise ValueError(
            f"{name!r} has only one dot; Mailcow needs a host name below the domain, e.g. mx1.{ascii_name}"
        )
    return ascii_name


def check_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def check_address(text: str) -> str:
    """Where SSH connects: an IP address or a resolvable-looking host name."""
    text = str(text).strip()
    try:
        return check_ip(text)
    except ValueError:
        pass
    try:
        return to_ascii_domain(text) if "." in text else _single_label(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an IP address nor a host name") from None


def _single_label(text: str) -> str:
    if not _LABEL.match(text.lower()):
        raise ValueError(text)
    return text.lower()


def check_email(text: str) -> str:
    """Return ``local@ascii-domain``."""
    text = str(text).strip()
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        raise ValueError(f"{text!r} is not an email address (local-part@domain)")
    check_local_part(local)
    return f"{local}@{to_ascii_domain(domain)}"


def check_local_part(text: str) -> str:
    if not _LOCAL_PART.match(text) or text.startswith(".") or text.endswith(".") or ".." in text:
        raise ValueError(f"{text!r} is not a valid mailbox local part")
    return text


def check_selector(text: str) -> str:
    text = str(text).strip().lower()
    if not _SELECTOR.match(text):
        raise ValueError(f"DKIM selector {text!r} must be one DNS label: letters, digits and inner hyphens")
    return text


def check_host_name(text: str) -> str:
    if not _HOST_NAME.match(str(text)):
        raise ValueError(f"host name {text!r} must be lower-case letters, digits and inner hyphens (e.g. mx1)")
    return str(text)


def check_host_key(text: str) -> str:
    """An OpenSSH public key line (``TYPE BASE64 [comment]``); returns ``TYPE BASE64``."""
    parts = str(text).split()
    if len(parts) < 2:
        raise ValueError("a host key is 'TYPE BASE64', e.g. 'ssh-ed25519 AAAAC3Nza...' as printed by ssh-keyscan")
    key_type, blob = parts[0], parts[1]
    if key_type not in HOST_KEY_TYPES:
        raise ValueError(f"unsupported host key type {key_type!r}; use one of {', '.join(HOST_KEY_TYPES)}")
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        embedded = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError("the host key's base64 part is damaged; copy it again from ssh-keyscan or `mailfleet trust-host`") from None
    if embedded != key_type:
        raise ValueError(f"the key data is a {embedded!r} key but the line says {key_type!r}")
    return f"{key_type} {blob}"


def parse_secret_ref(text: object) -> SecretRef:
    """``env:NAME`` or ``file:PATH``; anything else is treated as a secret pasted in plain text."""
    value = str(text)
    scheme, sep, name = value.partition(":")
    if sep and scheme in ("env", "file") and name:
        if scheme == "env" and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"{value!r}: an environment variable name has letters, digits and underscores")
        if scheme == "file" and (name.startswith("/") is False and ".." in name.split("/")):
            raise ValueError(f"{value!r}: a file secret may not climb out of the inventory folder with '..'")
        return SecretRef(scheme, name)
    raise ValueError(
        "this looks like a secret written in plain text; secrets never go into the inventory. "
        "Store it in a file (mode 0600) and write file:secrets/NAME, or export it and write env:NAME"
    )
