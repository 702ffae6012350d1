"""Benchmark: do password resets wait behind a bulk campaign? Stock Postfix against mailfleet's.

One run, three scenarios on the same real Postfix (Debian's binaries), each a fresh Postfix
instance with its own configuration and queue directory (``postfix -c DIR``), so nothing of a
host's own Postfix is touched:

1. ``stock``: Postfix defaults; bulk and resets share the ``smtp`` transport.
2. ``mailfleet``: the same plus exactly what mailfleet renders for a host
   (``mailfleet.priority.render_files`` + ``render_extra_cf``, from a one-domain inventory whose
   bulk sender is newsletter@shop.test): the maps, the extra.cf block, and the Postfix hook run
   against the instance's master.cf. Mailcow's MySQL sender map becomes an empty texthash.
3. ``campaign``: mailfleet's configuration with ``qmgr_message_active_limit`` lowered to half
   the campaign, so the campaign is twice the active queue (inflow control, trap 3).

Each scenario injects a backlog of bulk messages (default 5,000) over SMTP, then 20 resets one
second apart, all to recipients at gmail.test, routed (``transport_maps`` with an empty
transport, which keeps the sender-based choice) to a slow receiving server this script starts:
0.2 s per message, at most 20 sessions, ``421`` at the greeting above that (like the measured
reproduction in ../shared/reference/priority-measured.md). Latency = start of the reset's SMTP
submission to the sink's ``250``. Bulk rate = bulk messages accepted by the sink in the first
40 s after its first bulk message (or over the whole drain if shorter).

Where it runs: with the lab up (``mailfleet lab.up``; ``--lab-prefix``), Postfix runs inside a
lab host's network namespace (``--lab-host``, default relay1) on the host's lab address, and
the sink listens on the lab bridge's address, so mail crosses the lab network. Without a lab it
runs on loopback (127.0.0.1) and says so. Every process is bounded in time and stopped by PID.

    .venv/bin/python bench/priority.py [--bulk 5000] [--resets 20] [--scenarios stock,mailfleet,campaign]

The last lines are the results: p50/p99 reset latency and bulk rate per scenario, and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench" / "priority"
sys.path.insert(0, str(ROOT / "src"))

SINK_DELAY = 0.2
SINK_MAX_SESSIONS = 20
BULK_SENDER = "newsletter@shop.test"
RESET_SENDER = "reset@shop.test"
RCPT_DOMAIN = "gmail.test"
SCENARIO_CAP = 300.0  # seconds a scenario may run after injection
RATE_WINDOW = 40.0
INVENTORY = """\
fleet:
  name: bench
  bulk_transport:
    destination_concurrency_limit: {limit}
hosts:
  bench1:
    address: {address}
    hostname: bench1.priority.test
    roles: [inbound]
    api_key: file:secrets/bench1.api-key
domains:
  shop.test:
    inbound: {{bench1: 10}}
    bulk:
      senders: [{sender}]
"""


# --------------------------------------------------------------------------- the slow receiver

def run_sink(address: str, port: int, out: Path, seconds: float) -> None:
    """An SMTP server that takes 0.2 s per message and allows 20 sessions; logs each 250."""
    events = open(out, "a", buffering=1)
    state = {"active": 0, "peak": 0, "refused": 0}

    def stop(*_: object) -> None:
        events.write(json.dumps({"stats": state}) + "\n")
        events.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state["active"] >= SINK_MAX_SESSIONS:
            state["refused"] += 1
            writer.write(b"421 4.7.0 sink: too many concurrent connections\r\n")
            await writer.drain()
            writer.close()
            return
        state["active"] += 1
        state["peak"] = max(state["peak"], state["active"])
        try:
            writer.write(b"220 sink.gmail.test ESMTP\r\n")
            while True:
                line = await asyncio.wait_for(reader.readline(), 120)
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink.gmail.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    bench_id = ""
                    while True:
                        data = await asyncio.wait_for(reader.readline(), 120)
                        if not data or data == b".\r\n":
                            break
                        if not bench_id and data[:12].lower() == b"x-bench-id: ":
                            bench_id = data[12:].decode().strip()
                    await asyncio.sleep(SINK_DELAY)
                    events.write(json.dumps({"id": bench_id, "t": time.time()}) + "\n")
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                else:  # HELO, MAIL, RCPT, RSET, NOOP
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            return
        finally:
            state["active"] -= 1
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, address, port, backlog=256)
        async with server:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(1)
            events.write(json.dumps({"stats": state}) + "\n")

    asyncio.run(main())


# --------------------------------------------------------------------------- environment

@dataclass
class Place:
    """Where Postfix runs (a lab netns or this machine) and where the sink listens."""

    netns: str | None
    postfix_address: str
    sink_address: str
    description: str

    def wrap(self, argv: list[str]) -> list[str]:
        return (["ip", "netns", "exec", self.netns] + argv) if self.netns else argv


def find_place(prefix: str, host: str, force_local: bool) -> Place:
    inventory = ROOT / "inventory" / "lab.yaml"
    netns = f"{prefix}-{host}"
    if not force_local and inventory.exists():
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if any(line.split()[0] == netns for line in names.splitlines() if line.strip()):
            addr = subprocess.run(["ip", "netns", "exec", netns, "ip", "-4", "-br", "addr", "show", "eth0"],
                                  capture_output=True, text=True).stdout.split()
            bridge = subprocess.run(["ip", "-4", "-br", "addr", "show", f"{prefix}0"],
                                    capture_output=True, text=True).stdout.split()
            if len(addr) >= 3 and len(bridge) >= 3:
                return Place(netns, addr[2].split("/")[0], bridge[2].split("/")[0],
                             f"lab host {host} (netns {netns}), sink on the lab bridge {prefix}0")
    return Place(None, "127.0.0.1", "127.0.0.1", "this machine's loopback (no lab found)")


def free_port(place: Place, address: str, in_netns: bool) -> int:
    """A port free on ``address`` (checked inside the netns when Postfix listens there)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1" if in_netns else address, 0))
            port = s.getsockname()[1]
        if not in_netns or not place.netns:
            return port
        listening = subprocess.run(place.wrap(["ss", "-Htln", f"sport = :{port}"]), capture_output=True,
                                   text=True).stdout
        if not listening.strip():
            return port
    raise RuntimeError("no free port found")


# --------------------------------------------------------------------------- postfix instance

@dataclass
class Instance:
    place: Place
    directory: Path
    smtpd_port: int
    sink_port: int
    etc: Path = field(init=False)
    conf: Path = field(init=False)

    def __post_init__(self) -> None:
        self.etc = self.directory / "etc"
        self.conf = self.directory / "conf"

    def run(self, argv: list[str], check: bool = True, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(self.place.wrap(argv), capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, MAIL_CONFIG=str(self.etc), **(env or {})))
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def postconf(self, *settings: str) -> None:
        self.run(["postconf", "-c", str(self.etc), "-e", *settings])

    def create(self, extra_main: list[str]) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        for d in (self.etc, self.conf, self.directory / "spool", self.directory / "data"):
            d.mkdir(parents=True)
        shutil.chown(self.directory / "data", "postfix", "postfix")
        shutil.copyfile("/etc/postfix/master.cf", self.etc / "master.cf")
        addr = self.place.postfix_address
        (self.etc / "main.cf").write_text("\n".join([
            "compatibility_level = 3.6",
            f"queue_directory = {self.directory}/spool",
            f"data_directory = {self.directory}/data",
            "command_directory = /usr/sbin",
            "daemon_directory = /usr/lib/postfix/sbin",
            "shlib_directory = /usr/lib/postfix",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = bench1.priority.test",
            "mydestination =",
            f"inet_interfaces = {addr}",
            "inet_protocols = ipv4",
            f"mynetworks = 127.0.0.0/8 {addr}/32 {self.place.sink_address}/32",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "relay_domains =",
            "biff = no",
            f"maillog_file_prefixes = {self.directory}",
            f"maillog_file = {self.directory}/postfix.log",
            "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none",
            "smtp_dns_support_level = disabled",
            # An EMPTY transport sets only the next hop, so the sender-based choice survives (trap 2).
            f"transport_maps = inline:{{ {RCPT_DOMAIN}=:[{self.place.sink_address}]:{self.sink_port} }}",
            *extra_main,
        ]) + "\n")
        # Mailcow runs every service unchrooted; the instance's queue dir has no chroot files.
        self.run(["postconf", "-c", str(self.etc), "-F", "*/*/chroot = n"])
        self.run(["postconf", "-c", str(self.etc), "-MX", "smtp/inet"])
        self.run(["postconf", "-c", str(self.etc), "-M",
                  f"{addr}:{self.smtpd_port}/inet={addr}:{self.smtpd_port} inet n - n - - smtpd"])

    def apply_mailfleet(self, limit: int, inventory_text: str | None = None, host: str = "bench1") -> list[str]:
        """Place what mailfleet renders for ``host``, the way Mailcow would see it."""
        from mailfleet.inventory import load_valid_inventory
        from mailfleet.priority import render_extra_cf, render_files
        from mailfleet.priority.render import HOOK_PATH, MAILCOW_SENDER_MAP

        inventory = self.directory / "fleet.yaml"
        inventory.write_text(inventory_text or INVENTORY.format(limit=limit, address=self.place.postfix_address,
                                                                sender=BULK_SENDER))
        fleet = load_valid_inventory(inventory).fleet
        assert fleet is not None
        for rel, text in render_files(fleet, host).items():
            target = self.conf / Path(rel).name
            target.write_text(text)
            target.chmod(0o755 if rel == HOOK_PATH else 0o644)
        (self.conf / "mailcow_sender_map").write_text("")
        extra = render_extra_cf(fleet, host).replace(MAILCOW_SENDER_MAP, f"texthash:{self.conf}/mailcow_sender_map")
        extra = extra.replace("/opt/postfix/conf", str(self.conf))
        with open(self.etc / "main.cf", "a") as main:
            main.write("# User Overrides\n" + extra)
        self.run([str(self.conf / Path(HOOK_PATH).name)])
        return [line for line in extra.splitlines() if line and not line.startswith("#")]

    def start(self) -> None:
        self.run(["postfix", "-c", str(self.etc), "check"])
        self.run(["postfix", "-c", str(self.etc), "start"])

    def master_pid(self) -> int | None:
        try:
            return int((self.directory / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        self.run(["postsuper", "-c", str(self.etc), "-d", "ALL"], check=False)
        self.run(["postfix", "-c", str(self.etc), "stop"], check=False)
        if pid:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def queue_counts(self) -> dict[str, int]:
        counts = {}
        for name in ("incoming", "active", "deferred"):
            total = 0
            for _, _, files in os.walk(self.directory / "spool" / name):
                total += len(files)
            counts[name] = total
        return counts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- load

def message(sender: str, rcpt: str, bench_id: str) -> str:
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: bench {bench_id}\r\nMessage-ID: {make_msgid('bench')}\r\n"
            f"X-Bench-Id: {bench_id}\r\n\r\nHello {bench_id}.\r\n")


def inject_bulk(address: str, port: int, count: int, threads: int = 4, deadline: float = 600) -> float:
    """Submit ``count`` bulk messages over ``threads`` SMTP sessions; returns seconds taken."""
    import smtplib

    began = time.time()
    errors: list[str] = []

    def worker(index: int) -> None:
        smtp = smtplib.SMTP(address, port, timeout=120)
        try:
            for n in range(index, count, threads):
                if time.time() - began > deadline:
                    errors.append("injection deadline reached")
                    return
                rcpt = f"user{n}@{RCPT_DOMAIN}"
                smtp.sendmail(BULK_SENDER, [rcpt], message(BULK_SENDER, rcpt, f"bulk-{n}"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            try:
                smtp.quit()
            except Exception:  # noqa: BLE001
                pass

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise RuntimeError(f"bulk injection failed: {errors[:3]}")
    return time.time() - began


def send_resets(address: str, port: int, count: int, spacing: float = 1.0) -> dict[str, float]:
    import smtplib

    submitted = {}
    for n in range(count):
        bench_id = f"reset-{n}"
        t0 = time.time()
        with smtplib.SMTP(address, port, timeout=120) as smtp:
            rcpt = f"reset{n}@{RCPT_DOMAIN}"
            smtp.sendmail(RESET_SENDER, [rcpt], message(RESET_SENDER, rcpt, bench_id))
        submitted[bench_id] = t0
        time.sleep(max(0.0, spacing - (time.time() - t0)))
    return submitted


def read_events(path: Path) -> tuple[dict[str, float], dict[str, int]]:
    delivered: dict[str, float] = {}
    stats: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if "stats" in row:
                stats = row["stats"]
            elif row.get("id"):
                delivered.setdefault(row["id"], row["t"])
    return delivered, stats


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# --------------------------------------------------------------------------- one scenario

@dataclass
class Outcome:
    name: str
    latencies: list[float]
    lost: int
    bulk_rate: float
    bulk_delivered: int
    inject_seconds: float
    peak_sessions: int
    refused: int
    note: str = ""

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)


def run_scenario(name: str, place: Place, bulk: int, resets: int, limit: int, active_limit: int | None) -> Outcome:
    directory = VAR / name
    smtpd_port = free_port(place, place.postfix_address, in_netns=True)
    sink_port = free_port(place, place.sink_address, in_netns=False)
    instance = Instance(place, directory, smtpd_port, sink_port)
    extra = [f"qmgr_message_active_limit = {active_limit}"] if active_limit else []
    instance.create(extra)
    applied: list[str] = []
    if name != "stock":
        applied = instance.apply_mailfleet(limit)
    if name == "trap-nolimit":  # what mailfleet refuses to render: a split as wide as the receiver's cap
        instance.postconf(f"bulk_destination_concurrency_limit = {SINK_MAX_SESSIONS}")
        applied.append(f"(trap) bulk_destination_concurrency_limit = {SINK_MAX_SESSIONS}")
    elif name == "trap-transport":  # an explicit transport in transport_maps beats the sender-based choice
        instance.postconf(f"transport_maps = inline:{{ {RCPT_DOMAIN}=smtp:[{place.sink_address}]:{sink_port} }}")
        applied.append("(trap) transport_maps with an explicit smtp: transport")
    events = directory / "sink.jsonl"
    sink = subprocess.Popen([sys.executable, __file__, "--sink", place.sink_address, str(sink_port), str(events),
                             str(SCENARIO_CAP + 700)], start_new_session=True)
    try:
        time.sleep(0.5)
        instance.start()
        print(f"[{name}] postfix on {place.postfix_address}:{smtpd_port}, sink {place.sink_address}:{sink_port}"
              + (f"; mailfleet settings: {'; '.join(l.strip() for l in applied if 'bulk' in l)}" if applied else ""),
              flush=True)
        inject_seconds = inject_bulk(place.postfix_address, smtpd_port, bulk)
        print(f"[{name}] injected {bulk} bulk in {inject_seconds:.1f} s; queue {instance.queue_counts()}", flush=True)
        started = time.time()
        submitted = send_resets(place.postfix_address, smtpd_port, resets)
        deadline = started + SCENARIO_CAP
        while time.time() < deadline:
            delivered, _ = read_events(events)
            resets_done = all(k in delivered for k in submitted)
            bulk_times = sorted(t for k, t in delivered.items() if k.startswith("bulk-"))
            window_done = bool(bulk_times) and (time.time() - bulk_times[0] > RATE_WINDOW + 1
                                                or len(bulk_times) == bulk)
            if resets_done and window_done:
                break
            time.sleep(1)
        delivered, _ = read_events(events)
        latencies = [delivered[k] - t0 for k, t0 in submitted.items() if k in delivered]
        bulk_times = sorted(t for k, t in delivered.items() if k.startswith("bulk-"))
        if bulk_times:
            first = bulk_times[0]
            in_window = [t for t in bulk_times if t - first <= RATE_WINDOW]
            span = RATE_WINDOW if len(in_window) < bulk else max(in_window[-1] - first, 1e-3)
            rate = len(in_window) / span
        else:
            rate = 0.0
        note = "" if len(latencies) == resets else f"{resets - len(latencies)} reset(s) not delivered within {SCENARIO_CAP:.0f} s"
        print(f"[{name}] resets delivered {len(latencies)}/{resets}; bulk delivered {len(bulk_times)}; "
              f"queue now {instance.queue_counts()}", flush=True)
    finally:
        instance.stop()
        os.killpg(sink.pid, signal.SIGTERM)
        try:
            sink.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(sink.pid, signal.SIGKILL)
            sink.wait()
    _, stats = read_events(events)
    return Outcome(name, latencies, resets - len(latencies), rate, len(bulk_times), inject_seconds,
                   stats.get("peak", -1), stats.get("refused", -1), note)


def trap_note(name: str, limit: int) -> str:
    """For the trap scenarios: what mailfleet says about that configuration."""
    if name == "trap-nolimit":
        from mailfleet.inventory.model import BulkTransport
        from mailfleet.priority.rules import check_concurrency

        errors = [f for f in check_concurrency(BulkTransport(destination_concurrency_limit=SINK_MAX_SESSIONS))
                  if f.level == "error"]
        return "  [mailfleet refuses to render it: " + (errors[0].message if errors else "NOT REFUSED") + "]"
    if name == "trap-transport":
        from mailfleet.priority.rules import check_transport_overrides

        findings = check_transport_overrides([(RCPT_DOMAIN, "smtp:[sink]")])
        return "  [`mailfleet queue` reports: " + (findings[0].message if findings else "NOTHING") + "]"
    return ""


# --------------------------------------------------------------------------- main

def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--sink":
        run_sink(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=5000)
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--limit", type=int, default=12, help="fleet.bulk_transport.destination_concurrency_limit")
    parser.add_argument("--scenarios", default="stock,mailfleet,campaign",
                        help="comma list of stock, mailfleet, campaign, trap-nolimit, trap-transport")
    parser.add_argument("--lab-prefix", default="mflab")
    parser.add_argument("--lab-host", default="relay1")
    parser.add_argument("--local", action="store_true", help="run on loopback even when a lab is up")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (Postfix instances, network namespaces)", file=sys.stderr)
        return 2
    place = find_place(args.lab_prefix, args.lab_host, args.local)
    print(f"where: {place.description}; Postfix {subprocess.run(['postconf', '-h', 'mail_version'], capture_output=True, text=True).stdout.strip()}; "
          f"bulk {args.bulk}, resets {args.resets}, sink {SINK_DELAY} s/message, {SINK_MAX_SESSIONS} sessions", flush=True)
    VAR.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        active_limit = args.bulk // 2 if name == "campaign" else None
        outcomes[name] = run_scenario(name, place, args.bulk, args.resets, args.limit, active_limit)
    print()
    for o in outcomes.values():
        extra = f" (qmgr_message_active_limit {args.bulk // 2}, campaign {args.bulk})" if o.name == "campaign" else ""
        extra += trap_note(o.name, args.limit)
        latency = (f"resets p50 {o.p50:7.2f} s  p99 {o.p99:7.2f} s  max {max(o.latencies):7.2f} s" if o.latencies
                   else "resets: none delivered                          ")
        print(f"{o.name:14} {latency}"
              f"  | bulk {o.bulk_rate:6.1f} msg/s  | sink peak {o.peak_sessions} sessions, {o.refused} refused (421)"
              f"{extra}{'  ' + o.note if o.note else ''}")
    if "stock" in outcomes and "mailfleet" in outcomes:
        s, m = outcomes["stock"], outcomes["mailfleet"]
        print(f"reset latency stock/mailfleet: p50 {s.p50 / m.p50:.0f}x, p99 {s.p99 / m.p99:.0f}x; "
              f"mailfleet p99 {m.p99:.2f} s (target < 1 s + {SINK_DELAY} s receiver)")
        print(f"bulk rate mailfleet/stock: {m.bulk_rate / s.bulk_rate:.2f} (target >= 0.50)")
    if "campaign" in outcomes:
        c = outcomes["campaign"]
        print(f"campaign twice the active queue: reset p99 {c.p99:.2f} s (target < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
