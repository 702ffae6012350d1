"""Mail for scripts/demo: what an operator (or the internet) does to a lab fleet, nothing faked.

    demo_mail.py example-domains  INVENTORY             the example's domains, verbatim, into the lab inventory
    demo_mail.py route   INVENTORY DOMAIN NEXTHOP        a Mailcow transport DOMAIN -> NEXTHOP on every relay
    demo_mail.py inbound INVENTORY HOST FROM TO SUBJECT [--attach FILE]   SMTP to HOST:25 (mail from outside)
    demo_mail.py submit  INVENTORY HOST FROM TO SUBJECT [--header H]      a domain user's mail, submitted
                                                          with sendmail inside postfix-mailcow on HOST
    demo_mail.py wait-maildir DIR COUNT SECONDS          wait until the sink's Maildir holds COUNT messages
    demo_mail.py imap INVENTORY HOST ADDRESS LAB_CA      list the mailbox's subjects over IMAPS (verified)
    demo_mail.py mon-fetch INVENTORY MON MX              run the monitoring host's dmarc-fetch job, then
                                                          dmarc.summary of its store

Each prints what it did (the Message-ID for sent mail) and exits 1 with the reason on failure.
The lab has no SASL submission (the emulator does not run one) and an inbound host relays only
for its own loopback, so outgoing mail is submitted inside postfix-mailcow, as on a Mailcow host.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import email.utils
import imaplib
import io
import shlex
import smtplib
import ssl
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _inventory(path: str):
    from mailfleet.inventory import load_valid_inventory

    return load_valid_inventory(Path(path))


def example_domains(inventory: str) -> None:
    from ruamel.yaml import YAML

    from mailfleet.inventory.load import save_inventory
    from mailfleet.inventory.merge import merge_domain

    example = YAML(typ="safe").load((REPO / "inventory" / "example.yaml").read_text(encoding="utf-8"))
    inv = _inventory(inventory)
    present = set(inv.doc.get("domains") or {})
    added = [name for name in example["domains"] if name not in present]
    for name in added:
        merge_domain(inv.doc, name, example["domains"][name])
    if added:
        save_inventory(inv)  # validated first: an entry that does not fit the lab is refused
    print(f"{inventory}: {len(added)} domain(s) written as inventory/example.yaml has them"
          f"{' (' + ', '.join(added) + ')' if added else ''}; {len(present)} already there")


def route(inventory: str, domain: str, nexthop: str) -> None:
    from mailfleet.mailcow import open_api

    inv = _inventory(inventory)
    for host in inv.fleet.hosts.values():
        if not host.has_role("outbound-relay"):
            continue
        with open_api(host, inv) as api:
            mine = [t for t in api.get_transports() if t.get("destination") == domain]
            if any(t.get("nexthop") == nexthop for t in mine):
                print(f"{host.name}: transport {domain} -> {nexthop} already there")
                continue
            if mine:
                api.delete_transport(*(int(t["id"]) for t in mine))
            api.add_transport(domain, nexthop)
            print(f"{host.name}: transport {domain} -> {nexthop} added (Mailcow API add/transport)")


def _message(sender: str, rcpt: str, subject: str, headers: list[str], attach: str | None) -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, rcpt, subject
    message["Message-ID"] = email.utils.make_msgid(idstring=uuid.uuid4().hex[:12], domain="demo.mailfleet.test")
    message["Date"] = email.utils.formatdate()
    for header in headers:
        name, _, value = header.partition(":")
        message[name.strip()] = value.strip()
    message.set_content(f"{subject}\n\nsent by mailfleet's scripts/demo\n")
    if attach:
        data = Path(attach).read_bytes()
        subtype = {"gz": "gzip", "zip": "zip"}.get(attach.rsplit(".", 1)[-1], "xml")
        message.add_attachment(data, maintype="application", subtype=subtype, filename=Path(attach).name)
    return message


def inbound(inventory: str, host: str, sender: str, rcpt: str, subject: str, attach: str | None) -> None:
    address = _inventory(inventory).fleet.hosts[host].address
    message = _message(sender, rcpt, subject, [], attach)
    with smtplib.SMTP(address, 25, timeout=30) as smtp:
        smtp.send_message(message, from_addr=sender, to_addrs=[rcpt])
    print(f"{host} accepted {message['Message-ID']} {sender} -> {rcpt} ({subject!r}) by SMTP on {address}:25")


def submit(inventory: str, host: str, sender: str, rcpt: str, subject: str, headers: list[str]) -> None:
    from mailfleet.ssh import open_connection

    inv = _inventory(inventory)
    message = _message(sender, rcpt, subject, headers, None)
    command = (f"cd {shlex.quote(inv.fleet.settings.mailcow.install_dir)} && "
               f"docker compose exec -T postfix-mailcow sendmail -f {shlex.quote(sender)} -- {shlex.quote(rcpt)}")
    conn = open_connection(inv.fleet.hosts[host], inv.fleet, inv.base_dir, timeout=10)
    try:
        done = conn.run(command, in_stream=io.StringIO(message.as_string()), hide=True, warn=True, timeout=60)
    finally:
        conn.close()
    if done.exited != 0:
        raise SystemExit(f"{host}: sendmail in postfix-mailcow failed (exit {done.exited}): {done.stderr.strip()}")
    print(f"{host} took {message['Message-ID']} {sender} -> {rcpt} ({subject!r}) from sendmail in postfix-mailcow")


def wait_maildir(folder: str, count: int, seconds: float) -> None:
    new = Path(folder) / "new"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sorted(new.glob("*")) if new.is_dir() else []
        if len(found) >= count:
            break
        time.sleep(0.5)
    found = sorted(new.glob("*")) if new.is_dir() else []
    for path in found:
        with path.open("rb") as handle:
            headers = email.parser.BytesHeaderParser(policy=email.policy.default).parse(handle)
        peer = str(headers.get("X-Peer", "?")).strip("()").split(",")[0].strip("'\" ")  # aiosmtpd: ('ip', port)
        print(f"  remote MX got {str(headers.get('Message-ID', '?')).strip()} {headers.get('Subject', '?')!r} from {peer}")
    if len(found) < count:
        raise SystemExit(f"the remote MX sink holds {len(found)} of {count} messages after {seconds:.0f} s; "
                         "see the relays' logs (var/<lab>/hosts/<host>/log/postfix.log)")


def imap(inventory: str, host: str, address: str, lab_ca: str) -> None:
    """Read the mailbox over IMAPS, verifying the host's certificate and name with the lab CA
    (``var/lab/ca/ca.pem``): the emulated acme-mailcow issued it, as Let's Encrypt would."""
    inv = _inventory(inventory)
    password = (inv.secrets_dir / "mailboxes" / f"{address}.password").read_text().strip()
    target = inv.fleet.hosts[host]
    context = ssl.create_default_context(cafile=lab_ca)

    class _Imaps(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):  # connect to the address, check the Mailcow hostname
            return context.wrap_socket(imaplib.IMAP4._create_socket(self, timeout), server_hostname=target.hostname)

    with _Imaps(target.address, 993, ssl_context=context, timeout=30) as box:
        box.login(address, password)
        box.select("INBOX", readonly=True)
        _, data = box.search(None, "ALL")
        print(f"{address} on {host} (IMAPS, password from {inv.secrets_dir}/mailboxes/): {len(data[0].split())} message(s)")
        for number in data[0].split():
            _, parts = box.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            print("  " + parts[0][1].decode(errors="replace").strip())


def mon_fetch(inventory: str, mon_name: str, mx_name: str) -> None:
    """The dmarc-fetch job exactly as deploy scheduled it on the monitoring host.

    It verifies the MX's IMAPS certificate with the monitoring host's own trust store: in the
    lab, the emulated acme-mailcow issued that certificate with the lab CA, which lab.up made
    every lab host trust (docs/lab.md), as Let's Encrypt is trusted in production."""
    from mailfleet.ssh import open_connection

    inv = _inventory(inventory)
    fleet = inv.fleet
    cert_path = f"{fleet.settings.mailcow.install_dir}/data/assets/ssl/cert.pem"
    with open_connection(fleet.hosts[mx_name], fleet, inv.base_dir) as conn:
        issuer = conn.run(f"openssl x509 -noout -issuer -in {shlex.quote(cert_path)}", hide=True, warn=True,
                          in_stream=False).stdout.strip()
    print(f"{mx_name}: Mailcow certificate {issuer or '(unreadable)'}")
    with open_connection(fleet.hosts[mon_name], fleet, inv.base_dir) as conn:
        for command in ("/opt/mailfleet/bin/mailfleet-job dmarc-fetch; echo \"exit $?\"; "
                        "tail -n 4 /var/log/mailfleet/dmarc-fetch.log",
                        "/opt/mailfleet/venv/bin/mailfleet dmarc.summary --db /var/lib/mailfleet/dmarc.sqlite --days 0"):
            print(f"{mon_name}$ {command}")
            done = conn.run(command, hide=True, warn=True, in_stream=False, timeout=120)
            print("  " + (done.stdout + done.stderr).strip().replace("\n", "\n  "))
            if done.exited != 0:
                raise SystemExit(f"{mon_name}: {command.split(';')[0]} failed (exit {done.exited})")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    command, args = argv[0], argv[1:]
    options: dict[str, list[str]] = {"--attach": [], "--header": []}
    positional: list[str] = []
    while args:
        word = args.pop(0)
        if word in options:
            options[word].append(args.pop(0))
        else:
            positional.append(word)
    try:
        if command == "example-domains":
            example_domains(*positional)
        elif command == "route":
            route(*positional)
        elif command == "inbound":
            inbound(*positional, attach=(options["--attach"] or [None])[0])
        elif command == "submit":
            submit(*positional, headers=options["--header"])
        elif command == "wait-maildir":
            wait_maildir(positional[0], int(positional[1]), float(positional[2]))
        elif command == "imap":
            imap(*positional)
        elif command == "mon-fetch":
            mon_fetch(*positional)
        else:
            raise SystemExit(f"demo_mail.py: unknown command {command!r}\n{__doc__}")
    except TypeError as exc:
        raise SystemExit(f"demo_mail.py {command}: wrong arguments ({exc})\n{__doc__}") from None
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as exc:
        raise SystemExit(f"demo_mail.py {command}: {exc}") from None


if __name__ == "__main__":
    from mailfleet.errors import MailfleetError

    try:
        main(sys.argv[1:])
    except MailfleetError as exc:
        raise SystemExit(f"demo_mail.py: {exc}") from None
