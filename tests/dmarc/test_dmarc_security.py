"""Hostile inputs are refused early, with a reason, in bounded memory, and never stop a batch.

"Quickly" is shown without timing assertions: each test counts how many bytes were read from the
hostile file before it was refused, which proves decompression stopped at the cap instead of
running to the end. Memory is measured in a fresh subprocess (peak RSS)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from mailfleet.dmarc.ingest import ingest_paths
from mailfleet.dmarc.model import Limits
from mailfleet.dmarc.parse_input import parse_input
from mailfleet.dmarc.store import load_store

GIB = 1 << 30
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dmarc"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name><email>a@b.c</email><report_id>1</report_id>
<date_range><begin>1</begin><end>2</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published></feedback>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [ <!ENTITY xxe SYSTEM "file:///etc/hostname"> ]>
<feedback><report_metadata><org_name>&xxe;</org_name><email>a@b.c</email><report_id>1</report_id>
<date_range><begin>1</begin><end>2</end></date_range></report_metadata>
<policy_published><domain>example.com</domain><p>none</p></policy_published></feedback>
"""


class CountingReader(io.RawIOBase):
    """A file object that counts the bytes a parser pulled from it."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.read_bytes += len(data)
        return len(data)


def gzip_bomb(prefix: bytes, filler: bytes, total: int) -> bytes:
    """A single-member gzip stream that inflates to ``total`` bytes, built in 1 MiB steps."""
    packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = (filler * ((1 << 20) // len(filler) + 1))[: 1 << 20]
    parts = [packer.compress(prefix)]
    for _ in range(total // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.fixture(scope="session")
def gib_space_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bombs") / "bomb.xml.gz"
    path.write_bytes(gzip_bomb(b'<?xml version="1.0"?><feedback>', b" ", GIB))
    return path


@pytest.fixture(scope="session")
def gib_element_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of empty elements: valid XML that would build a tree of 270 million nodes."""
    path = tmp_path_factory.mktemp("bombs") / "elements.xml.gz"
    path.write_bytes(gzip_bomb(b'<?xml version="1.0"?><feedback>', b"<a/>", GIB))
    return path


def many_members_zip(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"r{i}.xml", b"<feedback/>")
    return buffer.getvalue()


def deep_xml(levels: int) -> bytes:
    return b"<feedback>" + b"<a>" * levels + b"</a>" * levels + b"</feedback>"


def test_billion_laughs_is_refused() -> None:
    outcome = parse_input("laughs.xml", BILLION_LAUGHS)
    assert "DOCTYPE" in outcome.error and not outcome.reports


def test_external_entity_is_refused_and_never_read() -> None:
    outcome = parse_input("xxe.xml", XXE)
    assert "DOCTYPE" in outcome.error and not outcome.reports
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in outcome.error


def test_doctype_split_across_chunks_is_still_seen() -> None:
    from mailfleet.dmarc.model import Unsafe
    from mailfleet.dmarc.parse_aggregate import AggregateParser

    parser = AggregateParser("split.xml")
    parser.feed(b'<?xml version="1.0"?>\n<!DOC')
    with pytest.raises(Unsafe):
        parser.feed(b'TYPE x [<!ENTITY a "b">]><feedback/>')


def test_gzip_bomb_stops_at_the_decompression_cap(gib_space_bomb: Path) -> None:
    data = gib_space_bomb.read_bytes()
    reader = CountingReader(data)
    outcome = parse_input("bomb.xml.gz", io.BufferedReader(reader), Limits())
    assert outcome.error and not outcome.reports
    assert "without a complete record" in outcome.error or "decompressed size" in outcome.error
    assert reader.read_bytes <= 256 * 1024 < len(data)  # one read of the ~1 MB file, of 1 GiB inflated


def test_gzip_bomb_hits_the_byte_cap_when_the_xml_cap_is_lifted(gib_space_bomb: Path) -> None:
    limits = Limits(max_decompressed_bytes=8 << 20, max_bytes_between_records=1 << 30)
    reader = CountingReader(gib_space_bomb.read_bytes())
    outcome = parse_input("bomb.xml.gz", io.BufferedReader(reader), limits)
    assert "decompressed size exceeds the cap of 8388608" in outcome.error
    assert reader.read_bytes < 1 << 20


def test_element_bomb_is_refused(gib_element_bomb: Path) -> None:
    reader = CountingReader(gib_element_bomb.read_bytes())
    outcome = parse_input("elements.xml.gz", io.BufferedReader(reader))
    assert "without a complete record" in outcome.error
    assert reader.read_bytes < 1 << 20


def test_zip_with_many_members_is_refused_before_reading_them() -> None:
    outcome = parse_input("many.zip", many_members_zip(10_000))
    assert "10000 members, over the cap of 32" in outcome.error


def test_deep_nesting_is_refused() -> None:
    outcome = parse_input("deep.xml", deep_xml(10_000))
    assert "nested too deeply" in outcome.error


def test_nested_containers_are_capped() -> None:
    data = b'<?xml version="1.0"?><feedback/>'
    for _ in range(5):
        data = zlib.compress(data, 9, wbits=zlib.MAX_WBITS | 16)
    outcome = parse_input("onion.gz", data)
    assert "nested more than 3 levels" in outcome.error


def test_input_over_the_compressed_cap_is_refused() -> None:
    outcome = parse_input("big.xml", b"<feedback>" + b" " * 4096, Limits(max_input_bytes=1024))
    assert "over the cap of 1024 bytes" in outcome.error


def test_record_cap() -> None:
    record = (b"<record><row><source_ip>192.0.2.1</source_ip><count>1</count><policy_evaluated>"
              b"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
              b"<identifiers><header_from>example.com</header_from></identifiers></record>")
    xml = (b"<feedback><report_metadata><org_name>x</org_name><email>a@x</email><report_id>1</report_id>"
           b"<date_range><begin>1</begin><end>2</end></date_range></report_metadata>"
           b"<policy_published><domain>example.com</domain><p>none</p></policy_published>"
           + record * 11 + b"</feedback>")
    assert len(parse_input("ok.xml", xml, Limits(max_records=11)).reports[0].records) == 11
    assert "more than 10 records" in parse_input("many.xml", xml, Limits(max_records=10)).error


def test_bad_files_are_quarantined_and_the_batch_goes_on(tmp_path: Path, gib_space_bomb: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a-laughs.xml").write_bytes(BILLION_LAUGHS)
    (inbox / "b-bomb.xml.gz").write_bytes(gib_space_bomb.read_bytes())
    (inbox / "c-many.zip").write_bytes(many_members_zip(100))
    (inbox / "d-deep.xml").write_bytes(deep_xml(10_000))
    (inbox / "e-good.xml").write_bytes((FIXTURES / "cry-inc" / "google.xml").read_bytes())
    conn = load_store(tmp_path / "dmarc.sqlite")
    summary = ingest_paths(conn, [inbox], quarantine=tmp_path / "quarantine")
    assert summary.total("stored") == 1
    assert [Path(f.file).name for f in summary.rejected] == ["a-laughs.xml", "b-bomb.xml.gz", "c-many.zip",
                                                              "d-deep.xml"]
    for result in summary.rejected:
        quarantined = Path(result.quarantined)
        assert quarantined.exists()
        assert quarantined.with_name(quarantined.name + ".reason.txt").read_text().strip() == result.rejected
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 1


def test_a_bomb_after_a_good_member_leaves_nothing_stored(tmp_path: Path) -> None:
    """A zip whose second member breaks a cap: the whole file is refused, the first member's
    report is rolled back (nothing half-done)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.xml", (FIXTURES / "cry-inc" / "google.xml").read_bytes())
        zf.writestr("bad.xml", BILLION_LAUGHS)
    path = tmp_path / "mixed.zip"
    path.write_bytes(buffer.getvalue())
    conn = load_store(tmp_path / "dmarc.sqlite")
    summary = ingest_paths(conn, [path], quarantine=tmp_path / "q")
    assert summary.rejected and "DOCTYPE" in summary.rejected[0].rejected
    assert conn.execute("SELECT COUNT(*) FROM report").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM record").fetchone()[0] == 0


# Peak memory is read from VmHWM (this process's own address space). getrusage's ru_maxrss is
# not usable here: Linux carries the high-water mark of the pre-exec address space into the
# child, so a probe spawned from a big pytest process would report pytest's size.
MEMORY_PROBE = """
import io, json, re, sys
from mailfleet.dmarc.parse_input import parse_input
outcome = parse_input(sys.argv[1], open(sys.argv[1], "rb"))
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"error": outcome.error, "maxrss_kb": hwm}))
"""


@pytest.mark.parametrize("kind", ["space-bomb", "element-bomb", "deep", "laughs", "many-members"])
def test_hostile_input_is_refused_in_bounded_memory(kind: str, tmp_path: Path, gib_space_bomb: Path,
                                                     gib_element_bomb: Path) -> None:
    files = {"space-bomb": gib_space_bomb, "element-bomb": gib_element_bomb}
    path = files.get(kind) or tmp_path / f"{kind}.bin"
    if kind == "deep":
        path.write_bytes(deep_xml(10_000))
    elif kind == "laughs":
        path.write_bytes(BILLION_LAUGHS)
    elif kind == "many-members":
        path.write_bytes(many_members_zip(10_000))
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(run.stdout)
    assert result["error"]
    assert result["maxrss_kb"] < 120 * 1024, f"peak RSS {result['maxrss_kb']} KiB"


def test_oversized_email_is_refused() -> None:
    eml = b"From: a@b\r\nSubject: x\r\n\r\n" + b"A" * 5000
    assert "e-mail is over the cap of 1024 bytes" in parse_input("big.eml", eml, Limits(max_email_bytes=1024)).error
