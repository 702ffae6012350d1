"""Benchmark: ``mailfleet logs.ingest`` + ``logs.summary`` against pflogsumm on one log.

Generates (once, deterministically, seed 42) a Mailcow-shaped Postfix log of 1,000,000 lines
under ``var/bench/`` — inbound mail to Dovecot over LMTP, authenticated submissions relayed
to remote MXes (TLS lines, ``queued as``), a ``postfix/bulk/smtp`` transport with longer
active-queue waits, greylisting deferrals and retries, bounces with their DSNs, postscreen
and smtpd rejects, milter rejects, dnsblog and anvil chatter — then, in one run:

1. ``pflogsumm`` (Debian's /usr/sbin/pflogsumm) on the file;
2. ``mailfleet logs.ingest FILE --db DB --json logs.summary --db DB --json``: one command,
   two tasks (ingest into a fresh SQLite store, then the summary), so the CLI's start-up is
   paid once; ``--separate`` also times them as two commands. Peak memory is the RSS of
   that process (``wait4``); the ingest's parser child reports its own peak too;
3. 200 trace lookups (message-id, queue id, recipient, sender; in process) on that store,
   plus one full ``mailfleet trace`` command.

It prints wall time, lines per second, peak RSS of each child process (``wait4``), the
grand totals of both tools side by side, and the ratios as the last lines.

    .venv/bin/python bench/logs_summary.py [--lines 1000000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
PFLOGSUMM = "/usr/sbin/pflogsumm"
HOST = "a3426da50090"
START = datetime(2026, 11, 26, 0, 0, 0, tzinfo=timezone.utc)
NAMES = ("anna", "ben", "carla", "dieter", "eva", "frank", "gina", "hans", "ines", "jonas", "klara", "lars")
LOCAL_DOMAINS = ("shop.example", "example.net", "corp.example.com", "club.example.org")
REMOTE_MX = (
    ("gmail.com", "gmail-smtp-in.l.google.com", "142.250.102.27"),
    ("outlook.com", "outlook-com.olc.protection.outlook.com", "52.101.68.15"),
    ("gmx.de", "mx00.gmx.net", "212.227.15.9"),
    ("web.de", "mx-ha02.web.de", "212.227.17.8"),
    ("yahoo.com", "mta7.am0.yahoodns.net", "98.136.216.22"),
    ("t-online.de", "mx00.t-online.de", "194.25.134.8"),
    ("mailbox.example", "mx.mailbox.example", "198.51.100.40"),
)


class LogWriter:
    """Emits lines in time order; lines scheduled for later (retries) wait in a queue."""

    def __init__(self, rng: random.Random, out, limit: int) -> None:
        self.rng = rng
        self.out = out
        self.limit = limit
        self.count = 0
        self.now = START
        self.later: list[tuple[datetime, int, list[tuple[float, str]]]] = []
        self.serial = 0
        self.pid = 1000

    def stamp(self, moment: datetime) -> str:
        return moment.strftime("%b ") + f"{moment.day:2d}" + moment.strftime(" %H:%M:%S")

    def emit(self, offset: float, tag: str, text: str) -> None:
        if self.count >= self.limit:
            return
        moment = self.now + timedelta(seconds=offset)
        self.out.write(f"{self.stamp(moment)} {HOST} {tag}[{self.pid_for(tag)}]: {text}\n")
        self.count += 1

    def pid_for(self, tag: str) -> int:
        return 311 if tag.endswith("qmgr") else 100000 + (zlib.crc32(tag.encode()) % 9000)

    def schedule(self, delay: float, lines: list[tuple[float, str, str]]) -> None:
        self.serial += 1
        self.later.append((self.now + timedelta(seconds=delay), self.serial, lines))  # type: ignore[arg-type]

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        due = [item for item in self.later if item[0] <= self.now]
        if due:
            self.later = [item for item in self.later if item[0] > self.now]
            for when, _, lines in sorted(due):
                saved = self.now
                self.now = when
                for offset, tag, text in lines:  # type: ignore[misc]
                    self.emit(offset, tag, text)
                self.now = saved


def _qid(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789ABCDEF") for _ in range(10))


def _person(rng: random.Random, domain: str) -> str:
    return f"{rng.choice(NAMES)}.{rng.choice(NAMES)}{rng.randrange(1000)}@{domain}"


def _ip(rng: random.Random) -> str:
    return f"{rng.choice((45, 77, 91, 141, 185, 193, 212))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _delays(rng: random.Random, b_scale: float = 0.02) -> tuple[str, float]:
    a, b, c, d = rng.uniform(0.01, 0.4), rng.expovariate(1 / b_scale) if b_scale else 0, rng.uniform(0, 0.8), rng.uniform(0.01, 1.2)
    total = a + b + c + d
    return f"delay={total:.2g}, delays={a:.2g}/{b:.2g}/{c:.2g}/{d:.2g}", total


TLS = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256"


def inbound(w: LogWriter) -> None:
    rng = w.rng
    ip, port = _ip(rng), rng.randrange(1024, 65535)
    name = f"mail{rng.randrange(10)}.sender{rng.randrange(400)}.example"
    qid = _qid(rng)
    sender = _person(rng, f"sender{rng.randrange(400)}.example")
    rcpt = _person(rng, rng.choice(LOCAL_DOMAINS))
    size = rng.randrange(2000, 200000)
    w.emit(0, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25")
    w.emit(0, "postfix/postscreen", f"PASS OLD [{ip}]:{port}")
    w.emit(0, "postfix/smtpd", f"connect from {name}[{ip}]")
    w.emit(0, "postfix/smtpd", f"Anonymous TLS connection established from {name}[{ip}]: {TLS}")
    w.emit(1, "postfix/smtpd", f"{qid}: client={name}[{ip}]")
    w.emit(1, "postfix/cleanup", f"{qid}: message-id=<{rng.getrandbits(48):x}.{rng.getrandbits(24):x}@{sender.split('@')[1]}>")
    w.emit(1, "postfix/qmgr", f"{qid}: from=<{sender}>, size={size}, nrcpt=1 (queue active)")
    w.emit(1, "postfix/smtpd", f"disconnect from {name}[{ip}] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7")
    delays, _ = _delays(rng, 0.005)
    w.emit(1, "postfix/lmtp", f"{qid}: to=<{rcpt}>, relay=dovecot[172.22.1.250]:24, {delays}, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> {rng.getrandbits(64):x} Saved)")
    w.emit(1, "postfix/qmgr", f"{qid}: removed")


def outbound(w: LogWriter, bulk: bool) -> None:
    rng = w.rng
    ip = _ip(rng)
    qid = _qid(rng)
    sender = _person(rng, rng.choice(LOCAL_DOMAINS))
    if bulk:
        sender = f"newsletter@{sender.split('@')[1]}"
    nrcpt = 1 if not bulk else rng.randrange(1, 4)
    tag_in = "postfix/submission/smtpd"
    w.emit(0, tag_in, f"connect from unknown[{ip}]")
    w.emit(0, tag_in, f"Anonymous TLS connection established from unknown[{ip}]: {TLS}")
    w.emit(1, tag_in, f"{qid}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={sender}")
    w.emit(1, "postfix/cleanup", f"{qid}: message-id=<{rng.getrandbits(48):x}@{sender.split('@')[1]}>")
    w.emit(1, "postfix/qmgr", f"{qid}: from=<{sender}>, size={rng.randrange(2000, 90000)}, nrcpt={nrcpt} (queue active)")
    w.emit(1, tag_in, f"disconnect from unknown[{ip}] ehlo=1 auth=1 mail=1 rcpt={nrcpt} data=1 quit=1 commands={4 + nrcpt}")
    transport = "postfix/bulk/smtp" if bulk else "postfix/smtp"
    pending = False
    for _ in range(nrcpt):
        domain, mx, mxip = rng.choice(REMOTE_MX)
        rcpt = _person(rng, domain)
        w.emit(2, transport, f"Trusted TLS connection established to {mx}[{mxip}]:25: {TLS}")
        roll = rng.random()
        delays, _ = _delays(rng, 3.0 if bulk else 0.02)
        if roll < 0.03:
            reply = f"host {mx}[{mxip}] said: 450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, see https://postgrey.example/help (in reply to RCPT TO command)"
            w.emit(2, transport, f"{qid}: host {mx}[{mxip}] said: 450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted (in reply to RCPT TO command)")
            w.emit(2, transport, f"{qid}: to=<{rcpt}>, relay={mx}[{mxip}]:25, {delays}, dsn=4.7.1, status=deferred ({reply})")
            retry_delays, _ = _delays(rng, 0.02)
            w.schedule(rng.uniform(300, 900), [
                (0, "postfix/qmgr", f"{qid}: from=<{sender}>, size=5000, nrcpt=1 (queue active)"),
                (1, transport, f"{qid}: to=<{rcpt}>, relay={mx}[{mxip}]:25, {retry_delays}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {_qid(rng)})"),
                (1, "postfix/qmgr", f"{qid}: removed"),
            ])
            pending = True
        elif roll < 0.045:
            dsn_qid = _qid(rng)
            w.emit(2, transport, f"{qid}: to=<{rcpt}>, relay={mx}[{mxip}]:25, {delays}, dsn=5.1.1, status=bounced (host {mx}[{mxip}] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown (in reply to RCPT TO command))")
            w.emit(2, "postfix/cleanup", f"{dsn_qid}: message-id=<{rng.getrandbits(40):x}.{dsn_qid}@mail.{LOCAL_DOMAINS[0]}>")
            w.emit(2, "postfix/bounce", f"{qid}: sender non-delivery notification: {dsn_qid}")
            w.emit(2, "postfix/qmgr", f"{dsn_qid}: from=<>, size=4000, nrcpt=1 (queue active)")
            dsn_delays, _ = _delays(rng, 0.005)
            w.emit(3, "postfix/lmtp", f"{dsn_qid}: to=<{sender}>, relay=dovecot[172.22.1.250]:24, {dsn_delays}, dsn=2.0.0, status=sent (250 2.0.0 <{sender}> {rng.getrandbits(64):x} Saved)")
            w.emit(3, "postfix/qmgr", f"{dsn_qid}: removed")
        else:
            w.emit(2, transport, f"{qid}: to=<{rcpt}>, relay={mx}[{mxip}]:25, {delays}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {_qid(rng)})")
    if not pending:
        w.emit(3, "postfix/qmgr", f"{qid}: removed")


def rejected(w: LogWriter) -> None:
    rng = w.rng
    ip, port = _ip(rng), rng.randrange(1024, 65535)
    rcpt = _person(rng, rng.choice(LOCAL_DOMAINS))
    spam = _person(rng, f"spam{rng.randrange(50)}.example")
    kind = rng.random()
    if kind < 0.6:
        w.emit(0, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25")
        w.emit(0, "postfix/dnsblog", f"addr {ip} listed by domain zen.spamhaus.org as 127.0.0.{rng.choice((2, 3, 4, 10, 11))}")
        w.emit(0, "postfix/dnsblog", f"addr {ip} listed by domain b.barracudacentral.org as 127.0.0.2")
        w.emit(1, "postfix/postscreen", f"PREGREET 11 after 0.23 from [{ip}]:{port}: EHLO User\\r\\n")
        w.emit(1, "postfix/postscreen", f"DNSBL rank 6 for [{ip}]:{port}")
        w.emit(1, "postfix/postscreen", f"NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service unavailable; client [{ip}] blocked using zen.spamhaus.org; from=<{spam}>, to=<{rcpt}>, proto=ESMTP, helo=<User>")
        w.emit(1, "postfix/postscreen", f"DISCONNECT [{ip}]:{port}")
    elif kind < 0.9:
        w.emit(0, "postfix/postscreen", f"CONNECT from [{ip}]:{port} to [172.22.1.253]:25")
        w.emit(0, "postfix/postscreen", f"PASS NEW [{ip}]:{port}")
        w.emit(0, "postfix/smtpd", f"connect from unknown[{ip}]")
        w.emit(1, "postfix/smtpd", f"NOQUEUE: reject: RCPT from unknown[{ip}]: 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table; from=<{spam}> to=<{rcpt}> proto=ESMTP helo=<ylmf-pc>")
        w.emit(1, "postfix/smtpd", f"disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=0/1 rset=1 quit=1 commands=4/5")
    else:
        qid = _qid(rng)
        name = f"mail{rng.randrange(10)}.sender{rng.randrange(400)}.example"
        w.emit(0, "postfix/smtpd", f"connect from {name}[{ip}]")
        w.emit(1, "postfix/smtpd", f"{qid}: client={name}[{ip}]")
        w.emit(1, "postfix/cleanup", f"{qid}: milter-reject: END-OF-MESSAGE from {name}[{ip}]: 5.7.1 Spam message rejected; from=<{spam}> to=<{rcpt}> proto=ESMTP helo=<{name}>")
        w.emit(1, "postfix/smtpd", f"disconnect from {name}[{ip}] ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5")


def generate(path: Path, lines: int, seed: int = 42) -> None:
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        w = LogWriter(rng, out, lines)
        while w.count < lines:
            roll = rng.random()
            if roll < 0.45:
                inbound(w)
            elif roll < 0.70:
                outbound(w, bulk=False)
            elif roll < 0.78:
                outbound(w, bulk=True)
            elif roll < 0.995:
                rejected(w)
            else:
                w.emit(0, "postfix/anvil", f"statistics: max connection rate 3/60s for (smtp:{_ip(rng)}) at {w.stamp(w.now)}")
            w.advance(rng.expovariate(1 / 1.6))
        for when, _, pending in sorted(w.later):  # flush retries still pending, in order
            w.now = when
            for offset, tag, text in pending:  # type: ignore[misc]
                w.emit(offset, tag, text)
    os.replace(tmp, path)


CPU_SECONDS: dict[str, float] = {}


def run_child(command: list[str], stdout_path: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of exactly this child, exit code; its CPU seconds (user +
    system, its own waited-for children included) land in ``CPU_SECONDS[command[1]]``."""
    out = stdout_path.open("wb") if stdout_path else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    CPU_SECONDS[command[1]] = usage.ru_utime + usage.ru_stime
    stderr = process.stderr.read().decode() if process.stderr else ""
    if stdout_path:
        out.close()  # type: ignore[union-attr]
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({process.returncode}): {stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def _two_json_documents(text: str) -> tuple[dict, dict]:
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(text)
    second, _ = decoder.raw_decode(text[end:].lstrip())
    return first, second


def pflogsumm_totals(report: str) -> dict[str, int]:
    totals = {}
    for key in ("received", "delivered", "forwarded", "deferred", "bounced", "rejected"):
        found = re.search(rf"^\s*(\d+)\s+{key}\b", report, re.MULTILINE)
        totals[key] = int(found.group(1)) if found else -1
    return totals


def trace_latency(db: Path, lookups: int) -> tuple[float, float, float]:
    sys.path.insert(0, str(ROOT / "src"))
    from mailfleet.postfix import store
    from mailfleet.postfix.render_trace import render_trace_json
    from mailfleet.postfix.trace import load_trace

    conn = store.load_store(db, create=False)
    rng = random.Random(7)
    top = conn.execute("SELECT MAX(id) FROM messages").fetchone()[0]
    samples = []
    for index in range(lookups):
        row = None
        while row is None:
            row = conn.execute(
                "SELECT m.message_id, m.qid, m.sender, d.rcpt FROM messages m JOIN deliveries d ON d.message_id = m.id "
                "WHERE m.id = ?", (rng.randrange(1, top + 1),)
            ).fetchone()
        kind = ("message_id", "queue_id", "recipient", "sender")[index % 4]
        value = {"message_id": row[0], "queue_id": row[1], "sender": row[2], "recipient": row[3]}[kind]
        if value is None:
            kind, value = "queue_id", row[1]
        started = time.perf_counter()
        traces = load_trace(conn, **{kind: value}, limit=20)
        render_trace_json(traces, {kind: value})
        samples.append((time.perf_counter() - started) * 1000)
        assert traces, f"trace by {kind}={value} found nothing"
    conn.close()
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))], samples[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two tools this many times")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--separate", action="store_true", help="also time ingest and summary as two commands")
    args = parser.parse_args()
    if not Path(PFLOGSUMM).exists():
        raise SystemExit(f"{PFLOGSUMM} is missing: apt-get install pflogsumm")
    VAR.mkdir(parents=True, exist_ok=True)
    log = VAR / f"postfix-{args.lines}.log"
    if not log.exists():
        started = time.perf_counter()
        generate(log, args.lines)
        print(f"generated {log} in {time.perf_counter() - started:.1f} s")
    lines = sum(1 for _ in log.open("rb"))
    mailfleet = str(ROOT / ".venv" / "bin" / "mailfleet")
    db = VAR / "logs-bench.db"
    results: dict[str, list[tuple[float, float]]] = {"pflogsumm": [], "mailfleet": []}
    report_path = VAR / "pflogsumm-report.txt"
    summary_path = VAR / "mailfleet-summary.json"
    for round_number in range(args.rounds):
        seconds, rss, _ = run_child(["perl", PFLOGSUMM, str(log)], report_path)
        results["pflogsumm"].append((seconds, rss))
        results.setdefault("pflogsumm_cpu", []).append((CPU_SECONDS[PFLOGSUMM], 0.0))
        print(f"round {round_number + 1}: pflogsumm            {seconds:6.2f} s  {lines / seconds:>9,.0f} lines/s  peak {rss:5.1f} MB"
              f"  cpu {CPU_SECONDS[PFLOGSUMM]:.2f} s")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        # one mailfleet command runs both tasks (Invoke runs several tasks per invocation)
        seconds, rss, _ = run_child(
            [mailfleet, "logs.ingest", str(log), "--db", str(db), "--json", "logs.summary", "--db", str(db), "--json"],
            summary_path,
        )
        ingest_out, ours_summary = _two_json_documents(summary_path.read_text())
        child_rss = max(s.get("parser_peak_rss_mb", 0.0) for s in ingest_out["sources"])
        results["mailfleet"].append((seconds, rss))
        results.setdefault("parser", []).append((seconds, child_rss))
        results.setdefault("mailfleet_cpu", []).append((CPU_SECONDS["logs.ingest"], 0.0))
        print(f"round {round_number + 1}: mailfleet ingest+sum {seconds:6.2f} s  {lines / seconds:>9,.0f} lines/s  peak {rss:5.1f} MB"
              f"  cpu {CPU_SECONDS['logs.ingest']:.2f} s (2 processes)  (parser child peak {child_rss:.1f} MB)")
        if args.separate:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            ingest_s, ingest_rss, _ = run_child([mailfleet, "logs.ingest", str(log), "--db", str(db)])
            summary_s, summary_rss, _ = run_child([mailfleet, "logs.summary", "--db", str(db), "--json"])
            print(f"round {round_number + 1}: as two commands       {ingest_s + summary_s:6.2f} s  "
                  f"{lines / (ingest_s + summary_s):>9,.0f} lines/s  (ingest {ingest_s:.2f} s / {ingest_rss:.1f} MB, "
                  f"summary {summary_s:.2f} s / {summary_rss:.1f} MB)")
    ours = _two_json_documents(summary_path.read_text())[1]
    theirs = pflogsumm_totals(report_path.read_text())
    print("\ngrand totals          pflogsumm   mailfleet")
    for key in ("received", "delivered", "forwarded", "deferred", "bounced", "rejected"):
        print(f"  {key:<18} {theirs[key]:>10}  {ours[key]:>10}")
    print(f"  {'deferrals':<18} {'':>10}  {ours['deferrals']:>10}")
    print(f"  {'expired':<18} {'':>10}  {ours['expired']:>10}")
    for row in ours["queue_delay"]:
        print(f"  queue wait b, {row['transport']:<8} p50 {row['b_p50']:.2f} s  p95 {row['b_p95']:.2f} s  ({row['deliveries']} attempts)")
    print(f"  database size {db.stat().st_size / 1e6:.1f} MB")

    median_ms, p99_ms, max_ms = trace_latency(db, args.lookups)
    some = sqlite_first_msgid(db)
    started = time.perf_counter()
    run_child([mailfleet, "trace", "--db", str(db), "--message-id", some, "--json"])
    cli_ms = (time.perf_counter() - started) * 1000
    print(f"\ntrace lookups ({args.lookups}, in process, query + JSON): median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms, max {max_ms:.2f} ms")
    print(f"one `mailfleet trace --json` command, process start included: {cli_ms:.0f} ms")

    best_pf = min(s for s, _ in results["pflogsumm"])
    best_mf = min(s for s, _ in results["mailfleet"])
    print(f"\nlines: {lines:,}")
    print(f"pflogsumm: {lines / best_pf:,.0f} lines/s, peak {max(r for _, r in results['pflogsumm']):.1f} MB")
    print(f"mailfleet (ingest into SQLite + summary): {lines / best_mf:,.0f} lines/s, peak {max(r for _, r in results['mailfleet']):.1f} MB"
          f" (its parser child: {max(r for _, r in results['parser']):.1f} MB)")
    cpu_pf = min(c for c, _ in results["pflogsumm_cpu"])
    cpu_mf = min(c for c, _ in results["mailfleet_cpu"])
    print(f"CPU seconds (user+sys, best round): pflogsumm {cpu_pf:.2f}, mailfleet {cpu_mf:.2f} (parser child included)")
    print(f"ratio of CPU seconds pflogsumm/mailfleet (load-insensitive): {cpu_pf / cpu_mf:.2f}x")
    print(f"ratio mailfleet/pflogsumm lines per second (wall): {best_pf / best_mf:.2f}x (goal >= 3x)")
    print(f"trace median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms (goal < 50 ms)")


def sqlite_first_msgid(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT message_id FROM messages WHERE message_id IS NOT NULL LIMIT 1").fetchone()[0]


if __name__ == "__main__":
    if shutil.which("perl") is None:
        raise SystemExit("perl is missing; pflogsumm needs it")
    main()
