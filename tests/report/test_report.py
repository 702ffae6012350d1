"""``mailfleet report``: the page from real stores, its empty states and errors, and Chromium's view of it."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mailfleet.errors import MailfleetError
from mailfleet.report.load import load_report
from mailfleet.report.render_html import attention_items, render_report_html

MAILFLEET = Path(sys.executable).with_name("mailfleet")
CHROMIUM = Path("/usr/bin/chromium")
NOW = 1_800_000_000.0  # 2027-01-15: every fixture is in the past


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAILFLEET), "report", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_dir(dmarc_db: Path, logs_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = _cli("--db", str(dmarc_db), str(logs_db), "--out", str(out))  # the contract's --db FILE...
    assert done.returncode == 0, done.stderr
    return out


def test_page_is_self_contained_and_has_every_view(report_dir: Path) -> None:
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "nothing may be fetched from a network"
    assert "@import" not in html and "url(" not in html
    for title in ("Pass / fail per day", "Pass rate per source IP per day", "Disposition", "DKIM alignment",
                  "SPF alignment", "By reporting organisation", "By domain", "New failing sources",
                  "Published policies", "Delivered / deferred / bounced / rejected per day", "Top deferral reasons",
                  "Queue delay per transport", "Bulk vs transactional", "Per host and day", "Per recipient domain"):
        assert f">{title}" in html, title
    assert html.count("<svg class=\"chart") == 9  # 5 DMARC charts, 4 mail-flow charts
    assert "Needs attention" in html and "10.1.1.1" in html  # a new failing source from the fixtures


def test_needs_attention_names_what_is_wrong(dmarc_db: Path, logs_db: Path) -> None:
    report = load_report([dmarc_db, logs_db], now=NOW, days=None)
    items = attention_items(report)
    texts = " ".join(text for _, text in items)
    assert items[0][0] == "bad" and "new source(s) failing DMARC" in items[0][1]
    assert "test.net: only 71.4 %" in texts and "p=none" in texts and "Most frequent deferral" in texts
    assert "Greylisted" in texts  # the masked reason groups 14 per-recipient replies into one


def test_empty_states(logs_db: Path, dmarc_db: Path) -> None:
    only_logs = render_report_html(load_report([logs_db], now=NOW, days=None))
    assert "No DMARC store was given" in only_logs and "Top deferral reasons" in only_logs
    recent = render_report_html(load_report([dmarc_db, logs_db], now=NOW, days=7))
    assert "no reports in this range" in recent.lower() and "no deliveries in this range" in recent.lower()
    assert "All clear" in recent


def test_bad_inputs_are_refused_with_what_to_do(tmp_path: Path, dmarc_db: Path) -> None:
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(MailfleetError, match="neither a DMARC store"):
        load_report([other], now=NOW, days=None)
    with pytest.raises(MailfleetError, match="both dmarc stores"):
        load_report([dmarc_db, dmarc_db], now=NOW, days=None)
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello, this is not sqlite at all" * 20)
    done = _cli("--db", str(not_db), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "not an SQLite database" in done.stderr
    done = _cli("--db", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_chromium_renders_the_charts(report_dir: Path, tmp_path: Path) -> None:
    page = (report_dir / "index.html").resolve().as_uri()
    common = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,3000"]
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The DOM as Chromium built it: every chart is an <svg> with marks in it.
    charts = re.findall(r'<svg class="chart[^"]*".*?</svg>', dom.stdout, flags=re.S)
    assert len(charts) == 9
    assert all(re.search(r"<(rect|path|circle)\b", chart) for chart in charts)
    shot = tmp_path / "report.png"
    done = subprocess.run([*common, f"--screenshot={shot}", page], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 3000)
    colours = image.resize((350, 750)).getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200, "the page rendered (nearly) blank"
    # The chart colours are on the page: DMARC pass green and the fail red of the SPF donut.
    pixels = {rgb for _, rgb in image.getcolors(maxcolors=4_000_000) or []}
    assert (0x2F, 0x9E, 0x6E) in pixels and (0xD6, 0x45, 0x45) in pixels


def test_cli_json_and_bad_days(dmarc_db: Path, logs_db: Path, tmp_path: Path) -> None:
    done = _cli("--db", str(dmarc_db), "--out", str(tmp_path / "r"), "--json")
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads(done.stdout) == {"report": str(tmp_path / "r" / "index.html"), "dmarc": str(dmarc_db),
                                       "mailflow": None}
    both = _cli("--out", str(tmp_path / "r2"), "--db", str(dmarc_db), "--db", str(logs_db), "--json")
    assert json.loads(both.stdout)["mailflow"] == str(logs_db)  # repeated --db works too
    bad = _cli("--db", str(dmarc_db), "--out", str(tmp_path / "r"), "--days", "soon")
    assert bad.returncode == 1 and "not a whole number of days" in bad.stderr
    missing = _cli("--out", str(tmp_path / "r"))
    assert missing.returncode == 1 and "needs --db FILE" in missing.stderr


def test_charts_handle_one_class_and_nothing() -> None:
    from mailfleet.report.render_svg import bar_chart, donut

    whole = donut([("transactional", 5.0)])
    assert "<circle" in whole and "100%" in whole
    empty = bar_chart(["Nov 01"], {"delivered": [0.0]})
    assert empty.count("<rect") == 1  # the legend's swatch only: a zero draws no bar


def test_heat_grid_keeps_the_latest_days_readable() -> None:
    from mailfleet.monitoring.parse_panels import PanelQuery
    from mailfleet.report.model import PanelResult
    from mailfleet.report.render_html import HEAT_DAYS, _heat

    query = PanelQuery("mailfleet-dmarc", 6, "Pass rate", "timeseries", "", ("time", "source_ip", "pass_rate"),
                       True, "percent", "")
    rows = tuple((day * 86400, "192.0.2.1", 100.0 if day % 2 else 0.0) for day in range(20000, 20060))
    html = _heat(PanelResult(query, query.columns, rows))
    assert html.count("% pass</title>") == HEAT_DAYS  # one cell per shown day for the one source
    assert f"the latest {HEAT_DAYS} of 60 days" in html
