"""``acme-mailcow`` as the emulator plays it: a certificate from the lab's CA (lab only).

Real Mailcow starts with a self-signed snake-oil certificate (``generate_config.sh``) and its
``acme-mailcow`` container replaces it with a Let's Encrypt certificate for ``MAILCOW_HOSTNAME``
(and ``ADDITIONAL_SAN``), writes it to ``data/assets/ssl/{cert,key}.pem`` and restarts nginx,
Postfix and Dovecot. The lab cannot reach Let's Encrypt, so ``lab.up`` *offers* each host a lab
certificate authority, and this module emulates the issuance with it.

The offer: ``<docker root>/mailcow-emulator/lab-ca/ca.pem`` and ``ca.key`` inside the host
(``/var/lib/docker/mailcow-emulator/lab-ca/``; the host's ``/etc/ssl/certs`` trusts the same
``ca.pem``). Without an offer, or with ``SKIP_LETS_ENCRYPT=y``, the snake-oil certificate stays,
as on a real Mailcow without ACME. Like acme-mailcow's renewal loop, a certificate that is
already signed by the CA, covers every name and is valid for 30 more days is kept: a second
``up -d`` changes nothing. Uses only the ``openssl`` command (``generate_config.sh`` needs it too).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from pathlib import Path

RENEW_BEFORE_S = 30 * 86400
VALID_DAYS = 90


def lab_ca_dir(docker_root: Path) -> Path:
    return docker_root / "mailcow-emulator" / "lab-ca"


def wanted_names(conf: dict[str, str]) -> list[str]:
    """MAILCOW_HOSTNAME, then ADDITIONAL_SAN's plain names (``imap.*`` patterns are skipped:
    they need the domain list, which this emulation does not expand)."""
    names = [conf.get("MAILCOW_HOSTNAME", "").strip().lower()]
    for extra in conf.get("ADDITIONAL_SAN", "").split(","):
        extra = extra.strip().lower()
        if extra and "*" not in extra and extra not in names:
            names.append(extra)
    return [n for n in names if n]


def _openssl(args: list[str], input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], input=input_text, capture_output=True, text=True,
                          stdin=None if input_text is not None else subprocess.DEVNULL, timeout=60)


def _current_is_good(cert: Path, ca_pem: Path, names: list[str]) -> bool:
    if not cert.is_file():
        return False
    if _openssl(["verify", "-CAfile", str(ca_pem), str(cert)]).returncode != 0:
        return False
    if _openssl(["x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_BEFORE_S)]).returncode != 0:
        return False
    san = _openssl(["x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"])
    have = {part.strip()[4:].lower() for part in san.stdout.replace("\n", ",").split(",")
            if part.strip().startswith("DNS:")}
    return san.returncode == 0 and set(names) <= have


def _replace(path: Path, data: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.acme-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def issue_if_needed(project_dir: Path, conf: dict[str, str], docker_root: Path, acme_dir: Path) -> tuple[bool, str]:
    """Issue and install a CA-signed certificate when one is offered and the current one is not
    good. The domain key is made once in ``acme_dir`` (acme-mailcow's ``/var/lib/acme/acme/key.pem``
    in its volume) and reused by every later issue, so a TLSA ``3 1 1`` record stays valid. Returns (installed a new certificate, what happened, for the service log). Raises
    RuntimeError when the CA is offered but issuing fails (the service then shows as failed)."""
    ca_dir = lab_ca_dir(docker_root)
    ca_pem, ca_key = ca_dir / "ca.pem", ca_dir / "ca.key"
    if conf.get("SKIP_LETS_ENCRYPT", "n").strip().lower() in ("y", "yes"):
        return False, "SKIP_LETS_ENCRYPT=y, skipping ACME; the current certificate stays"
    if not (ca_pem.is_file() and ca_key.is_file()):
        return False, f"mailcow emulator: no lab CA offered in {ca_dir}; the self-signed certificate stays"
    names = wanted_names(conf)
    if not names:
        raise RuntimeError("MAILCOW_HOSTNAME is empty in mailcow.conf; no certificate can be requested")
    ssl_dir = project_dir / "data" / "assets" / "ssl"
    if _current_is_good(ssl_dir / "cert.pem", ca_pem, names):
        return False, f"certificate for {', '.join(names)} is valid and signed by the lab CA; nothing to renew"
    with tempfile.TemporaryDirectory(prefix="acme-emulator-") as work:
        key, csr, cert, ext = (Path(work) / n for n in ("key.pem", "req.csr", "cert.pem", "ext.cnf"))
        acme_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(acme_dir, 0o700)
        kept_key = acme_dir / "key.pem"
        if not kept_key.is_file():
            made = _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)])
            if made.returncode != 0:
                raise RuntimeError(f"openssl genpkey failed: {made.stderr.strip()[-500:]}")
            _replace(kept_key, key.read_text(), 0o600)
        key.write_text(kept_key.read_text())
        san = ",".join(f"DNS:{n}" for n in names)
        ext.write_text(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                       "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        steps = [
            ["req", "-new", "-key", str(key), "-out", str(csr),
             "-subj", f"/CN={names[0]}"],
            ["x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-out", str(cert),
             "-days", str(VALID_DAYS), "-set_serial", "0x" + secrets.token_hex(16), "-extfile", str(ext)],
        ]
        for step in steps:
            done = _openssl(step)
            if done.returncode != 0:
                raise RuntimeError(f"openssl {step[0]} failed: {done.stderr.strip()[-500:]}")
        ssl_dir.mkdir(parents=True, exist_ok=True)
        # Key first: a reader never sees the new certificate with the old key for long.
        _replace(ssl_dir / "key.pem", key.read_text(), 0o600)
        _replace(ssl_dir / "cert.pem", cert.read_text(), 0o644)
    return True, f"certificate for {', '.join(names)} issued by the lab CA and installed in {ssl_dir}"
