"""Benchmark: DMARC report ingest, mailfleet (parse + SQLite writes) against parsedmarc (offline parse).

Run by hand: ``.venv/bin/python bench/dmarc_ingest.py [--quick]``.

1. Generates, with a fixed seed, under ``var/bench/dmarc/``:
   - ``corpus/``: 1,000 reports of 20 records each, mixed containers (1/4 .zip, 1/2 .xml.gz,
     1/4 .xml), source IPs from a pool of 5,000;
   - ``big/``: one report with 50,000 records (plain XML, about 35 MB).
2. Installs parsedmarc into ``var/bench/venv-parsedmarc`` if missing (PyPI).
3. Runs each side on the same files, each run in a fresh subprocess (repeated ``--runs`` times,
   the best kept): parsedmarc via ``parse_report_file(path, offline=True)`` (no DNS, no downloads;
   one process; it stores nothing), mailfleet via ``ingest_paths`` into a new SQLite file (WAL),
   so mailfleet's figure includes the database writes: once in one process (``mailfleet``) and
   once with two parse workers (``mailfleet-2proc``, what ``dmarc.ingest`` does by default on a
   2-core machine).
4. Prints records/s for the timed work (imports excluded), for the whole process (interpreter
   start and imports included), peak RSS of each child (its own ``ru_maxrss``), and the ratios
   as the last lines.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench" / "dmarc"
PEER_VENV = ROOT / "var" / "bench" / "venv-parsedmarc"
OUR_PYTHON = ROOT / ".venv" / "bin" / "python"
SEED = 20260101
DOMAINS = [f"brand{i}.example" for i in range(12)]
ORGS = [("google.com", "noreply-dmarc-support@google.com"), ("Outlook.com", "dmarcreport@microsoft.com"),
        ("Yahoo", "dmarchelp@yahooinc.com"), ("Mail.Ru", "dmarc_support@corp.mail.ru")]


# -- corpus ----------------------------------------------------------------------------------------
def _record(rng: random.Random, ip: str, domain: str) -> str:
    dkim = rng.choice(("pass", "pass", "pass", "fail"))
    spf = rng.choice(("pass", "pass", "fail"))
    disposition = "none" if "pass" in (dkim, spf) else rng.choice(("none", "quarantine", "reject"))
    return (
        "  <record>\n    <row>\n"
        f"      <source_ip>{ip}</source_ip>\n      <count>{rng.randint(1, 500)}</count>\n"
        "      <policy_evaluated>\n"
        f"        <disposition>{disposition}</disposition>\n        <dkim>{dkim}</dkim>\n        <spf>{spf}</spf>\n"
        "      </policy_evaluated>\n    </row>\n"
        f"    <identifiers>\n      <header_from>{domain}</header_from>\n    </identifiers>\n"
        "    <auth_results>\n"
        f"      <dkim>\n        <domain>{domain}</domain>\n        <selector>s{rng.randint(1, 3)}</selector>\n"
        f"        <result>{dkim}</result>\n      </dkim>\n"
        f"      <spf>\n        <domain>{domain}</domain>\n        <scope>mfrom</scope>\n"
        f"        <result>{spf}</result>\n      </spf>\n"
        "    </auth_results>\n  </record>\n")


def _report(rng: random.Random, index: int, records: int, ips: list[str]) -> bytes:
    org, mail = ORGS[index % len(ORGS)]
    domain = DOMAINS[index % len(DOMAINS)]
    begin = 1_767_225_600 + (index % 30) * 86_400
    head = (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<feedback>\n  <report_metadata>\n'
        f"    <org_name>{org}</org_name>\n    <email>{mail}</email>\n"
        f"    <report_id>bench-{index}-{rng.getrandbits(48)}</report_id>\n"
        f"    <date_range>\n      <begin>{begin}</begin>\n      <end>{begin + 86_399}</end>\n    </date_range>\n"
        "  </report_metadata>\n  <policy_published>\n"
        f"    <domain>{domain}</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n"
        "    <p>reject</p>\n    <sp>reject</sp>\n    <pct>100</pct>\n  </policy_published>\n")
    body = "".join(_record(rng, rng.choice(ips), domain) for _ in range(records))
    return (head + body + "</feedback>\n").encode()


def generate(reports: int, records: int, big_records: int) -> tuple[Path, Path]:
    corpus = WORK / f"corpus-{reports}x{records}"
    big = WORK / f"big-{big_records}"
    rng = random.Random(SEED)
    ips = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
           for _ in range(5000)]
    if not corpus.with_name(corpus.name + ".done").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        for i in range(reports):
            xml = _report(rng, i, records, ips)
            kind = i % 4
            if kind == 0:
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr(f"report-{i}.xml", xml)
                (corpus / f"report-{i:04d}.zip").write_bytes(buffer.getvalue())
            elif kind in (1, 2):
                (corpus / f"report-{i:04d}.xml.gz").write_bytes(gzip.compress(xml, mtime=0))
            else:
                (corpus / f"report-{i:04d}.xml").write_bytes(xml)
        corpus.with_name(corpus.name + ".done").write_text("ok\n")
    if not big.with_name(big.name + ".done").exists():
        shutil.rmtree(big, ignore_errors=True)
        big.mkdir(parents=True)
        (big / "big-report.xml").write_bytes(_report(random.Random(SEED + 1), 7, big_records, ips))
        big.with_name(big.name + ".done").write_text("ok\n")
    return corpus, big


# -- children --------------------------------------------------------------------------------------
def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def child_parsedmarc(directory: Path) -> dict[str, float]:
    import logging

    logging.disable(logging.CRITICAL)
    import parsedmarc

    files = _files(directory)
    start, cpu = time.perf_counter(), _cpu()
    records = 0
    for path in files:
        parsed = parsedmarc.parse_report_file(str(path), offline=True, always_use_local_files=True)
        records += len(parsed["report"]["records"])
    seconds = time.perf_counter() - start
    return {"records": records, "seconds": seconds, "cpu": _cpu() - cpu}


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children: steadier than wall time on a
    shared machine, and it charges parallel workers to the side that used them."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child_mailfleet(directory: Path, workers: int = 1) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "src"))
    from mailfleet.dmarc.ingest import Progress, ingest_paths
    from mailfleet.dmarc.store import load_store

    db = WORK / "bench.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conn = load_store(db)
    start, cpu = time.perf_counter(), _cpu()
    summary = ingest_paths(conn, [directory], quarantine=WORK / "quarantine", progress=Progress(0, enabled=False),
                           workers=workers)
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu
    stored = conn.execute("SELECT COUNT(*) FROM record").fetchone()[0]
    conn.close()
    if summary.rejected:
        raise SystemExit(f"mailfleet rejected {len(summary.rejected)} files: {summary.rejected[0].rejected}")
    return {"records": stored, "seconds": seconds, "cpu": cpu}


def run_child(side: str, directory: Path) -> dict[str, float]:
    python = PEER_VENV / "bin" / "python" if side == "parsedmarc" else OUR_PYTHON
    start = time.perf_counter()
    out = subprocess.run([str(python), str(Path(__file__).resolve()), "--child", side, str(directory)],
                         check=True, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["wall"] = wall
    return data


def ensure_parsedmarc() -> None:
    if (PEER_VENV / "bin" / "python").exists() and subprocess.run(
            [str(PEER_VENV / "bin" / "python"), "-c", "import parsedmarc"], capture_output=True).returncode == 0:
        return
    print("installing parsedmarc into", PEER_VENV, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "parsedmarc"], check=True, timeout=900)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="runs per side and workload; the best is kept")
    parser.add_argument("--quick", action="store_true", help="100 reports and a 5,000-record big report")
    args = parser.parse_args()
    if args.child:
        side, directory = args.child
        if side == "parsedmarc":
            result = child_parsedmarc(Path(directory))
        else:
            result = child_mailfleet(Path(directory), workers=2 if side == "mailfleet-2proc" else 1)
        # the largest single process (this one, or a parse worker it forked)
        result["maxrss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        print(json.dumps(result))
        return
    ensure_parsedmarc()
    reports, big_records = (100, 5000) if args.quick else (1000, 50_000)
    corpus, big = generate(reports, 20, big_records)
    version = subprocess.run([str(PEER_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('parsedmarc'))"],
                             capture_output=True, text=True).stdout.strip()
    print(f"parsedmarc {version} (offline) vs mailfleet (parse + SQLite WAL); {os.cpu_count()} CPUs; "
          f"best of {args.runs} runs per cell")
    sides = ("parsedmarc", "mailfleet", "mailfleet-2proc")
    ratios = []
    for label, directory in ((f"{reports} reports x 20 records (zip/gz/xml)", corpus),
                             (f"1 report x {big_records} records", big)):
        best: dict[str, dict[str, float]] = {}
        for _ in range(max(1, args.runs)):
            for side in sides:
                result = run_child(side, directory)
                if side not in best or result["seconds"] < best[side]["seconds"]:
                    best[side] = result
        print(f"\n{label}")
        for side in sides:
            r = best[side]
            print(f"  {side:<15} records={int(r['records']):>6}  work {r['seconds']:6.2f} s = "
                  f"{r['records'] / r['seconds']:>8,.0f} rec/s  cpu {r['cpu']:6.2f} s = "
                  f"{r['records'] / r['cpu']:>8,.0f} rec/cpu-s  process {r['wall']:6.2f} s = "
                  f"{r['records'] / r['wall']:>8,.0f} rec/s  peak RSS {r['maxrss_mb']:6.1f} MB")
            if r["records"] != best["parsedmarc"]["records"]:
                print(f"  WARNING: {side} counted {r['records']} records, parsedmarc {best['parsedmarc']['records']}")
        for side in sides[1:]:
            ratios.append((label, side, best["parsedmarc"]["seconds"] / best[side]["seconds"],
                           best["parsedmarc"]["cpu"] / best[side]["cpu"],
                           best["parsedmarc"]["wall"] / best[side]["wall"], best[side]["maxrss_mb"],
                           best["parsedmarc"]["maxrss_mb"]))
    print()
    for label, side, work_ratio, cpu_ratio, wall_ratio, ours, theirs in ratios:
        print(f"ratio {label}, {side}: {work_ratio:.1f}x parsedmarc's records/s (timed work, wall), "
              f"{cpu_ratio:.1f}x per CPU second, {wall_ratio:.1f}x (whole process); "
              f"peak RSS {ours:.0f} MB vs {theirs:.0f} MB")


if __name__ == "__main__":
    main()
